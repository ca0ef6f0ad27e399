"""The ``schema_migrations`` table: the only module that knows its SQL.

The table is the spec's, created if missing. Five extra columns (execution time,
file name, who applied it, ``fake``: recorded without running the file's SQL, and
``attempts``: runs until it committed) are added with ``ADD COLUMN IF NOT EXISTS``, so a table created by the spec's own
DDL, or by an older version of this tool, keeps working. ``applied_at`` is written
from the server's clock, in UTC.

The ledger lives in one fixed schema (``SQL_MIGRATIONS_SCHEMA``, default ``public``) and
every statement names it: a ``search_path`` (the role's, the URL's, a file's) or a
TEMP table of the same name never redirects it.

``schema_migrations_snapshot`` (same schema) keeps the schema the applied migrations
build, as ``check_sql_schema`` last built it, keyed by a fingerprint of the ledger's
rows: the admin and ``check --database`` compare the live catalog with it without a
scratch database, and know when it no longer matches what is applied.

Beside it, ``schema_migrations_progress`` (same schema) holds, for a migration that runs
outside a transaction and is not recorded yet, each statement that ran (its 1-based
position and the SHA-256 of its text), so that a rerun resumes after them. The first
such file creates it; its rows are deleted in the transaction that records the migration.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from psycopg import errors, sql

from . import conf
from .exceptions import ConfigurationError
from .locks import LOCK_KEY, run_locked
from .resume import Done
from .runner import FILE_CHECK_FAILED, Transaction
from .session import Part, Session, run_batch

NAME = "schema_migrations"
PROGRESS_NAME = "schema_migrations_progress"
SNAPSHOT_NAME = "schema_migrations_snapshot"
COLUMNS = (
    "version",
    "applied_at",
    "checksum",
    "description",
    "execution_ms",
    "filename",
    "applied_by",
    "fake",
    "attempts",
)
# Taken by check_sql_schema while it stores the expected schema; not the migration lock (nothing waits on it).
SNAPSHOT_LOCK_KEY = LOCK_KEY + 2
MISSING_TABLE_OR_COLUMN = (errors.UndefinedTable, errors.UndefinedColumn)


def schema() -> str:
    """The ledger's schema (``SQL_MIGRATIONS_SCHEMA``, default ``public``)."""
    name = conf.ledger_schema()
    if len(name.encode("utf-8")) > 63:
        raise ConfigurationError(f"SQL_MIGRATIONS_SCHEMA {name!r} is longer than PostgreSQL's 63-byte names")
    return name


def table() -> str:
    """The ledger's qualified, quoted name for SQL: ``"public"."schema_migrations"``."""
    return sql.Identifier(schema(), NAME).as_string(None)


def display_name() -> str:
    """The ledger's name for humans: ``public.schema_migrations``."""
    return f"{schema()}.{NAME}"


def create_statements() -> list[str]:
    """The ledger's DDL: its schema if missing (without needing CREATE on the database when it exists),
    the spec's table and index, and the runner's four columns."""
    t, quoted_schema = table(), sql.Identifier(schema()).as_string(None)
    return [
        f"DO $ledger$ BEGIN IF to_regnamespace({_literal(quoted_schema)}) IS NULL "
        f"THEN CREATE SCHEMA {quoted_schema}; END IF; END $ledger$",
        f"""CREATE TABLE IF NOT EXISTS {t} (
  version VARCHAR(255) PRIMARY KEY,
  applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  checksum VARCHAR(64),
  description TEXT
)""",
        f"CREATE INDEX IF NOT EXISTS idx_schema_migrations_applied_at ON {t}(applied_at)",
        f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS execution_ms INTEGER",
        f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS filename TEXT",
        f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS applied_by TEXT",
        # A constant default: no table rewrite (PostgreSQL 11+); rows recorded before it ran their SQL.
        f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS fake BOOLEAN NOT NULL DEFAULT false",
        f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS attempts INTEGER",
    ]


def columns_query() -> tuple[str, tuple]:
    """SQL and parameters listing the ledger's columns (no rows when the table does not exist)."""
    return (
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (table(),),
    )


