"""The shared base of every command: options, connection, errors → exit codes."""

from __future__ import annotations

import argparse
import sys

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from .. import __version__, conf, embedded, ledger
from ..database import DatabaseTarget, scrub
from ..exceptions import DbMigrationsError
from ..lockpolicy import LockPolicy
from ..session import BatchError, ConnectionLost, Session


def plain(text: str) -> str:
    """A style that leaves the text as it is (stderr's default would be the error style)."""
    return text


def version_number(value: str) -> int:
    """argparse type of ``--target``/``--to``: a migration version (``3`` or ``"003"``)."""
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a migration version (digits, e.g. 003)")
    return int(value)


MAX_SECONDS = 86_400  # a day: longer is a typo, and PostgreSQL's lock_timeout tops out near 24.8 days


def seconds(value: str) -> float:
    """argparse type of ``--lock-timeout``: a positive, finite number of seconds, at most a day."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0:  # also NaN
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    if number > MAX_SECONDS:  # also inf
        raise argparse.ArgumentTypeError(f"{value!r} seconds is too long: at most {MAX_SECONDS} (a day)")
    return number


EXIT_CODES = """exit codes:
  0  done, or nothing to do
  1  a SQL file failed on the server (rolled back), a table lock was not granted
     within the retry budget (rolled back, blockers named), or --check found something
  2  refused before changing anything: configuration, connection, invalid files,
     checksum drift, lock timeout, production guard"""
ENVIRONMENT = """environment (also read from .env at the project root; the real environment wins):
  DATABASE_URL_UNPOOLED, POSTGRES_URL_NON_POOLING, DATABASE_URL, POSTGRES_URL, POSTGRES_PRISMA_URL,
  POSTGRES_HOST (+ _PORT, _DATABASE, _USER, _PASSWORD)
                       the database: the first one set wins; none set: the embedded server
  SQL_MIGRATIONS_DIR   the migrations folder (default: migrations/ of the project)
  SQL_SEEDS_DIR        the seeds folder (default: seeds/ of the project)
  SQL_MIGRATIONS_DDL_LOCK_TIMEOUT, SQL_MIGRATIONS_LOCK_RETRY_BUDGET
                       seconds a migration's statement may wait for a table lock (default 1), and
                       how long a migration is retried after such timeouts (default 300)
  NODE_ENV, VERCEL_ENV, VERCEL
                       production (NODE_ENV or VERCEL_ENV = production) and the deploy mode (VERCEL=1)"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, DjangoHelpFormatter):
    """Django's option order, with the epilog's examples and tables kept as written."""


def tool_version() -> str:
    """The version of this tool (``--version``)."""
    return __version__


def seconds_or_zero(value: str) -> float:
    """argparse type of ``--ddl-lock-timeout``/``--lock-retry-budget``: seconds, 0 or more."""
    try:
        if float(value) == 0:
            return 0.0
    except ValueError:
        pass
    return seconds(value)


