"""Django system checks for SQL migration and seed files (registered in AppConfig.ready).

Django runs these before most commands (``check``, ``runserver``, ``migrate``,
``createsuperuser``…), so the levels follow one rule: only what
``apply_sql_migrations`` refuses to run is an Error (E001…E010), which stops
those commands. Everything else is a Warning: an unwritten scaffold (W006, the
runner still refuses it), the lint's style findings (W1NN, ``lint/checks.py``),
and, with ``check --database default`` (and Django's ``migrate``), pending
migrations, checksum drift, missing files and replaced versions read from the
ledger (W001…W005), and schema drift against the expected schema ``check_sql_schema``
stored (W007),
like Django's "You have N unapplied migration(s)". A database check never fails
on an unreachable server: it warns.

The file checks' messages are reused while the files are unchanged
(:mod:`.check_cache`), so a command pays one ``stat`` per file, not a parse.
Registering the checks (``AppConfig.ready``, in every process) imports nothing
heavy: the loader, the lint and the database code are imported when a check runs,
so a command that runs no checks (the SQL commands skip them) never loads them.

Extension point: :data:`FILE_CHECKS` is the list of functions run by the file
check; each takes no argument and returns a list of CheckMessages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.core import checks
from django.db import DatabaseError, connections

from . import conf
from .check_cache import reused_while_unchanged
from .database import connection_refusal, scrub
from .exceptions import ConfigurationError, DbMigrationsError, InvalidFiles, Problem

TAG = "dbmigrations"

# Problem.kind → (check id, hint): what the runner refuses to run.
FILE_ERRORS = {
    "name": ("dbmigrations.E001", "Rename it, e.g. 006_add_users.sql or 006_add_users.down.sql."),
    "duplicate": ("dbmigrations.E002", "Give each file its own number: renumber the newer one after the highest."),
    "orphan_down": ("dbmigrations.E003", "Name it like its up file (NNN_name.down.sql) or delete it."),
    "syntax": ("dbmigrations.E004", "Fix the SQL: PostgreSQL's grammar rejects it, or the runner cannot run it."),
    "encoding": ("dbmigrations.E005", "Save the file as UTF-8 text with LF (or CRLF) line endings."),
    "misplaced_down": ("dbmigrations.E007", "Seeds have no down files: delete it."),
}
OTHER_FILE_ERROR = (
    "dbmigrations.E009",
    "Fix what the message names: apply_sql_migrations and seed_dev refuse the file until then.",
)
# Refused by the runner too, but a fresh `new_sql_migration` scaffold must not stop the dev server.
FILE_WARNINGS = {
    "empty": (
        "dbmigrations.W006",
        "Write the migration's SQL, or delete the file: apply_sql_migrations refuses an empty file.",
    ),
}
MISSING_FOLDER = "dbmigrations.E010"
PENDING = "dbmigrations.W001"
DRIFT = "dbmigrations.W002"
MISSING = "dbmigrations.W003"
UNREADABLE = "dbmigrations.W004"
DATABASE_CONFIGURATION = "dbmigrations.E011"
REPLACED = "dbmigrations.W005"
SCHEMA_DRIFT = "dbmigrations.W007"


def display_path(path: str | Path) -> str:
    """``path`` relative to the project (BASE_DIR) when inside it, as written otherwise."""
    from .discovery import relative_path

    return relative_path(path, conf.base_dir())


def problem_message(problem: Problem) -> checks.CheckMessage:
    """The Error (a Warning for an empty file) of one file problem; ``obj`` is ``path[:line[:column]]``."""
    level, (check_id, hint) = (
        (checks.Warning, FILE_WARNINGS[problem.kind])
        if problem.kind in FILE_WARNINGS
        else (checks.Error, FILE_ERRORS.get(problem.kind, OTHER_FILE_ERROR))
    )
    where = display_path(problem.path)
    if problem.line is not None:
        where += f":{problem.line}" + (f":{problem.column}" if problem.column is not None else "")
    return level(problem.message, hint=hint, obj=where, id=check_id)


@reused_while_unchanged
def migration_file_messages() -> list[checks.CheckMessage]:
    """Every problem of the migration files (and their down files), as the runner's validation finds them."""
    from . import loader

    try:
        loader.migration_files(parse=True)
    except InvalidFiles as error:
        return [problem_message(p) for p in error.problems]
    except ConfigurationError as error:
        return [
            checks.Error(
                str(error), hint="Set SQL_MIGRATIONS_DIR to the folder of the .sql migrations.", id=MISSING_FOLDER
            )
        ]
    return []


