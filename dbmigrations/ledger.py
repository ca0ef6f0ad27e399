"""The ``schema_migrations`` table: the only module that knows its SQL.

The table is the spec's, created if missing. Five extra columns (execution time,
file name, who applied it, ``fake``: recorded without running the file's SQL, and
``attempts``: runs until it committed) are added with ``ADD COLUMN IF NOT EXISTS``, so a table created by the spec's own
DDL, or by an older version of this tool, keeps working. ``applied_at`` is written
from the server's clock, in UTC.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import errors, sql

from .locks import run_locked
from .runner import RESTORE_SESSION, Transaction
from .session import Part, Session, run_batch

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
    # A constant default: no table rewrite (PostgreSQL 11+); rows recorded before it ran their SQL.
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS fake BOOLEAN NOT NULL DEFAULT false",
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS attempts INTEGER",
)
COLUMNS = ("version", "applied_at", "checksum", "description", "execution_ms", "filename", "applied_by", "fake",
           "attempts")
SELECT_ROWS = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"
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
    #: Recorded without running the file's SQL (``--fake``, ``--adopt-replaced``).
    fake: bool = False
    #: How many times the migration's transaction ran until it committed (DDL lock timeouts retry it).
    attempts: int | None = None

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
    columns), or by an older version of this tool, is read with the columns it has.
    """
    try:
        columns, rows, complete = COLUMNS, session.fetch(SELECT_ROWS), True
    except MISSING_TABLE_OR_COLUMN:
        complete = False
        present = {name for (name,) in session.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (TABLE,))}
        columns = tuple(c for c in COLUMNS if c in present)
        rows = session.fetch(f"SELECT {', '.join(columns)} FROM {TABLE}") if present else []
    found = (LedgerRow(**dict(zip(columns, row))) for row in rows)
    return sorted(found, key=lambda r: (r.number, r.version)), complete


def ensure_table(session: Session, *, lock_timeout: float | None = None) -> None:
    """Create the ledger if missing, under the migration lock (concurrent CREATEs race otherwise)."""
    run_locked(session, list(CREATE_STATEMENTS), lock_timeout=lock_timeout)


def record_applied(transaction: Transaction, file, *, applied_by: str, attempts: int = 1) -> None:
    """Join the migration's ``transaction``: its row is inserted before the file runs, its time (and
    which attempt this is) set after.

    A concurrent runner that already applied the version makes the INSERT fail with a
    unique violation, before any statement of the file runs.
    """
    # The file may run RESET ALL, which empties the start time: then count from the transaction's start.
    started = "coalesce(nullif(current_setting('dbmigrations.started_at', true), '')::timestamptz, now())"
    transaction.before += [
        _insert(file, applied_by),
        "SELECT set_config('dbmigrations.started_at', clock_timestamp()::text, true)",
    ]
    transaction.after.append(
        f"UPDATE {TABLE} SET execution_ms = round(extract(epoch FROM clock_timestamp() - {started}) * 1000), "
        f"attempts = {int(attempts)} WHERE version = {_literal(file.version)}"
    )


def record_unapplied(transaction: Transaction, version: str) -> None:
    """Join a down file's ``transaction``: its row is deleted before the file runs."""
    transaction.before.append(_delete(version))


def record_applied_now(session: Session, file, *, applied_by: str, execution_ms: int | None = None,
                       fake: bool = False) -> None:
    """Record a migration in a transaction of its own: after a file that ran outside a transaction
    (with its client-measured time), or without running it (``--fake``, under the migration lock)."""
    insert = _insert(file, applied_by, fake=fake) + (" ON CONFLICT (version) DO NOTHING" if fake else "")
    timing = [] if execution_ms is None else [
        f"UPDATE {TABLE} SET execution_ms = {int(execution_ms)} WHERE version = {_literal(file.version)}"]
    if fake:
        run_locked(session, [insert])
    else:
        # Under the session lock already; the file may have left SET ROLE/search_path behind.
        run_batch(session, [Part(("BEGIN", *RESTORE_SESSION, insert, *timing, "COMMIT"))])


def record_unapplied_now(session: Session, version: str) -> None:
    """Delete a row in a transaction of its own (after a down file that ran outside a transaction)."""
    run_batch(session, [Part(("BEGIN", _delete(version), "COMMIT"))])


def repair_rows(session: Session, checksums: dict[str, str], forget: list[str], *, adopt: dict | None = None,
                applied_by: str = "", lock_timeout: float | None = None) -> None:
    """Record new checksums, delete forgotten rows and let files adopt versions (``{version: file}``: the row
    becomes that file's, marked ``fake``), all in one transaction under the migration lock."""
    statements = [f"UPDATE {TABLE} SET checksum = {_literal(c)} WHERE version = {_literal(v)}"
                  for v, c in checksums.items()]
    statements += [_delete(version) for version in forget]
    statements += [
        f"UPDATE {TABLE} SET checksum = {_literal(file.checksum)}, description = {_literal(file.description)}, "
        f"filename = {_literal(file.path.name)}, applied_at = (now() AT TIME ZONE 'UTC'), execution_ms = NULL, "
        f"applied_by = {_literal(applied_by)}, fake = true WHERE version = {_literal(version)}"
        for version, file in (adopt or {}).items()
    ]
    if statements:
        run_locked(session, statements, lock_timeout=lock_timeout)


def is_recorded(session: Session, version: str) -> bool:
    """Whether ``version`` has a ledger row now (the re-check under the session lock)."""
    return bool(session.fetch(f"SELECT 1 FROM {TABLE} WHERE version = %s", (version,)))


def _literal(value) -> str:
    return sql.Literal(value).as_string(None)


def _insert(file, applied_by: str, *, fake: bool = False) -> str:
    return (
        f"INSERT INTO {TABLE} (version, applied_at, checksum, description, filename, applied_by, fake) VALUES "
        f"({_literal(file.version)}, (now() AT TIME ZONE 'UTC'), {_literal(file.checksum)}, "
        f"{_literal(file.description)}, {_literal(file.path.name)}, {_literal(applied_by)}, {_literal(fake)})"
    )


def _delete(version: str) -> str:
    return f"DELETE FROM {TABLE} WHERE version = {_literal(version)}"