def progress_table() -> str:
    """The progress table's qualified, quoted name, beside the ledger."""
    return sql.Identifier(schema(), PROGRESS_NAME).as_string(None)


def snapshot_table() -> str:
    """The expected-schema table's qualified, quoted name, beside the ledger."""
    return sql.Identifier(schema(), SNAPSHOT_NAME).as_string(None)


def drop_statement() -> str:
    """DROP of the tool's tables (``reset_db``, when they live outside the schema it recreates)."""
    return f"DROP TABLE IF EXISTS {table()}, {progress_table()}, {snapshot_table()}"


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
    rows, _progress, complete = read_all(session)
    return rows, complete


def read_all(session: Session) -> tuple[list[LedgerRow], list[Done], bool]:
    """:func:`read`, plus the progress rows of migrations that stopped part-way.

    One round trip, and a second one only when the progress table exists.
    """
    progress: list[Done] = []
    # The rows and whether the progress table exists (one placeholder row when the ledger is empty).
    state = (
        f"SELECT {', '.join('m.' + c for c in COLUMNS)}, p.present FROM (SELECT "
        f"to_regclass({_literal(progress_table())}) IS NOT NULL AS present) p LEFT JOIN {table()} m ON true"
    )
    try:
        fetched, columns, complete = session.fetch(state), COLUMNS, True
        rows = [row[:-1] for row in fetched if row[0] is not None]
        if fetched and fetched[0][-1]:
            progress = [Done(*row) for row in session.fetch(_select_progress())]
    except MISSING_TABLE_OR_COLUMN:
        complete = False
        present = {name for (name,) in session.fetch(*columns_query())}
        columns = tuple(c for c in COLUMNS if c in present)
        rows = session.fetch(f"SELECT {', '.join(columns)} FROM {table()}") if present else []
    found = (LedgerRow(**dict(zip(columns, row))) for row in rows)
    return (
        sorted(found, key=lambda r: (r.number, r.version)),
        sorted(progress, key=lambda d: (d.version, d.index)),
        complete,
    )


def progress(session: Session, version: str) -> list[Done]:
    """The statements of ``version`` that ran while it is not recorded (read again under the lock)."""
    try:
        rows = session.fetch(_select_progress() + " WHERE version = %s", (version,))
    except errors.UndefinedTable:  # no file ever ran outside a transaction here
        return []
    return sorted((Done(*row) for row in rows), key=lambda d: d.index)


def record_progress(session: Session, version: str, index: int, sha256: str, *, create: bool = False) -> None:
    """Record, in a transaction of its own, that statement ``index`` (1-based) of ``version`` ran;
    ``create`` the table first if missing (the caller holds the migration lock).

    It runs between the file's statements, on the file's session: a ``SET ROLE`` the file
    made must not decide who writes it (``SET LOCAL`` ends with this transaction).
    """
    create_table = f"""CREATE TABLE IF NOT EXISTS {progress_table()} (
  version VARCHAR(255) NOT NULL,
  statement_index INTEGER NOT NULL,
  statement_sha256 VARCHAR(64) NOT NULL,
  done_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
  PRIMARY KEY (version, statement_index)
)"""
    run_batch(
        session,
        [
            Part(
                (
                    "BEGIN",
                    "SET LOCAL role TO DEFAULT",
                    *([create_table] if create else []),
                    f"INSERT INTO {progress_table()} (version, statement_index, statement_sha256) VALUES "
                    f"({_literal(version)}, {int(index)}, {_literal(sha256)}) "
                    "ON CONFLICT (version, statement_index) DO UPDATE SET statement_sha256 = "
                    "EXCLUDED.statement_sha256, done_at = EXCLUDED.done_at",
                    "COMMIT",
                )
            )
        ],
    )


def forget_progress_sql(version: str) -> str:
    """The statement a human runs to discard the progress of ``version`` (named in error messages)."""
    return f"DELETE FROM {schema()}.{PROGRESS_NAME} WHERE version = {_literal(version)};"


