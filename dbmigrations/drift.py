"""Schema drift: is the live database what its applied migrations say it is?

The expected schema is built on a scratch database — the applied versions from the
ledger, in order, run exactly as the runner runs them — and both sides are read
with :func:`catalog.snapshot`. Every difference is one :class:`Difference`. Where
the role may not ``CREATE DATABASE`` (managed servers), the expected schema is built
on the embedded development server instead, and the report says when the two
servers' versions differ.

Each check stores the expected snapshot in the ledger's schema (:func:`ledger.store_expected`),
keyed by a fingerprint of the ledger's rows. :func:`compare_with_stored` compares the live
catalog with it — a few catalog queries, no scratch database — which is how the admin and
``check --database`` show drift; it says so when migrations were applied since the snapshot
was built (then only a new ``check_sql_schema`` can tell).
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

from . import catalog, conf, ledger, loader, plan
from .database import scrub
from .discovery import SqlFile
from .exceptions import ConfigurationError, DatabaseUnavailable, DbMigrationsError, MigrationFailed, SchemaNotChecked
from .executor import MigrationExecutor
from .scratch import scratch_database
from .session import BatchError, Session

DJANGO_TABLES = frozenset({"django_migrations"})


@dataclass(frozen=True)
class Difference:
    """One object that differs: ``missing`` (the migrations create it), ``extra`` (they don't), or ``differs``."""

    kind: str
    name: str
    change: str
    expected: str | None = None
    actual: str | None = None

    def render(self) -> str:
        if self.change == "missing":
            return f"{self.kind} {self.name}: missing (the applied migrations create it): {self.expected}"
        if self.change == "extra":
            return f"{self.kind} {self.name}: extra (no applied migration creates it): {self.actual}"
        return f"{self.kind} {self.name}: differs\n    expected: {self.expected}\n    found:    {self.actual}"


@dataclass
class DriftReport:
    """The comparison: differences (empty when the schemas match), and how the expected side was built."""

    differences: list[Difference] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    built_on: str = "the same server"
    notes: list[str] = field(default_factory=list)

    stored: bool = False

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "applied_versions": self.versions,
            "built_on": self.built_on,
            "notes": self.notes,
            "differences": [asdict(d) for d in self.differences],
        }


def ignored_tables() -> frozenset[str]:
    """Tables that are not drift: the ledger's and Django's own (its models' tables)."""
    from django.apps import apps

    # Only the tables Django's migrate creates: an unmanaged model may read a table a SQL migration creates.
    django = {
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy and model._meta.app_label != "dbmigrations"
    }
    # Named as the catalog names tables: bare in public, schema-qualified elsewhere (SQL_MIGRATIONS_SCHEMA).
    table = ledger.NAME if ledger.schema() == "public" else ledger.display_name()
    return frozenset({table, f"{table}_progress", f"{table}_snapshot", *DJANGO_TABLES, *django})


def compare(expected: catalog.Catalog, actual: catalog.Catalog) -> list[Difference]:
    """Every difference, grouped by kind in the catalog's order, names sorted.

    A table that is missing or extra is one difference: its columns, constraints,
    indexes, triggers, policies, grants, comments and serial sequences are not listed again.
    The column order is compared on the columns both sides have (the others are missing or extra).
    """
    whole = {
        name: ("missing" if name not in actual.get("table", {}) else "extra")
        for name in expected.get("table", {}).keys() ^ actual.get("table", {}).keys()
    }
    out = []
    for kind in catalog.KINDS:
        want, have = expected.get(kind, {}), actual.get(kind, {})
        for name in sorted(want.keys() | have.keys()):
            if kind == "column order":
                out.extend(_column_order(name, want.get(name), have.get(name)))
                continue
            if name not in have:
                change = "missing"
            elif name not in want:
                change = "extra"
            elif want[name] != have[name]:
                change = "differs"
            else:
                continue
            table = catalog.table_of(kind, name, want.get(name) or have.get(name) or "")
            if kind != "table" and change in (whole.get(table), whole.get(name) if kind == "comment" else None):
                continue
            out.append(Difference(kind, name, change, want.get(name), have.get(name)))
    return out


def _column_order(table: str, expected: str | None, actual: str | None) -> list[Difference]:
    if expected is None or actual is None:  # the table is missing or extra, or has no column on one side
        return []
    want, have = json.loads(expected), json.loads(actual)
    both = set(want) & set(have)
    want, have = [c for c in want if c in both], [c for c in have if c in both]
    return [] if want == have else [Difference("column order", table, "differs", ", ".join(want), ", ".join(have))]


