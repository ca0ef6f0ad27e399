"""Django's PostgreSQL backend, pointed at the embedded server started on first connection.

In production it raises ``ImproperlyConfigured`` instead (see ``database.connection_refusal``).
"""

from __future__ import annotations

import psycopg

from ... import conf, embedded
from ..postgresql import base
from .client import DatabaseClient


class DatabaseWrapper(base.DatabaseWrapper):
    client_class = DatabaseClient  # starts the server for dbshell too

    def get_connection_params(self):
        params = super().get_connection_params()  # refuses production before any server starts
        params["host"] = embedded.ensure_server(conf.embedded_data_dir())
        params["user"] = "postgres"
        return params

    def get_new_connection(self, conn_params):
        try:
            return super().get_new_connection(conn_params)
        except psycopg.OperationalError:
            # First use: the server runs, the project's database may not exist yet.
            if not self._create_database(conn_params):
                raise
            return super().get_new_connection(conn_params)

    @staticmethod
    def _create_database(conn_params) -> bool:
        """Create the configured database if it is missing; True when it was created."""
        admin = {k: conn_params[k] for k in ("host", "port", "user") if conn_params.get(k)}
        name = conn_params["dbname"]
        with psycopg.connect(**admin, dbname="postgres", autocommit=True) as connection:
            if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return False
            try:
                connection.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                pass  # another process created it a moment ago
        return True
