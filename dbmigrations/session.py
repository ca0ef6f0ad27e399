"""A psycopg connection driven with the simple query protocol: many statements, one round trip.

libpq returns one result per statement of a simple-query message, so the index of
the failing result names the failing statement, and PostgreSQL's error position
(counted in characters of the whole message) maps back into the statement.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import errors, generators, pq

from .statements import Script

SEPARATOR = "\n;\n"  # a newline first, so a trailing "-- comment" cannot swallow the ";"


@dataclass(frozen=True)
class Part:
    """Statements of one origin inside a batch: the runner's own SQL or a file's."""

    statements: tuple[str, ...]
    script: Script | None = None
    path: str | None = None


@dataclass
class BatchResult:
    """Command tags of every statement of a batch, per part, and the first value each returned (or None)."""

    tags: list[list[str]] = field(default_factory=list)
    elapsed_ms: int = 0
    values: list[list[str | None]] = field(default_factory=list)

    def rows(self, part: int) -> int:
        """Rows inserted/updated/deleted by a part (sum of its command tags)."""
        return sum(_tag_rows(tag) for tag in self.tags[part])


class BatchError(Exception):
    """A statement of a batch failed; carries the server error and where it was."""

    def __init__(self, error: psycopg.Error, part: int, index: int, offset: int | None):
        super().__init__(str(error))
        self.error, self.part, self.index, self.offset = error, part, index, offset

    @property
    def sqlstate(self) -> str:
        return self.error.sqlstate or ""


def _tag_rows(tag: str) -> int:
    words = tag.split()
    if words and words[0] in ("INSERT", "UPDATE", "DELETE", "MERGE", "COPY") and words[-1].isdigit():
        return int(words[-1])
    return 0


class Session:
    """A psycopg connection driven with the simple query protocol."""

    def __init__(self, connection: psycopg.Connection):
        self.connection = connection

    @property
    def server_version(self) -> int:
        return self.connection.info.server_version

    def fetch(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        """Run one parametrized query (extended protocol); its rows, if it returns any."""
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def literal(self, value) -> str:
        """Quote a Python value as a SQL literal for this connection (no string formatting)."""
        return psycopg.sql.Literal(value).as_string(self.connection)

    def batch(self, parts: Sequence[Part]) -> BatchResult:
        """Send every statement of ``parts`` as one message; raise :class:`BatchError` on failure.

        Leaves an explicit transaction that failed in the aborted state: the
        caller (:func:`run_batch`) rolls it back.
        """
        texts: list[str] = []
        owners: list[tuple[int, int]] = []
        for p, part in enumerate(parts):
            for i, sql in enumerate(part.statements):
                texts.append(sql)
                owners.append((p, i))
        starts, position = [], 0
        for text in texts:
            starts.append(position)
            position += len(text) + len(SEPARATOR)
        message = SEPARATOR.join(texts)
        began = time.perf_counter()
        pgconn = self.connection.pgconn
        with self.connection.lock:
            pgconn.send_query(message.encode("utf-8"))
            results = self.connection.wait(generators.execute(pgconn))
        outcome = BatchResult([[] for _ in parts], round((time.perf_counter() - began) * 1000), [[] for _ in parts])
        for n, result in enumerate(results):
            if result.status == pq.ExecStatus.FATAL_ERROR:
                error = errors.error_from_result(result, encoding=self.connection.info.encoding)
                part, index = owners[min(n, len(owners) - 1)]
                offset = None
                if error.diag.statement_position:
                    offset = int(error.diag.statement_position) - 1 - starts[n]
                raise BatchError(error, part, index, offset)
            part, _ = owners[n]
            outcome.tags[part].append((result.command_status or b"").decode())
            value = result.get_value(0, 0) if result.ntuples and result.nfields else None
            outcome.values[part].append(value.decode() if value is not None else None)
        return outcome

    def rollback_if_needed(self) -> None:
        """Roll back a transaction a failure left open; nothing to do on a lost connection."""
        pgconn = self.connection.pgconn
        if pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status == pq.TransactionStatus.UNKNOWN:
            return  # the server ended the session: its transaction is gone with it
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            self.connection.pgconn.send_query(b"ROLLBACK")
            self.connection.wait(generators.execute(self.connection.pgconn))


def run_batch(session: Session, parts: Sequence[Part]) -> BatchResult:
    """:meth:`Session.batch`, rolling back whatever transaction a failure left open."""
    try:
        return session.batch(parts)
    except BatchError:
        session.rollback_if_needed()
        raise
