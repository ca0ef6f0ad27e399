"""The public Python API: apply and inspect the SQL migrations from code.

Each function is thin: find the files, open the connection of a Django database
alias, call the core (:class:`~dbmigrations.executor.MigrationExecutor`) and return its result object.
Django must be set up (``django.setup()``, or any code running under
``manage.py``/pytest-django). Failures raise the typed errors of
:mod:`dbmigrations.exceptions`; each carries ``exit_code``. Nothing here prints:
pass ``progress(event, payload)`` to follow along.

Events: ``("database", DatabaseTarget)`` just before connecting, then, while
applying, ``("start", Entry)`` and ``("done", Outcome)`` per migration, with
``("lock_wait", MigrationLockWait)`` while waiting for another runner and
``("lock_retry", LockRetry)`` after each table-lock timeout (see :mod:`dbmigrations.lockwait`).
"""

from __future__ import annotations

import os

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import Error as DjangoDatabaseError

from . import conf, ledger, loader
from .database import DatabaseTarget, connection_refusal, scrub, target_from_settings
from .discovery import SqlFile
from .events import Progress, quiet
from .exceptions import ConfigurationError, DatabaseUnavailable
from .executor import ApplyResult, MigrationExecutor, Outcome
from .lockpolicy import LockPolicy
from .plan import Entry, State
from .session import Session

__all__ = [
    "ApplyResult",
    "Entry",
    "Outcome",
    "State",
    "apply_migrations",
    "connect",
    "database_target",
    "migration_files",
    "migration_plan",
    "migration_status",
    "recorded_versions",
]


def database_target(database: str = DEFAULT_DB_ALIAS) -> DatabaseTarget:
    """Where the Django alias ``database`` points (masked URL, source variable, pooled or not)."""
    if database not in connections.settings:
        raise ConfigurationError(f"unknown database alias {database!r} (see settings.DATABASES)")
    return target_from_settings(connections[database].settings_dict)


def connect(database: str = DEFAULT_DB_ALIAS, *, progress: Progress | None = None) -> Session:
    """Open Django's connection for ``database`` and wrap it in a :class:`~dbmigrations.executor.Session`.

    Refuses a broken configuration and the embedded development server in production
    (:func:`~dbmigrations.database.connection_refusal`); an unreachable server or a failed
    login raises :class:`DatabaseUnavailable` without the password.
    """
    target = database_target(database)
    refusal = connection_refusal(connections[database].settings_dict)
    if refusal is not None:
        raise refusal
    (progress or quiet)("database", target)
    connection = connections[database]
    if connection.in_atomic_block:
        # The runner ends its own transactions (BEGIN … COMMIT per file): inside atomic() it would
        # commit, or abort, the caller's.
        raise ConfigurationError(
            f"database {database!r} is inside transaction.atomic(): run migrations outside it "
            "(in tests: use pytest-django's transactional_db, or the dbmigrations pytest plugin)"
        )
    _ensure_connection(connection, target)
    return Session(connection.connection, reopen=lambda: _another_session(database, target))


def _ensure_connection(connection, target: DatabaseTarget) -> None:
    try:
        connection.ensure_connection()
    except DjangoDatabaseError as error:  # also a bad URL parameter (connect_timeout=abc)
        text = str(error).strip()
        message = scrub(text.splitlines()[0] if text else repr(error), target.password)
        raise DatabaseUnavailable(f"cannot connect to {target.masked_url}: {message}") from None


def _another_session(database: str, target: DatabaseTarget) -> Session:
    """A second connection of the alias ``database``, set up by Django like the first (role, options)."""
    wrapper = connections.create_connection(database)
    _ensure_connection(wrapper, target)
    return Session(wrapper.connection)


def migration_files(migrations_dir: str | os.PathLike | None = None) -> list[SqlFile]:
    """The validated migration files of ``migrations_dir`` (default: the ``SQL_MIGRATIONS_DIR`` setting)."""
    # Parsed later, and only the files that will run (executor.check_plan).
    return loader.migration_files(migrations_dir)


