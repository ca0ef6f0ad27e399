"""Creating the configured database when it does not exist yet (dbmate's ``create``, Rails' ``db:prepare``).

Opt-in and never in production: a typo in a production URL must fail, not create an empty
database that a deploy then fills.
"""
from __future__ import annotations

import psycopg
from psycopg import sql

from . import conf
from .database import scrub
from .exceptions import DatabaseUnavailable, ProductionGuard

MAINTENANCE_DATABASES = ("postgres", "template1")
DJANGO_ONLY_PARAMS = ("cursor_factory", "context", "prepare_threshold")


def create_database(connection) -> bool:
    """Create the database of Django ``connection`` if missing; True when it was created.

    Connects to the same server with the same login, to its maintenance database.
    """
    if conf.is_production():
        raise ProductionGuard(conf.production_refusal(
            "creating the database", "in production the database must already exist (a missing one is a typo "
            "in its URL, not something to create)."))
    params = {k: v for k, v in connection.get_connection_params().items() if k not in DJANGO_ONLY_PARAMS}
    name = params.pop("dbname")
    last_error = None
    for maintenance in MAINTENANCE_DATABASES:
        try:
            with psycopg.connect(**params, dbname=maintenance, autocommit=True) as admin:
                if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                    return False
                try:
                    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except psycopg.errors.DuplicateDatabase:
                    return False  # another process created it a moment ago
                return True
        except psycopg.OperationalError as error:
            last_error = error
        except psycopg.errors.InsufficientPrivilege as error:
            raise DatabaseUnavailable(f"cannot create database {name!r}: {error.diag.message_primary} (the login "
                                      "needs the CREATEDB privilege)") from None
    text = str(last_error).strip().splitlines()[0] if last_error else "no maintenance database"
    raise DatabaseUnavailable(f"cannot reach the server to create database {name!r}: "
                              f"{scrub(text, params.get('password') or '')}")