def applied_files(session: Session, files: list[SqlFile]) -> tuple[list[SqlFile], list[str], list[tuple[str, str]]]:
    """The files of the applied versions, in order, notes about them, and the ledger's
    ``(version, checksum)`` rows; refuses a missing file."""
    entries = [e for e in loader.migration_states(session, files) if e.row is not None]
    missing = [e.name for e in entries if e.file is None]
    missing += [
        f"{e.row.filename} (version {e.version}, now held by {e.file.path.name})"
        for e in entries
        if e.state == plan.State.REPLACED
    ]
    if missing:
        raise ConfigurationError(
            "cannot build the expected schema: the ledger records migration(s) whose file is "
            "missing: " + ", ".join(missing) + ". Restore them from version control."
        )
    notes = [
        f"{e.file.path.name} changed since it was applied: the expected schema uses the file as it is now"
        for e in entries
        if e.state == plan.State.MODIFIED
    ]
    return [e.file for e in entries], notes, [(e.row.version, e.row.checksum) for e in entries]


def check_schema(
    session: Session, server_params: dict, files: list[SqlFile], *, then: list[SqlFile] = ()
) -> DriftReport:
    """Compare the database of ``session`` with the schema its applied migrations build.

    The expected schema is stored for :func:`compare_with_stored`: the one after ``then``
    too (the migrations a deploy is about to apply), so that it matches the ledger the
    deploy leaves. A database where it cannot be stored (a read-only role) gets a note.
    Raises :class:`SchemaNotChecked` when the applied migrations fail on the scratch database.
    """
    to_build, notes, recorded = applied_files(session, files)
    ignore = ignored_tables()
    report = DriftReport(versions=[f.version for f in to_build], notes=notes)
    try:
        with _scratch(server_params, session, report) as scratch:
            _copy_setup(session, scratch, report)
            executor = MigrationExecutor(scratch)
            _build(executor, to_build, report)
            expected = catalog.snapshot(scratch, ignore_tables=ignore)
            after, digest = expected, stored_key(recorded)
            if then:
                try:
                    executor.apply([*to_build, *then])
                except DbMigrationsError as error:
                    after = None
                    report.notes.append(f"the pending migrations fail on the scratch database too: {error}")
                else:
                    after = catalog.snapshot(scratch, ignore_tables=ignore)
                    digest = stored_key(recorded + [(f.version, f.checksum) for f in then])
            built_with = scratch.server_version
        actual = catalog.snapshot(session, ignore_tables=ignore)
        now = [(r.version, r.checksum) for r in ledger.applied(session, create=False)]
    except psycopg.Error as error:  # a catalog query failed (a timeout, a lost connection): never a traceback
        password = str(server_params.get("password") or "")
        raise SchemaNotChecked(f"drift was not checked: {scrub(_first_line(error), password)}") from None
    if ledger.fingerprint(now) != ledger.fingerprint(recorded):
        raise SchemaNotChecked(
            "migrations were applied, rolled back or repaired while the check ran (a deploy?): the database was "
            "read after them, so drift was not checked; run it again"
        )
    report.differences = compare(expected, actual)
    if after is not None:
        report.stored = _store(session, ledger.ExpectedSchema(digest, built_with, None, after), report)
    return report


def stored_key(rows) -> str:
    """What a stored expected schema is filed under: the ledger's ``(version, checksum)`` rows, and the
    catalog's format (one stored by another version of the tool is never compared)."""
    return ledger.fingerprint(rows, salt=catalog.FORMAT)


def _build(executor: MigrationExecutor, files: list[SqlFile], report: DriftReport) -> None:
    try:
        executor.apply(files)
    except DbMigrationsError as error:
        raise SchemaNotChecked(
            f"the applied migrations could not be rebuilt on a scratch database on {report.built_on}, "
            f"so drift was not checked:\n{error}{_why(error, report)}"
        ) from None


def _why(error: DbMigrationsError, report: DriftReport) -> str:
    failure = error.failure if isinstance(error, MigrationFailed) else None
    if failure is None or " role " not in f" {failure.message} ":
        return ""
    if failure.sqlstate == "42710":  # duplicate_object
        return (
            "\nRoles belong to the whole server, not to one database: the scratch database sees the role this "
            "migration created on the live one. Create it only if it is missing (DO $$ BEGIN IF NOT EXISTS "
            "(SELECT FROM pg_roles WHERE rolname = '…') THEN CREATE ROLE …; END IF; END $$), which any second "
            "database on the server (a test, a branch) needs too."
        )
    if failure.sqlstate == "42704" and "embedded" in report.built_on:  # undefined_object
        return (
            "\nThe embedded server has none of the live server's roles: create them there, or let this role "
            "create databases (CREATEDB) so that the check builds on the live server."
        )
    return ""


