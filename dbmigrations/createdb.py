"""Creating the configured database when it does not exist yet (dbmate's ``create``, Rails' ``db:prepare``).

Opt-in and never in production: a typo in a production URL must fail, not create an empty
database that a deploy then fills.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from . import conf
from .exceptions import DatabaseUnavailable, ProductionGuard
from .scratch import maintenance_connection, server_params


def create_database(alias: str) -> bool:
    """Create the database of Django alias ``alias`` if missing; True when it was created.

    Connects to the same server with the same login, through its maintenance database.
    """
    if conf.is_production():
        raise ProductionGuard(
            conf.production_refusal(
                "creating the database",
                "in production the database must already exist (a missing one is a typo "
                "in its URL, not something to create).",
            )
        )
    params = server_params(alias)
    name = params["dbname"]
    with maintenance_connection(params) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False  # another process created it a moment ago
        except psycopg.Error as error:
            raise DatabaseUnavailable(
                f"cannot create database {name!r}: {error.diag.message_primary or error} "
                "(the login needs the CREATEDB privilege)"
            ) from None
    return True