@reused_while_unchanged
def seed_file_messages() -> list[checks.CheckMessage]:
    """Every problem of the development seed files."""
    from . import loader

    try:
        loader.seed_files()
    except InvalidFiles as error:
        return [problem_message(p) for p in error.problems]
    except ConfigurationError as error:
        return [
            checks.Error(
                str(error), hint="Set SQL_SEEDS_DIR to the seeds folder (it holds development/).", id=MISSING_FOLDER
            )
        ]
    return []


FileCheck = Callable[[], list[checks.CheckMessage]]
#: The file checks run by ``manage.py check`` (no database needed). Add yours here.
FILE_CHECKS: list[FileCheck] = [migration_file_messages, seed_file_messages]


def _checks_this_app(app_configs) -> bool:
    return app_configs is None or any(config.name == "dbmigrations" for config in app_configs)


@checks.register(TAG)
def check_sql_files(app_configs=None, **kwargs):
    """Errors for files the runner refuses (warnings for empty ones), from every function in FILE_CHECKS."""
    if not _checks_this_app(app_configs):
        return []
    return [message for check in FILE_CHECKS for message in check()]


@checks.register(TAG)
def check_sql_lint(app_configs=None, **kwargs):
    """The lint's findings as Warnings W1NN (:mod:`dbmigrations.lint.checks`), reused while the files are unchanged."""
    from .lint.checks import check_sql_lint as lint_warnings

    return lint_warnings(app_configs, **kwargs)


@checks.register(TAG)
def check_database_configuration(app_configs=None, **kwargs):
    """An Error per database whose configuration cannot work (read from settings; connects to nothing).

    Django's ``check``, ``migrate`` and ``runserver`` stop on it with the tool's one-line message;
    connecting anyway raises ``ImproperlyConfigured`` with the same message.
    """
    if not _checks_this_app(app_configs):
        return []
    errors = []
    for alias, settings in connections.settings.items():
        refusal = connection_refusal(settings)
        if refusal is not None:
            errors.append(
                checks.Error(
                    str(refusal),
                    obj=f"settings.DATABASES[{alias!r}]",
                    id=DATABASE_CONFIGURATION,
                    hint="Fix the database's environment variables (DATABASE_URL…) or settings.DATABASES.",
                )
            )
    return errors


@checks.register(TAG, checks.Tags.database)
def check_ledger(app_configs=None, databases=None, **kwargs):
    """Warnings for pending, modified and missing migrations in each database checked."""
    if not databases or not _checks_this_app(app_configs):
        return []
    from . import loader

    if any(message.is_serious() for message in migration_file_messages()):
        return []  # check_sql_files reports them; a plan of files the runner refuses would be wrong
    try:
        files = loader.migration_files()  # names and checksums are all a plan needs: no parse
    except (InvalidFiles, ConfigurationError):
        return []
    usable = [alias for alias in databases if connection_refusal(connections.settings[alias]) is None]  # else E011
    return [message for alias in usable for message in ledger_warnings(alias, files)]