def ensure_table(session: Session, *, lock_timeout: float | None = None) -> None:
    """Create the ledger if missing, under the migration lock (concurrent CREATEs race otherwise)."""
    run_locked(session, create_statements(), lock_timeout=lock_timeout)


def writes_counted(session: Session) -> bool:
    """Whether the server counts the rows each transaction writes (``track_counts``, on unless turned
    off): the check after each file then looks up one count instead of reading every ledger row.
    Read once per run; pass it as ``counted`` to :func:`record_applied` and :func:`record_unapplied`."""
    return bool(session.fetch("SELECT current_setting('track_counts')::bool")[0][0])


def record_applied(
    transaction: Transaction, file, *, applied_by: str, counted: bool, attempts: int = 1, clear_progress: bool = False
) -> None:
    """Join the migration's ``transaction``: its row is inserted before the file runs, checked, timed and
    given its attempt number after.

    A concurrent runner that already applied the version makes the INSERT fail with a
    unique violation, before any statement of the file runs. Until the file has run, the
    row's ``execution_ms`` holds a fingerprint of the ledger's writes (a place the file's
    ``RESET ALL`` cannot clear; see :func:`_fingerprint`, ``counted`` as :func:`writes_counted`
    says); if the file deleted, truncated, inserted or rewrote ledger rows, the check after it
    raises and the whole transaction rolls back. ``clear_progress``: the file stopped
    part-way in an earlier run; its progress rows go in the same transaction.
    """
    t, version = table(), _literal(file.version)
    if clear_progress:
        transaction.after.append(_delete_progress(file.version))
    before = _fingerprint(t, version, counted=counted, own=1)
    transaction.before.append(_insert(file, applied_by, execution_ms=before, into=t))
    transaction.after.append(
        f"DO $ledger_check$ BEGIN UPDATE {t} SET execution_ms = "
        f"round(extract(epoch FROM (clock_timestamp() AT TIME ZONE 'UTC') - applied_at) * 1000), "
        f"attempts = {int(attempts)} "
        f"WHERE version = {version} AND checksum = {_literal(file.checksum)} AND filename = "
        f"{_literal(file.path.name)} AND NOT fake AND execution_ms = {_fingerprint(t, version, counted=counted)}; "
        f"IF NOT FOUND THEN RAISE EXCEPTION USING ERRCODE = '{FILE_CHECK_FAILED}', MESSAGE = {_literal(_changed())};"
        " END IF; END $ledger_check$"
    )


def record_unapplied(transaction: Transaction, version: str, *, counted: bool) -> None:
    """Join a down file's ``transaction``: its row is marked before the file runs and deleted after it.

    Before the file, the row's ``execution_ms`` takes a fingerprint of the ledger's writes
    (``UPDATE 0``: another runner already rolled it back); after it, the row is deleted only if
    the ledger was not written since (``DELETE 0``: the down file changed the ledger).
    ``counted``: as :func:`writes_counted` says.
    """
    t, quoted = table(), _literal(version)
    before, after = _fingerprint(t, quoted, counted=counted, own=1), _fingerprint(t, quoted, counted=counted)
    transaction.before.append(f"UPDATE {t} SET execution_ms = {before} WHERE version = {quoted}")
    transaction.after.append(f"DELETE FROM {t} WHERE version = {quoted} AND execution_ms = {after}")


def changed_message(path: str) -> str:
    """What to say when the file at ``path`` changed the ledger (the check after a down file)."""
    return f"{path}: {_changed()}"


def record_faked(session: Session, file, *, applied_by: str, clear_progress: bool = False) -> None:
    """Record a migration without running it (``--fake``), in a transaction of its own under the migration lock."""
    statements = [_insert(file, applied_by, fake=True) + " ON CONFLICT (version) DO NOTHING"]
    if clear_progress:
        statements.append(_delete_progress(file.version))
    run_locked(session, statements)


def record_applied_and_unlock(
    holder: Session, file, *, applied_by: str, execution_ms: int, clear_progress: bool
) -> None:
    """Record a file that ran outside a transaction, in the transaction of its lock holder
    (:func:`dbmigrations.locks.lock_holder`): the row, the end of its progress rows (if it
    has any) and the release of the lock commit together. A lost holder records nothing."""
    run_batch(
        holder,
        [
            Part(
                (
                    _insert(file, applied_by, execution_ms=str(int(execution_ms))),
                    *([_delete_progress(file.version)] if clear_progress else []),
                    "COMMIT",
                )
            )
        ],
    )


