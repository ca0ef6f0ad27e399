"""A psycopg connection driven with the simple query protocol: many statements, one round trip.

libpq returns one result per statement of a simple-query message, so the index of
the failing result names the failing statement, and PostgreSQL's error position
(counted in characters of the whole message) maps back into the statement.
"""

from __future__ import annotations

import select
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import errors, generators, pq

from .statements import Script

SEPARATOR = "\n;\n"  # a newline first, so a trailing "-- comment" cannot swallow the ";"
CANCEL_AFTER = 0.05  # seconds: Ctrl-C right after a message was sent cancels it this much later


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


class ConnectionLost(Exception):
    """The connection broke while a batch was running: no result says how far the server got."""

    def __init__(self, error: psycopg.Error):
        super().__init__(str(error))
        self.error = error


def _tag_rows(tag: str) -> int:
    words = tag.split()
    if words and words[0] in ("INSERT", "UPDATE", "DELETE", "MERGE", "COPY") and words[-1].isdigit():
        return int(words[-1])
    return 0


# What the session had set itself when the runner first used it (Django's TimeZone, an assumed role, …):
# RESET ALL returns to the connection's defaults (server, database, role, URL options), not to these.
# The rows named "*…" (never a setting's name) count what a DISCARD below would take from the caller.
BASELINE = r"""SELECT name, setting FROM pg_settings
 WHERE source = 'session' AND name NOT LIKE 'transaction\_%' AND name NOT LIKE 'dbmigrations.%'
UNION ALL SELECT 'session_authorization', current_setting('session_authorization')
UNION ALL SELECT 'role', current_setting('role') WHERE current_setting('role') <> 'none'
UNION ALL SELECT '*DISCARD TEMP', count(*)::text FROM pg_class WHERE relnamespace = pg_my_temp_schema()
UNION ALL SELECT '*CLOSE ALL', count(*)::text FROM pg_cursors
UNION ALL SELECT '*UNLISTEN *', count(*)::text FROM pg_listening_channels()"""
# Session state a file can leave behind that no setting covers; each is left alone when the session
# already had some before the first file (the caller's own temporary tables, cursors, LISTENs).
DISCARD = ("DISCARD TEMP", "DISCARD SEQUENCES", "CLOSE ALL", "UNLISTEN *")


