"""Resetting a development database: drop the ``public`` schema and recreate it as new.

The schema (and the ``schema_migrations`` ledger in it; a ledger kept in another schema
by ``SQL_MIGRATIONS_SCHEMA`` is dropped too) is dropped and created again with
PostgreSQL's own defaults for a new database, so ``apply_sql_migrations`` then
rebuilds from zero: on 15+ owned by ``pg_database_owner`` with USAGE for PUBLIC; on 14
owned by the bootstrap superuser with CREATE and USAGE for PUBLIC. All of it runs in
one transaction under the migration lock: a failure changes nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from psycopg import errors, sql

from . import conf, ledger
from .database import DatabaseTarget
from .exceptions import RemoteDatabase, ResetFailed
from .locks import lock_statements, raise_for_lock, with_lock_retries
from .session import BatchError, Part, Session, run_batch

SCHEMA = "public"
COMMENT = "standard public schema"
LOCAL_NAMES = {"localhost"}
COUNT_TABLES = """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = %s AND c.relkind IN ('r', 'p')"""
BOOTSTRAP_SUPERUSER = "SELECT rolname FROM pg_roles WHERE oid = 10"


@dataclass(frozen=True)
class ResetResult:
    """What the reset removed."""

    tables: int
    ledger_rows: int | None  # None: the login may not read the ledger


def _is_local_host(host: str) -> bool:
    host = host.strip()
    if not host or host.startswith("/") or host.startswith("@") or host.lower() in LOCAL_NAMES:
        return True  # no host: libpq's default unix socket; "/dir" or "@name": a unix socket
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_local(target: DatabaseTarget) -> bool:
    """True for the embedded server, a unix socket, localhost and loopback addresses."""
    if target.is_embedded:
        return True
    settings = target.settings
    hosts = str(settings.get("HOST") or "").split(",")
    hostaddrs = [h for h in str((settings.get("OPTIONS") or {}).get("hostaddr") or "").split(",") if h.strip()]
    return all(_is_local_host(h) for h in hosts + hostaddrs)


def check_target(target: DatabaseTarget, *, allow_remote: bool = False) -> None:
    """Refuse production always, and a database on another machine unless ``allow_remote``.

    Reads only the configuration: runs before any connection.
    """
    conf.refuse_in_production(
        "reset_db", "it drops every table and all data, so it never runs in production (no option allows it)."
    )
    if not allow_remote and not is_local(target):
        raise RemoteDatabase(
            f"reset_db refused: {target.masked_url} is not on this machine (only localhost, loopback "
            "addresses, unix sockets and the embedded server are reset without asking twice). If this "
            "database really is disposable, run again with --allow-remote. Nothing was changed."
        )


def check_connected_server(session: Session, target: DatabaseTarget, *, allow_remote: bool = False) -> str:
    """Refuse unless the server actually reached is local; return where it is, for the prompt.

    The configuration can leave the host to libpq (``PGHOST``, a service file), so the
    check before connecting is repeated on the live connection, before anything is dropped.
    """
    info = session.connection.info
    where = info.hostaddr or info.host
    local = _is_local_host(info.host) and (not info.hostaddr or _is_local_host(info.hostaddr))
    if not allow_remote and not local and not target.is_embedded:
        raise RemoteDatabase(
            f"reset_db refused: {target.masked_url} reached the server at {where}, which is not on this machine "
            "(PGHOST or a service file chose it). If this database really is disposable, run again with "
            "--allow-remote. Nothing was changed."
        )
    return where


def recreate_statements(session: Session) -> list[str]:
    """DROP and CREATE of ``public`` with a new database's owner, privileges and comment."""
    connection = session.connection
    if session.server_version >= 150000:
        owner, grant = "pg_database_owner", "USAGE"
    else:
        owner, grant = session.fetch(BOOTSTRAP_SUPERUSER)[0][0], "CREATE, USAGE"
    schema = sql.Identifier(SCHEMA)
    return [
        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema).as_string(connection),
        sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(schema, sql.Identifier(owner)).as_string(connection),
        sql.SQL("GRANT {} ON SCHEMA {} TO PUBLIC").format(sql.SQL(grant), schema).as_string(connection),
        sql.SQL("COMMENT ON SCHEMA {} IS {}").format(schema, sql.Literal(COMMENT)).as_string(connection),
    ]


def reset_schema(session: Session, *, lock_timeout: float | None = None) -> ResetResult:
    """Drop and recreate ``public`` in one transaction; raise :class:`ResetFailed` if the server refuses."""
    tables = session.fetch(COUNT_TABLES, (SCHEMA,))[0][0]
    try:
        rows = len(ledger.applied(session, create=False))
    except errors.InsufficientPrivilege:
        rows = None
    recreate = recreate_statements(session)
    # A ledger kept in another schema (SQL_MIGRATIONS_SCHEMA) must go too, or it would claim what was dropped.
    forget = [ledger.drop_statement()] if ledger.schema() != SCHEMA else []
    try:
        with_lock_retries(
            lambda left: run_batch(session, [Part(("BEGIN", *lock_statements(left), *recreate, *forget, "COMMIT"))]),
            lock_timeout,
        )
    except BatchError as error:
        raise_for_lock(error, lock_timeout)
        diag = error.error.diag
        message = f"reset_db failed, nothing was changed: ERROR {error.sqlstate}: {diag.message_primary or error}"
        if isinstance(error.error, errors.InsufficientPrivilege):
            message += (
                "\n  Reset needs the owner of the database (or a superuser): the public schema "
                "is dropped and created again."
            )
        raise ResetFailed(message) from None
    return ResetResult(tables, rows)
