"""The ``schema_migrations`` table: the only module that knows its SQL.

The table is the spec's, created if missing. Three extra columns (execution time,
file name, who applied it) are added with ``ADD COLUMN IF NOT EXISTS``, so a table
created by the spec's own DDL keeps working. ``applied_at`` is written from the
server's clock, in UTC.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import errors

from .executor import lock_statements, raise_for_lock
from .session import BatchError, Part, Session, run_batch

TABLE = "schema_migrations"
CREATE_STATEMENTS = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
  version VARCHAR(255) PRIMARY KEY,
  applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  checksum VARCHAR(64),
  description TEXT
)""",
    f"CREATE INDEX IF NOT EXISTS idx_schema_migrations_applied_at ON {TABLE}(applied_at)",
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS execution_ms INTEGER",
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS filename TEXT",
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS applied_by TEXT",
)
SELECT_ROWS = f"SELECT version, applied_at, checksum, description, execution_ms, filename, applied_by FROM {TABLE}"
MISSING_TABLE_OR_COLUMN = (errors.UndefinedTable, errors.UndefinedColumn)


@dataclass(frozen=True)
class LedgerRow:
    """One applied migration as recorded in ``schema_migrations``."""

    version: str
    applied_at: datetime | None
    checksum: str | None
    description: str | None
    execution_ms: int | None = None
    filename: str | None = None
    applied_by: str | None = None

    @property
    def number(self) -> int:
        return int(self.version) if self.version.isdigit() else -1


def applied(session: Session, *, create: bool = True, lock_timeout: float | None = None) -> list[LedgerRow]:
    """Rows of the ledger, oldest version first; creates (or upgrades) the table if ``create``.

    One round trip when the table is already there.
    """
    rows, complete = read(session)
    if create and not complete:
        ensure_table(session, lock_timeout=lock_timeout)
        rows, complete = read(session)
    return rows


def read(session: Session) -> tuple[list[LedgerRow], bool]:
    """Rows of the ledger without creating or altering it, and whether the table is complete.

    An absent table has no rows; a table made by the spec's DDL (without our extra
    columns) is read as it is.
    """
    try:
        rows, complete = session.fetch(SELECT_ROWS), True
    except MISSING_TABLE_OR_COLUMN:
        complete = False
        try:
            rows = session.fetch(f"SELECT version, applied_at, checksum, description FROM {TABLE}")
        except errors.UndefinedTable:
            rows = []
    return sorted((LedgerRow(*row) for row in rows), key=lambda r: (r.number, r.version)), complete


def ensure_table(session: Session, *, lock_timeout: float | None = None) -> None:
    """Create the ledger if missing, under the migration lock (concurrent CREATEs race otherwise)."""
    statements = ["BEGIN", *lock_statements(session, lock_timeout), *CREATE_STATEMENTS, "COMMIT"]
    try:
        run_batch(session, [Part(tuple(statements))])
    except BatchError as error:
        raise_for_lock(error, lock_timeout)
        raise


def record_applied(session: Session, file, *, applied_by: str) -> str:
    """INSERT of a migration's row, run inside the migration's own transaction.

    A concurrent runner that already applied the version makes it fail with a
    unique violation, before any statement of the file runs.
    """
    lit = session.literal
    return (
        f"INSERT INTO {TABLE} (version, applied_at, checksum, description, filename, applied_by) VALUES "
        f"({lit(file.version)}, (now() AT TIME ZONE 'UTC'), {lit(file.checksum)}, {lit(file.description)}, "
        f"{lit(file.path.name)}, {lit(applied_by)})"
    )


def start_timer() -> str:
    """Remember, inside the transaction, when the file's statements start (for ``execution_ms``)."""
    return "SELECT set_config('dbmigrations.started_at', clock_timestamp()::text, true)"


def record_execution_time(session: Session, version: str) -> str:
    """UPDATE of the row's execution time, measured on the server, last in the transaction."""
    # The file may have run RESET ALL, which empties the start time: then count from the transaction's start.
    started = "coalesce(nullif(current_setting('dbmigrations.started_at', true), '')::timestamptz, now())"
    return (
        f"UPDATE {TABLE} SET execution_ms = round(extract(epoch FROM clock_timestamp() - {started}) * 1000) "
        f"WHERE version = {session.literal(version)}"
    )


def set_execution_time(session: Session, version: str, millis: int) -> str:
    """UPDATE of the row's execution time measured by the client (files run outside a transaction)."""
    return f"UPDATE {TABLE} SET execution_ms = {int(millis)} WHERE version = {session.literal(version)}"


def is_recorded(session: Session, version: str) -> bool:
    """Whether ``version`` has a ledger row now (the re-check under the session lock)."""
    return bool(session.fetch(f"SELECT 1 FROM {TABLE} WHERE version = %s", (version,)))


def record_unapplied(session: Session, version: str) -> str:
    """DELETE of a row, run inside the down file's transaction."""
    return f"DELETE FROM {TABLE} WHERE version = {session.literal(version)}"


def record_checksum(session: Session, version: str, checksum: str) -> str:
    """UPDATE of a row's checksum (``repair_sql_migrations``, after a human checked the edit)."""
    return f"UPDATE {TABLE} SET checksum = {session.literal(checksum)} WHERE version = {session.literal(version)}"


def fake_applied(session: Session, file, *, applied_by: str) -> None:
    """Record a migration as applied without running it (adopting an existing database)."""
    run_batch(session, [Part(("BEGIN", *lock_statements(session, None), record_applied(session, file, applied_by=applied_by)
                              + " ON CONFLICT (version) DO NOTHING", "COMMIT"))])
