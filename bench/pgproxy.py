"""A loopback TCP proxy in front of PostgreSQL that adds latency and counts round trips and queries.

A round trip starts each time the client sends after having received something
(or for the first time): the client had to wait for the server. Only traffic
after the server's first ReadyForQuery counts, so connection start-up (auth,
parameter status) is reported separately. A query is an extended-protocol
execution (its Bind message) or a simple-query message (however many statements
it holds).
"""

from __future__ import annotations

import asyncio
import threading


class LatencyProxy:
    def __init__(
        self, target_host: str, target_port: int | None, delay_ms: float = 5.0, listen_host: str = "127.0.0.1"
    ):
        self.target_host, self.target_port, self.delay = target_host, target_port, delay_ms / 1000
        self.listen_host = listen_host
        self.round_trips = 0
        self.startup_round_trips = 0
        self.client_messages = 0
        #: Queries sent after start-up: extended-protocol executions (Bind) and simple-query messages (Query).
        self.queries = 0
        self.port = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait()

    def reset(self):
        self.round_trips = self.startup_round_trips = self.client_messages = self.queries = 0

    def _run(self):
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, self.listen_host, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_reader, client_writer):
        if self.target_host.startswith("/"):
            server_reader, server_writer = await asyncio.open_unix_connection(
                f"{self.target_host}/.s.PGSQL.{self.target_port or 5432}"
            )
        else:
            server_reader, server_writer = await asyncio.open_connection(self.target_host, self.target_port)
        state = {"waiting": True, "ready": False}
        counter = _MessageCounter()

        async def pump(reader, writer, from_client):
            loop = asyncio.get_running_loop()
            try:
                while data := await reader.read(65536):
                    if from_client:
                        if state["waiting"]:
                            if state["ready"]:
                                self.round_trips += 1
                            else:
                                self.startup_round_trips += 1
                            state["waiting"] = False
                        if state["ready"]:  # the start-up message has no type byte: count from ReadyForQuery on
                            messages, queries = counter.feed(data)
                            self.client_messages += messages
                            self.queries += queries
                    else:
                        state["waiting"] = True
                        if not state["ready"] and b"Z\x00\x00\x00\x05" in data:
                            state["ready"] = True
                    loop.call_later(self.delay, writer.write, data)
                await asyncio.sleep(self.delay)
            finally:
                writer.close()

        await asyncio.gather(
            pump(client_reader, server_writer, True), pump(server_reader, client_writer, False), return_exceptions=True
        )


class _MessageCounter:
    """Counts the client's typed protocol messages across chunks (a message may span several reads):
    all of them, and the queries among them: Bind (B, one per extended-protocol execution, prepared
    or not) and Query (Q, a simple-query message, however many statements it holds)."""

    def __init__(self):
        self.pending = b""  # the start of a message header cut by a chunk's end
        self.skip = 0  # bytes of the current message still to come

    def feed(self, data: bytes) -> tuple[int, int]:
        count = queries = 0
        data, self.pending = self.pending + data, b""
        i = min(self.skip, len(data))
        self.skip -= i
        while i < len(data):
            if len(data) - i < 5:
                self.pending = data[i:]
                break
            length = int.from_bytes(data[i + 1 : i + 5], "big")
            count += 1
            queries += data[i : i + 1] in (b"B", b"Q")
            end = i + 1 + length
            self.skip = max(0, end - len(data))
            i = min(end, len(data))
        return count, queries