def apply_migrations(
    database: str = DEFAULT_DB_ALIAS,
    *,
    migrations_dir: str | os.PathLike | None = None,
    target: int | str | None = None,
    fake: bool = False,
    strict_order: bool = False,
    lock_timeout: float | None = None,
    ddl_lock_timeout: float | None = None,
    lock_retry_budget: float | None = None,
    progress: Progress | None = None,
) -> ApplyResult:
    """Apply the pending migrations to ``database``, each in one transaction with its ledger row.

    ``target`` stops after that version (``3`` or ``"003"``); ``fake`` records without running;
    ``strict_order`` refuses pending files older than the newest applied one; ``lock_timeout``
    (seconds) bounds the wait for another runner's lock. ``ddl_lock_timeout`` bounds each
    statement's wait for a table lock and ``lock_retry_budget`` how long a migration is retried
    after such timeouts (default: the settings, 1 s and 300 s). Files are validated before connecting.
    """
    files = migration_files(migrations_dir)
    policy = LockPolicy.resolve(ddl_lock_timeout, lock_retry_budget)
    session = connect(database, progress=progress)
    executor = MigrationExecutor(
        session,
        lock_timeout=lock_timeout,
        pooled=database_target(database).pooled,
        progress=progress,
        lock_policy=policy,
    )
    return executor.apply(
        files, target=int(target) if target is not None else None, fake=fake, strict_order=strict_order
    )


def migration_plan(
    database: str = DEFAULT_DB_ALIAS,
    migrations_dir: str | os.PathLike | None = None,
    *,
    target: int | str | None = None,
    strict_order: bool = False,
    progress: Progress | None = None,
) -> list[Entry]:
    """The checked list of migrations :func:`apply_migrations` would run, in order; changes nothing.

    Raises what the run would raise before changing anything (drift, invalid SQL, a file
    that must run outside a transaction through a transaction pooler, …).
    """
    files = migration_files(migrations_dir)
    session = connect(database, progress=progress)
    executor = MigrationExecutor(session, pooled=database_target(database).pooled)
    return executor.plan(files, target=int(target) if target is not None else None, strict_order=strict_order)[1]


def migration_status(
    database: str = DEFAULT_DB_ALIAS,
    migrations_dir: str | os.PathLike | None = None,
    *,
    progress: Progress | None = None,
) -> list[Entry]:
    """One :class:`Entry` per version (applied, pending, partial, modified, replaced, missing) and per invalid
    file (invalid, with its problems: an invalid file does not hide the others); changes nothing."""
    files, problems = loader.scan_migrations(migrations_dir)
    session = connect(database, progress=progress)
    rows, ran, _complete = ledger.read_all(session)
    return loader.checked_states(files, problems, rows, progress=ran)


def recorded_versions(database: str = DEFAULT_DB_ALIAS, *, timeout: int = 3) -> list[str]:
    """The versions in the ledger of ``database`` (none without a ledger); reads only.

    For tools that must not wait long or start anything (``new_sql_migration``): a
    connection of its own with a ``timeout`` in seconds, and the embedded server is
    read only when it already runs. Raises :class:`DatabaseUnavailable` (without
    the password) when the ledger cannot be read.
    """
    import psycopg

    from . import embedded
    from .scratch import server_params

    target = database_target(database)
    refusal = connection_refusal(connections[database].settings_dict)
    if refusal is not None:
        raise refusal
    if target.is_embedded and not embedded.is_running(conf.embedded_data_dir()):
        raise DatabaseUnavailable(f"the embedded database is not running ({conf.embedded_data_dir()})")
    try:
        with psycopg.connect(
            **{**server_params(database), "connect_timeout": str(timeout)}, autocommit=True
        ) as connection:
            return [row.version for row in ledger.read(Session(connection))[0]]
    except psycopg.Error as error:
        text = str(error).strip()
        message = scrub(text.splitlines()[0] if text else type(error).__name__, target.password)
        raise DatabaseUnavailable(f"cannot read the ledger of {target.masked_url}: {message}") from None