def record_unapplied_and_unlock(holder: Session, version: str) -> None:
    """Delete a row in the transaction of the lock holder, after a down file that ran outside a transaction."""
    run_batch(holder, [Part((_delete(version), "COMMIT"))])


def repair_rows(
    session: Session,
    checksums: dict[str, str],
    forget: list[str],
    *,
    adopt: dict | None = None,
    applied_by: str = "",
    lock_timeout: float | None = None,
) -> None:
    """Record new checksums, delete forgotten rows and let files adopt versions (``{version: file}``: the row
    becomes that file's, marked ``fake``), all in one transaction under the migration lock."""
    statements = [
        f"UPDATE {table()} SET checksum = {_literal(c)} WHERE version = {_literal(v)}" for v, c in checksums.items()
    ]
    statements += [_delete(version) for version in forget]
    statements += [
        f"UPDATE {table()} SET checksum = {_literal(file.checksum)}, description = {_literal(file.description)}, "
        f"filename = {_literal(file.path.name)}, applied_at = (now() AT TIME ZONE 'UTC'), execution_ms = NULL, "
        f"applied_by = {_literal(applied_by)}, fake = true WHERE version = {_literal(version)}"
        for version, file in (adopt or {}).items()
    ]
    if statements:
        run_locked(session, statements, lock_timeout=lock_timeout)


def is_recorded(session: Session, version: str) -> bool:
    """Whether ``version`` has a ledger row now (the re-check under the migration lock)."""
    return bool(session.fetch(f"SELECT 1 FROM {table()} WHERE version = %s", (version,)))


@functools.lru_cache(maxsize=256, typed=True)
def _literal(value) -> str:
    # Cached: each migration's statements repeat the same few values (its version, checksum, file
    # name; the ledger's name, the runner's name), and psycopg's quoting is the costly part of them.
    return sql.Literal(value).as_string(None)


def _insert(file, applied_by: str, *, execution_ms: str = "NULL", fake: bool = False, into: str | None = None) -> str:
    # applied_at: when the file starts (after the lock wait), from the server's clock, in UTC.
    return (
        f"INSERT INTO {into or table()} (version, applied_at, checksum, description, filename, applied_by, "
        f"execution_ms, fake) VALUES ({_literal(file.version)}, (clock_timestamp() AT TIME ZONE 'UTC'), "
        f"{_literal(file.checksum)}, {_literal(file.description)}, {_literal(file.path.name)}, "
        f"{_literal(applied_by)}, {execution_ms}, {_literal(fake)})"
    )


def _fingerprint(t: str, version: str, *, counted: bool, own: int = 0) -> str:
    """An int expression that stays the same while no statement writes to the ledger ``t``; ``own``:
    the runner's own write about to happen (its row), counted in advance.

    PostgreSQL counts, per table, the rows the current transaction inserted, updated and
    deleted (``pg_stat_xact_user_tables``; writes in a savepoint rolled back count too), and
    TRUNCATE gives the table a new file node: a few lookups, whatever the size of the ledger.
    Without ``track_counts`` (not ``counted``) those counts stay 0: a digest of every ledger
    row but ``version`` (count, versions, checksums, file names) takes their place, which
    reads every row (``version`` is a SQL literal). The table's name is resolved when the
    statement runs: a file that dropped the ledger makes it fail.
    """
    if not counted:
        row = "version || '/' || coalesce(checksum, '') || '/' || coalesce(filename, '')"
        return f"(SELECT hashtext(count(*) || '/' || coalesce(sum(hashtext({row})), 0)) FROM {t} WHERE version <> {version})"
    oid = f"{_literal(t)}::regclass"
    counts = "+".join(f"pg_stat_get_xact_tuples_{what}({oid})" for what in ("inserted", "updated", "deleted"))
    return f"hashtext(pg_relation_filenode({oid}) || '/' || ({counts}+{own}))"