def ledger_warnings(alias: str, files) -> list[checks.CheckMessage]:
    """Compare ``files`` with the ledger of database ``alias``; never raises for a database problem."""
    import psycopg

    from . import loader, plan
    from .api import connect

    try:
        session = connect(alias)
        entries = loader.migration_states(session, files)
    except (DbMigrationsError, DatabaseError, psycopg.Error) as error:  # the ledger is read with psycopg
        return [_unreadable(alias, error)]
    messages = schema_drift_warnings(alias, session, [e.row for e in entries if e.row is not None])
    waiting = plan.pending(entries)
    if waiting:
        messages.append(
            checks.Warning(
                f"You have {len(waiting)} unapplied SQL migration(s) in database '{alias}': "
                + ", ".join(e.name for e in waiting)
                + ".",
                hint="Run `python manage.py apply_sql_migrations` to apply them.",
                id=PENDING,
            )
        )
    for entry in plan.drifted(entries):
        messages.append(
            checks.Warning(
                f"applied to database '{alias}' but changed on disk since (checksum {entry.row.checksum[:12]} "
                f"recorded, {entry.file.checksum[:12]} now).",
                hint="Never edit an applied migration: add a new one. If the change is harmless (whitespace, "
                "comments), run `python manage.py repair_sql_migrations` to record the new checksum.",
                obj=display_path(entry.file.path),
                id=DRIFT,
            )
        )
    for entry in plan.missing(entries):
        messages.append(
            checks.Warning(
                f"recorded as applied in database '{alias}' but its file is missing from "
                f"{display_path(conf.migrations_dir())}.",
                hint="Restore the file from version control; applied migrations are never deleted.",
                obj=entry.row.filename or entry.name,
                id=MISSING,
            )
        )
    for entry in plan.replaced(entries):
        messages.append(
            checks.Warning(
                f"holds version {entry.version}, which database '{alias}' applied from another file, "
                f"{entry.row.filename}: this file's SQL never ran there.",
                hint="Rename it to a free version (`apply_sql_migrations` names one; `new_sql_migration` skips versions "
                f"the ledger knows), or bring back {entry.row.filename} to roll it back. apply_sql_migrations "
                "refuses it until then.",
                obj=display_path(entry.file.path),
                id=REPLACED,
            )
        )
    return messages


def schema_drift_warnings(alias: str, session, rows=None) -> list[checks.CheckMessage]:
    """A warning when the database differs from the expected schema ``check_sql_schema`` stored.

    Silent when none is stored, or when the ledger changed since (only a new
    ``check_sql_schema`` can tell then): this runs before every ``migrate``.
    """
    import psycopg

    from . import drift, ledger  # the catalog and executor: only for database checks

    try:
        result = drift.compare_with_stored(session, rows)
    except (DbMigrationsError, DatabaseError, psycopg.Error) as error:  # e.g. a role that may read the ledger only
        text = str(error).strip()
        password = (connections.settings.get(alias) or {}).get("PASSWORD") or ""
        return [
            checks.Warning(
                f"cannot compare database '{alias}' with the schema check_sql_schema stored: "
                + scrub(text.splitlines()[0] if text else type(error).__name__, password),
                hint=f"Grant this role SELECT on {ledger.display_name()}_snapshot (check_sql_schema grants it to "
                "the ledger's readers when it stores the schema).",
                id=SCHEMA_DRIFT,
            )
        ]
    if result.state != "drift":
        return []
    shown = [d.render().replace("\n    ", "; ") for d in result.differences[:5]]
    more = len(result.differences) - len(shown)
    return [
        checks.Warning(
            f"database '{alias}' differs from the schema its applied SQL migrations build "
            f"({len(result.differences)} difference(s)): "
            + " | ".join(shown)
            + (f" | and {more} more" if more else ""),
            hint="Run `python manage.py check_sql_schema` for the full report; put a hand-made change into a "
            "migration, or undo it.",
            id=SCHEMA_DRIFT,
        )
    ]


def _unreadable(alias: str, error: Exception) -> checks.Warning:
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    password = (connections.settings.get(alias) or {}).get("PASSWORD") or ""
    return checks.Warning(
        f"cannot read the SQL migration ledger of database '{alias}': {scrub(first, password)}",
        hint="Check the database settings (DATABASE_URL…) and that the server is running; "
        "pending SQL migrations were not checked.",
        id=UNREADABLE,
    )
