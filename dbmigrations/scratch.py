"""A throwaway database on the configured server: created, handed out, always dropped.

Same server and credentials as a Django alias; the ``CREATE``/``DROP DATABASE`` go
through a maintenance database (``postgres``, else the configured one, else
``template1``). The drop runs in a ``finally``, so an error, Ctrl-C or SIGTERM
(raised as ``KeyboardInterrupt``) still removes it; ``WITH (FORCE)`` ends any
session left on it.
"""

from __future__ import annotations

import secrets
from contextlib import contextmanager

import psycopg
from psycopg import sql

from .database import libpq_keywords, scrub
from .exceptions import DatabaseUnavailable
from .session import Session

MAINTENANCE_DATABASES = ("postgres", None, "template1")  # None: the configured database itself
CONNECT_TIMEOUT = "10"


def server_params(alias: str) -> dict:
    """libpq parameters of a Django alias (same server and credentials; starts the embedded server)."""
    from django.db import connections

    params = connections[alias].get_connection_params()
    keywords = libpq_keywords()
    params = {k: v for k, v in params.items() if k in keywords and v is not None}
    return {"connect_timeout": CONNECT_TIMEOUT, **params}


@contextmanager
def scratch_database(params: dict, prefix: str = "verify_"):
    """Create ``<prefix><random>`` on the server of ``params``; yield ``(name, Session)``; always drop it."""
    name = prefix + secrets.token_hex(6)
    with maintenance_connection(params) as admin:
        try:
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        except psycopg.Error as error:
            raise DatabaseUnavailable(
                f"cannot create the scratch database {name}: {_message(error, params)} (the role needs CREATEDB)"
            ) from None
    try:
        try:
            connection = psycopg.connect(**{**params, "dbname": name}, autocommit=True)
        except psycopg.Error as error:  # pg_hba.conf naming databases, a connection limit, …
            raise DatabaseUnavailable(
                f"cannot connect to the scratch database {name}: {_message(error, params)}"
            ) from None
        try:
            yield name, Session(connection)
        finally:
            connection.close()
    finally:
        _drop(params, name)


@contextmanager
def maintenance_connection(params: dict):
    """An autocommit connection to the server of ``params`` for CREATE/DROP DATABASE."""
    errors = []
    for dbname in MAINTENANCE_DATABASES:
        try:
            connection = psycopg.connect(**{**params, "dbname": dbname or params.get("dbname")}, autocommit=True)
        except psycopg.Error as error:
            errors.append(error)
            continue
        with connection:
            yield connection
        return
    raise DatabaseUnavailable(f"cannot connect to the database server: {_message(errors[0], params)}")


def _drop(params: dict, name: str) -> None:
    try:
        with maintenance_connection(params) as admin:
            if admin.info.server_version >= 130000:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            else:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    except (psycopg.Error, DatabaseUnavailable) as error:
        raise DatabaseUnavailable(
            f"could not drop the scratch database {name} ({_message(error, params)}); drop it with: "
            f"DROP DATABASE IF EXISTS {name} WITH (FORCE);"
        ) from None


def _message(error: Exception, params: dict) -> str:
    text = str(error).strip().splitlines()
    return scrub(text[0] if text else repr(error), params.get("password") or "")
