"""Is this connection going through a transaction pooler? Told from its behaviour, not its URL.

A transaction pooler (PgBouncer with ``pool_mode=transaction`` on any port, Neon's
``-pooler`` host, Supabase's port 6543, …) lends a server connection for one
transaction at a time, so session state — a ``SET``, a session-level lock, the
server process itself — does not survive from one transaction to the next. A file
that must run outside a transaction is a series of such transactions, so the
runner refuses it there. The URL's spelling is only a hint (a pooler can listen on
5432 or 6432 under any host name); this module asks the connection itself, once
per run and only when such a file is about to run.
"""

from __future__ import annotations

from .session import Session

PID = "SELECT pg_backend_pid()"


ROUNDS = 3


def transaction_pooler(session: Session) -> str | None:
    """Why ``session`` looks like a transaction-pooled connection, or None if it keeps its session.

    1. The server process that answers is the one libpq's handshake named: nothing sits
       in between (one round trip; the usual answer for a direct connection).
    2. Otherwise a proxy issued its own cancel key: a pooler, or a session-keeping proxy
       (Neon's endpoint proxy, a session-mode pooler). A second connection then asks in
       turn with this one, a few times: a transaction pooler shows itself when either
       connection's next transaction runs in another server process, or when the second
       is served by the process the first one just used. (A session keeps its process.)
    """
    first = _pid(session)
    if first == session.connection.info.backend_pid:
        return None
    other = session.open_another()
    try:
        other_first = None
        for _ in range(ROUNDS):
            seen = _pid(other)
            if seen == first:
                return f"a second connection was served by this one's server process (pid {first})"
            if other_first is not None and seen != other_first:
                return f"a second connection's server process changed (pid {other_first}, then {seen})"
            other_first = seen
            again = _pid(session)
            if again != first:
                return f"its server process changed between two transactions (pid {first}, then {again})"
    finally:
        other.close()
    return None


def _pid(session: Session) -> int:
    return session.fetch(PID)[0][0]