def _changed() -> str:
    return (
        f"the file changed the ledger {display_name()} (deleted, truncated, inserted or rewrote rows), "
        "so everything was rolled back and nothing was recorded. A migration or down file must not write "
        "the ledger: remove those statements (repair_sql_migrations fixes the ledger itself)"
    )


def _delete(version: str) -> str:
    return f"DELETE FROM {table()} WHERE version = {_literal(version)}"


def _delete_progress(version: str) -> str:
    return f"DELETE FROM {progress_table()} WHERE version = {_literal(version)}"


def progress_query() -> str:
    """SQL listing every progress row (the table must exist: check ``to_regclass(progress_table())``)."""
    return _select_progress()


def _select_progress() -> str:
    return f"SELECT version, statement_index, statement_sha256, done_at FROM {progress_table()}"


@dataclass(frozen=True)
class ExpectedSchema:
    """The schema some applied migrations build, as stored by ``check_sql_schema``."""

    fingerprint: str
    server_version: int
    built_at: datetime
    catalog: dict


def fingerprint(rows, *, salt: str = "") -> str:
    """A digest of applied migrations: ``rows`` are ``(version, checksum)`` pairs, in any order; ``salt``
    is whatever else the value filed under it depends on."""
    text = "\n".join(f"{version}:{checksum or ''}" for version, checksum in sorted(rows))
    return hashlib.sha256((salt + "\n" + text if salt else text).encode()).hexdigest()


def store_expected(session: Session, expected: ExpectedSchema) -> None:
    """Replace the stored expected schema with ``expected`` (the table is created if missing).

    Two checks storing at once are serialized (a lock of their own, never the migration lock),
    and whoever may read the ledger may read the table too: the admin and ``check --database``
    often run as another role than the deploy that stores it.
    """
    t = snapshot_table()
    digest = _literal(expected.fingerprint)
    readers = (
        "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END "
        f"FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = to_regclass({_literal(table())}) "
        "AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner"
    )
    run_batch(
        session,
        [
            Part(
                (
                    "BEGIN",
                    f"SELECT pg_advisory_xact_lock({SNAPSHOT_LOCK_KEY})",
                    f"""CREATE TABLE IF NOT EXISTS {t} (
  fingerprint VARCHAR(64) PRIMARY KEY,
  server_version INTEGER NOT NULL,
  built_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
  catalog TEXT NOT NULL
)""",
                    f"INSERT INTO {t} (fingerprint, server_version, catalog) VALUES ({digest}, "
                    f"{int(expected.server_version)}, {_literal(json.dumps(expected.catalog, sort_keys=True))}) "
                    "ON CONFLICT (fingerprint) DO UPDATE SET server_version = EXCLUDED.server_version, "
                    "built_at = EXCLUDED.built_at, catalog = EXCLUDED.catalog",
                    f"DELETE FROM {t} WHERE fingerprint <> {digest}",
                    f"DO $grant$ DECLARE reader text; BEGIN FOR reader IN {readers} LOOP "
                    f"EXECUTE format('GRANT SELECT ON %s TO %s', {_literal(t)}, reader); END LOOP; END $grant$",
                    "COMMIT",
                )
            )
        ],
    )


def stored_expected(session: Session, fingerprint: str | None = None) -> ExpectedSchema | None:
    """The stored expected schema (the one filed under ``fingerprint`` if there is one, else the
    newest), or None when ``check_sql_schema`` never stored one here."""
    # to_regclass first: a failed SELECT would abort a caller's transaction (the admin's request).
    if session.fetch("SELECT to_regclass(%s)", (snapshot_table(),))[0][0] is None:
        return None
    rows = session.fetch(
        f"SELECT fingerprint, server_version, built_at, catalog FROM {snapshot_table()} "
        "ORDER BY fingerprint = %s DESC, built_at DESC LIMIT 1",
        (fingerprint or "",),
    )
    if not rows:
        return None
    digest, version, built_at, text = rows[0]
    return ExpectedSchema(digest, version, built_at, json.loads(text))