def _copy_setup(live: Session, scratch: Session, report: DriftReport) -> None:
    """Set the scratch database up as the live one where no migration did (:func:`catalog.setup`): the
    privileges on schema public, default privileges. Else the grants a DBA's setup adds to every new
    table would show as drift, and a migration that relies on them would fail on the scratch database."""
    refused: set[str] = set()
    for what, statement in catalog.setup(live):
        if what in refused:
            continue
        try:
            scratch.fetch(statement)
        except psycopg.Error as error:
            refused.add(what)
            report.notes.append(
                f"could not give the scratch database {what} of the live one ({_first_line(error)}): "
                "the grants they add may show as drift"
            )


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _store(session: Session, expected: ledger.ExpectedSchema, report: DriftReport) -> bool:
    try:
        ledger.store_expected(session, expected)
    except (BatchError, psycopg.Error) as error:  # e.g. a read-only role or replica
        report.notes.append(
            f"could not store the expected schema for the admin and `check --database` ({_first_line(error)}): "
            "they will not show drift for this database"
        )
        return False
    return True


@dataclass
class StoredCheck:
    """The live catalog against the stored expected schema: ``ok``, ``drift``, ``stale`` or ``unchecked``."""

    state: str
    differences: list[Difference] = field(default_factory=list)
    built_at: object = None
    notes: list[str] = field(default_factory=list)


def compare_with_stored(session: Session, rows: list[ledger.LedgerRow] | None = None) -> StoredCheck:
    """Compare the live database with the expected schema ``check_sql_schema`` stored (no scratch database).

    ``stale`` when the ledger changed since it was stored (a migration applied, rolled
    back or repaired) or the tool reads the catalog differently since (an upgrade),
    ``unchecked`` when none was ever stored. ``rows``: the ledger, when the caller has read it already.
    """
    if rows is None:
        rows = ledger.applied(session, create=False)
    digest = stored_key((r.version, r.checksum) for r in rows)
    expected = ledger.stored_expected(session, digest)
    if expected is None:
        return StoredCheck("unchecked")
    if expected.fingerprint != digest:
        return StoredCheck("stale", built_at=expected.built_at)
    actual = catalog.snapshot(session, ignore_tables=ignored_tables())
    check = StoredCheck("ok", compare(expected.catalog, actual), expected.built_at)
    if check.differences:
        check.state = "drift"
    if expected.server_version // 10000 != session.server_version // 10000:
        check.notes.append(
            f"the expected schema was built on PostgreSQL {expected.server_version // 10000}, the database runs "
            f"{session.server_version // 10000}: a difference in how the two print a definition is possible"
        )
    return check


@contextmanager
def _scratch(params: dict, live: Session, report: DriftReport):
    """A scratch database on the live server, else on the embedded server (a role without CREATEDB)."""
    try:
        with scratch_database(params, prefix="drift_") as (_name, scratch):
            yield scratch
        return
    except DatabaseUnavailable as error:
        if "scratch database" not in str(error) or "cannot create" not in str(error):
            raise
        refused = str(error)
    from . import embedded

    try:
        socket_dir = embedded.ensure_server(conf.embedded_data_dir())
    except ConfigurationError:
        raise DatabaseUnavailable(
            f"{refused}; and the embedded server to build it on instead is not installed (pip install -e '.[embedded]')"
        ) from None
    local = {"host": socket_dir, "user": "postgres", "dbname": "postgres"}
    with scratch_database(local, prefix="drift_") as (_name, scratch):
        report.built_on = f"the embedded server ({_version(scratch)}): this role may not create databases"
        if scratch.server_version // 10000 != live.server_version // 10000:
            report.notes.append(
                f"the expected schema was built on PostgreSQL {_version(scratch)}, the database runs "
                f"{_version(live)}: a difference in how the two print a definition is possible"
            )
        yield scratch


def _version(session: Session) -> str:
    return f"{session.server_version // 10000}.{session.server_version % 10000}"


def first_mention(files: list[SqlFile], name: str) -> tuple[Path, int] | None:
    """The applied file and line that first mention the object ``name`` (for annotations).

    Whole words, ignoring case: for ``table.column`` the first line naming the column at or
    after a line naming the table, in the same file (``id`` alone would match anywhere).
    """
    words = [w for w in name.split("(")[0].split(".") if w][-2:]
    patterns = [re.compile(rf"(?<![\w$]){re.escape(w)}(?![\w$])", re.IGNORECASE) for w in words]
    for file in files:
        found = 0
        for number, line in enumerate(file.source.text.splitlines(), start=1):
            if line.lstrip().startswith("--"):
                continue
            while found < len(patterns) and patterns[found].search(line):
                found += 1
            if patterns and found == len(patterns):
                return file.path, number
    return None