class SqlCommand(BaseCommand):
    """Base for the SQL migration commands: ``--database``, typed errors → ``CommandError``."""

    # The commands validate their own files; skipping Django's checks keeps a no-op run fast.
    requires_system_checks = []
    uses_database = True
    #: Example command lines for ``--help``.
    examples: tuple[str, ...] = ()

    def get_version(self):
        return f"bestrong-dbmigrations {tool_version()}"

    def create_parser(self, prog_name, subcommand, **kwargs):
        examples = "\n".join(f"  python manage.py {subcommand} {e}".rstrip() for e in self.examples)
        epilog = "\n\n".join(filter(None, [f"examples:\n{examples}" if examples else "", EXIT_CODES, ENVIRONMENT]))
        parser = super().create_parser(prog_name, subcommand, epilog=epilog, **kwargs)
        parser.formatter_class = HelpFormatter
        return parser

    def add_arguments(self, parser):
        if self.uses_database:
            parser.add_argument(
                "--database",
                default=DEFAULT_DB_ALIAS,
                help='Database alias to use (default: "default").',
            )

    def add_lock_timeout_argument(self, parser):
        parser.add_argument(
            "--lock-timeout",
            type=seconds,
            metavar="SECONDS",
            help="Give up (exit 2) after waiting this long for another runner's migration lock.",
        )

    def add_lock_wait_arguments(self, parser):
        parser.add_argument(
            "--ddl-lock-timeout",
            type=seconds_or_zero,
            metavar="SECONDS",
            help="Longest wait of a migration's statement for a table lock before its transaction is "
            "rolled back and retried (default: SQL_MIGRATIONS_DDL_LOCK_TIMEOUT or 1; 0 = the "
            "server's lock_timeout). A file's own SET lock_timeout wins.",
        )
        parser.add_argument(
            "--lock-retry-budget",
            type=seconds_or_zero,
            metavar="SECONDS",
            help="How long to keep retrying after table-lock timeouts before failing (exit 1) "
            "naming the blockers (default: SQL_MIGRATIONS_LOCK_RETRY_BUDGET or 300; 0 = no retry).",
        )

    def lock_policy(self, options) -> LockPolicy:
        """The DDL lock bound and retry budget of ``--ddl-lock-timeout``/``--lock-retry-budget`` or the settings."""
        return LockPolicy.resolve(options["ddl_lock_timeout"], options["lock_retry_budget"])

    def run_notes(self, run) -> str:
        """``, attempt 3, waited 4.2 s for the migration lock`` after a file's time, when they apply."""
        notes = "" if run.atomic else ", not atomic: ran outside a transaction"
        if run.resumed_after:
            notes += f", resumed after statement {run.resumed_after} (which an earlier run did)"
        if run.attempts > 1:
            notes += f", attempt {run.attempts}"
        if run.waited_ms >= 1000:
            notes += f", waited {run.waited_ms / 1000:.1f} s for the migration lock"
        return notes

    def report_lock(self, event: str, payload) -> None:
        """Render ``lock_wait``/``lock_retry`` events on their own line, then reopen the progress line."""
        if self.verbosity < 1:
            return
        reopen = getattr(self, "open_line", False) and getattr(self, "open_text", "")
        if reopen:
            self.stdout.write("")
        self.stdout.write("  " + payload.describe(), self.style.WARNING)
        if reopen:
            self.start_line(reopen)

    def execute(self, *args, **options):
        self.verbosity = options.get("verbosity", 1)
        try:
            return super().execute(*args, **options)
        except (psycopg.Error, BatchError, ConnectionLost, DatabaseError) as error:
            # A server error outside any file's statements (the connection lost mid-run, …): one line, exit 1.
            self.close_open_line()
            raise CommandError(f"database error: {self.scrubbed(error)}", returncode=1) from None
        except ImproperlyConfigured as error:  # the database backend's refusal (database.connection_refusal)
            self.close_open_line()
            raise CommandError(str(error), returncode=2) from None
        except DbMigrationsError as error:
            self.close_open_line(getattr(error, "progress_word", "FAILED"))
            from .. import annotations  # only for a failure

            if annotations.enabled():  # GitHub Actions: also point at the file and line in the PR
                annotations.annotate_error(getattr(self, "stdout", sys.stdout), error)
            raise CommandError(str(error), returncode=error.exit_code) from None
        except KeyboardInterrupt:
            # Outside a file (the core names the file it interrupts): one line, the shell's 128 + SIGINT.
            self.close_open_line("INTERRUPTED")
            raise CommandError(
                "interrupted (Ctrl-C): what was running was cancelled; run sql_migration_status to see what is applied",
                returncode=130,
            ) from None

    def start_line(self, text: str) -> None:
        """Begin a progress line ("Applying x … ") that :meth:`end_line` (or a failure) completes."""
        self.stdout.write(text, ending="")
        self.stdout.flush()
        self.open_line, self.open_text = True, text

    def end_line(self, text: str) -> None:
        self.stdout.write(text)
        self.open_line = False

    def close_open_line(self, word: str = "FAILED") -> None:
        """End a progress line ("Applying x … ") that awaits its result with FAILED (or ``word``)."""
        if getattr(self, "open_line", False):
            self.stdout.write(self.style.ERROR(word))
            self.open_line = False

    def scrubbed(self, error: Exception) -> str:
        """The first line of ``error`` without any configured password."""
        text = str(getattr(error, "error", error)).strip()
        first = text.splitlines()[0] if text else type(error).__name__
        passwords = [(settings.get("PASSWORD") or "") for settings in connections.settings.values()]
        return scrub(first, *passwords)

    def target(self, alias: str) -> DatabaseTarget:
        from .. import api  # here: the executor it loads is not needed by every command (the lint)

        return api.database_target(alias)

    def connect(self, alias: str, *, announce: bool = True) -> Session:
        """Open the connection for ``alias``; say which database it is (masked) on stderr."""
        from .. import api

        return api.connect(alias, progress=self.announce_database if announce else None)

    def announce_database(self, event: str, target) -> None:
        """Progress callback of :func:`dbmigrations.api.connect`: the ``Database: …`` line."""
        if event != "database" or self.verbosity < 1:
            return
        if target.is_embedded:  # its real, connectable URL (psql, dbshell)
            socket_dir = embedded.ensure_server(conf.embedded_data_dir())
            url = embedded.url(socket_dir, target.settings.get("NAME") or "bestrong")
            self.stderr.write(f"Database: embedded PostgreSQL {url}", self.style.HTTP_INFO)  # the URL alone: copyable
            self.stderr.write(
                f"  (embedded development server, data in {conf.embedded_data_dir()}; ledger "
                f"{ledger.display_name()}; set DATABASE_URL to use another database)",
                style_func=plain,
            )
        else:
            self.stderr.write(f"Database: {target.describe()}, ledger {ledger.display_name()}", self.style.HTTP_INFO)

    def fail(self, message: str, code: int = 1):
        raise CommandError(message, returncode=code)
