"""The shared base of every command: options, connection, errors → exit codes."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import OperationalError

from .. import conf
from ..database import DatabaseTarget, scrub, target_from_settings
from ..exceptions import ConfigurationError, DatabaseUnavailable, DbMigrationsError
from ..executor import Session


class SqlCommand(BaseCommand):
    """Base for the SQL migration commands: ``--database``, typed errors → ``CommandError``."""

    # The commands validate their own files; skipping Django's checks keeps a no-op run fast.
    requires_system_checks = []
    uses_database = True

    def add_arguments(self, parser):
        if self.uses_database:
            parser.add_argument(
                "--database", default=DEFAULT_DB_ALIAS,
                help='Database alias to use (default: "default").',
            )

    def execute(self, *args, **options):
        self.verbosity = options.get("verbosity", 1)
        try:
            return super().execute(*args, **options)
        except DbMigrationsError as error:
            raise CommandError(str(error), returncode=error.exit_code) from None

    def target(self, alias: str) -> DatabaseTarget:
        if alias not in connections.settings:
            raise ConfigurationError(f"unknown database alias {alias!r} (see settings.DATABASES)")
        return target_from_settings(connections[alias].settings_dict)

    def connect(self, alias: str, *, announce: bool = True) -> Session:
        """Open the connection for ``alias``; say which database it is (masked) on stderr."""
        target = self.target(alias)
        if target.is_embedded and conf.is_production():
            raise ConfigurationError(
                "no database configured in production (NODE_ENV/VERCEL_ENV=production): set "
                "DATABASE_URL_UNPOOLED, POSTGRES_URL_NON_POOLING or DATABASE_URL"
            )
        if announce and self.verbosity >= 1:
            self.stderr.write(f"Database: {target.describe()}", self.style.HTTP_INFO)
            if target.is_embedded:
                self.stderr.write(
                    f"  (embedded development server, data in {conf.embedded_data_dir()}; "
                    "set DATABASE_URL to use another database)"
                )
        connection = connections[alias]
        try:
            connection.ensure_connection()
        except OperationalError as error:
            message = scrub(str(error).strip().splitlines()[0] if str(error).strip() else repr(error), target.password)
            raise DatabaseUnavailable(f"cannot connect to {target.masked_url}: {message}") from None
        return Session(connection.connection)

    def fail(self, message: str, code: int = 1):
        raise CommandError(message, returncode=code)