class Session:
    """A psycopg connection driven with the simple query protocol.

    ``reopen`` opens another connection to the same database, configured the same way
    (the caller's Django alias); without it, :meth:`open_another` reuses this one's
    connection parameters.
    """

    def __init__(self, connection: psycopg.Connection, *, reopen: Callable[[], Session] | None = None):
        self.connection = connection
        self._restore: tuple[str, ...] | None = None
        self.reopen = reopen

    def restore_statements(self) -> tuple[str, ...]:
        """Statements that put the whole session back as it was when first asked, inside a transaction.

        Every setting (RESET ALL, then what the session had SET itself before any file
        ran), the role and session authorization, sequences' cached values, and the
        temporary tables, open cursors and LISTENs (unless the session had its own before).
        Call it first before any file runs: the baseline is read once (one query) and kept.
        """
        if self._restore is None:
            rows = self.fetch(BASELINE)
            kept = {name[1:] for name, count in rows if name.startswith("*") and count != "0"}
            order = {"session_authorization": 0, "role": 2}
            settings = sorted((row for row in rows if not row[0].startswith("*")), key=lambda r: order.get(r[0], 1))
            sets = ", ".join(
                f"set_config({self.literal(name)}, {self.literal(value)}, false)" for name, value in settings
            )
            self._restore = (
                "RESET SESSION AUTHORIZATION",
                "RESET ROLE",
                "RESET ALL",
                *([f"SELECT {sets}"] if sets else []),
                *(d for d in DISCARD if d not in kept),
            )
        return self._restore

    def open_another(self) -> Session:
        """A second session on the same database (for the lock of a file that runs outside a
        transaction, and for telling a transaction pooler apart); close it with :meth:`close`."""
        if self.reopen is not None:
            return self.reopen()
        params = {o.keyword.decode(): o.val.decode() for o in self.connection.pgconn.info if o.val}
        return Session(psycopg.connect(**params, autocommit=True))

    def close(self) -> None:
        """Close the connection; an open transaction ends with it (the server rolls it back)."""
        self.connection.close()

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

    def batch(self, parts: Sequence[Part], *, meanwhile: Callable[[], None] | None = None) -> BatchResult:
        """Send every statement of ``parts`` as one message; raise :class:`BatchError` on failure.

        ``meanwhile()`` runs once the message is sent, while the server works on it (the
        client's next piece of work, done in parallel); it should not raise: Ctrl-C during
        it cancels the statement as during the wait.
        Leaves an explicit transaction that failed in the aborted state: the caller
        (:func:`run_batch`) rolls it back.
        """
        message = SEPARATOR.join(sql for part in parts for sql in part.statements)
        began = time.perf_counter()
        pgconn = self.connection.pgconn
        with self.connection.lock:
            pgconn.send_query(message.encode("utf-8"))
            try:
                if meanwhile is None:
                    results = self.connection.wait(generators.execute(pgconn))
                else:
                    self.connection.wait(generators.send(pgconn))
                    results = self._fetch_after(meanwhile)
            except psycopg.OperationalError as error:
                raise ConnectionLost(error) from None
        outcome = BatchResult([], round((time.perf_counter() - began) * 1000), [])
        at = 0
        for p, part in enumerate(parts):
            tags, values = [], []
            for n in range(at, min(at + len(part.statements), len(results))):
                result = results[n]
                if result.status == pq.ExecStatus.FATAL_ERROR:
                    raise self._error(result, parts, p, n - at)
                # Interned: the same few tags and values come back for every file, and a run keeps them all.
                tags.append(sys.intern((result.command_status or b"").decode()))
                value = result.get_value(0, 0) if result.ntuples and result.nfields else None
                values.append(sys.intern(value.decode()) if value is not None else None)
            outcome.tags.append(tags)
            outcome.values.append(values)
            at += len(part.statements)
        if len(results) > at and results[at].status == pq.ExecStatus.FATAL_ERROR:  # an error beyond the last
            raise self._error(results[at], parts, len(parts) - 1, len(parts[-1].statements) - 1)
        return outcome

    def _fetch_after(self, meanwhile: Callable[[], None]) -> list:
        """The results of the message in flight, once ``meanwhile()`` has run."""
        pgconn = self.connection.pgconn
        fetch = generators.fetch_many(pgconn)
        try:
            meanwhile()
        except KeyboardInterrupt:  # cancel the message in flight, as psycopg does on Ctrl-C during its wait
            # The server ignores a cancel that comes before it has started on the message: give it a moment.
            if not select.select([pgconn.socket], [], [], CANCEL_AFTER)[0]:
                self.connection.cancel_safe(timeout=5.0)
            self.connection.wait(fetch)
            raise
        except BaseException:
            self.connection.wait(fetch)
            raise
        return self.connection.wait(fetch)

    def _error(self, result, parts: Sequence[Part], part: int, index: int) -> BatchError:
        """The :class:`BatchError` of the failed statement ``index`` of ``parts[part]``.

        PostgreSQL counts an error's position in characters of the whole message. A statement
        its grammar rejects (syntax newer than the server's) fails the whole message before
        anything runs, with one error that comes first: the statement is then the one holding
        the position, so positioned errors are placed by their position.
        """
        error = errors.error_from_result(result, encoding=self.connection.info.encoding)
        if not error.diag.statement_position:
            return BatchError(error, part, index, None)
        cursor, start = int(error.diag.statement_position) - 1, 0
        for p, each in enumerate(parts):
            for i, sql in enumerate(each.statements):
                end = start + len(sql) + len(SEPARATOR)
                if cursor < end:
                    return BatchError(error, p, i, cursor - start)
                start = end
        return BatchError(error, part, index, None)

    def rollback_if_needed(self) -> None:
        """Roll back a transaction a failure left open; nothing to do on a lost connection."""
        pgconn = self.connection.pgconn
        if pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status == pq.TransactionStatus.UNKNOWN:
            return  # the server ended the session: its transaction is gone with it
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            self.connection.pgconn.send_query(b"ROLLBACK")
            self.connection.wait(generators.execute(self.connection.pgconn))


def run_batch(session: Session, parts: Sequence[Part], *, meanwhile: Callable[[], None] | None = None) -> BatchResult:
    """:meth:`Session.batch`, rolling back whatever transaction a failure left open."""
    try:
        return session.batch(parts, meanwhile=meanwhile)
    except BatchError:
        session.rollback_if_needed()
        raise
