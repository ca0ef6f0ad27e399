"""Test harness: a real PostgreSQL server per test session and a fresh database per test.

The server is a throwaway embedded one (pgserver) in a temp dir, or the server of
``TEST_DATABASE_URL`` when set. Every test that changes a database gets its own,
created from ``template0`` and dropped afterwards (``database`` fixture). Commands
run end to end, either as subprocesses (``manage``: exit code, stdout, stderr) or
in-process (``call``: faster, same database through its own Django alias).
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
# Keep the lint's result cache out of the developer's ~/.cache (commands run here and in subprocesses).
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="bestrong-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)
CLEARED_ENV = (
    "DATABASE_URL_UNPOOLED", "POSTGRES_URL_NON_POOLING", "DATABASE_URL", "POSTGRES_URL", "POSTGRES_PRISMA_URL",
    "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DATABASE", "POSTGRES_USER", "POSTGRES_PASSWORD",
    "NODE_ENV", "VERCEL", "VERCEL_ENV", "VERCEL_URL", "SQL_MIGRATIONS_DIR", "SQL_SEEDS_DIR",
    "SQL_MIGRATIONS_ON_PREVIEW", "GITHUB_ACTIONS", "SQL_EMBEDDED_PGDATA",
)


@dataclass(frozen=True)
class Server:
    """Connection facts of the test server; ``url(name)`` builds a URL for one database."""

    host: str
    port: str
    user: str
    password: str

    def url(self, dbname: str, *, user: str | None = None, password: str | None = None) -> str:
        """A URL for ``dbname``, as the server's user or as ``user``/``password``."""
        from urllib.parse import quote

        user, password = (self.user, self.password) if user is None else (user, password or "")
        auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
        if self.host.startswith("/"):
            return f"postgresql://{auth}@/{dbname}?host={self.host}" + (f"&port={self.port}" if self.port else "")
        return f"postgresql://{auth}@{self.host}:{self.port or 5432}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(dbname), autocommit=True)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory) -> Server:
    """The PostgreSQL server every database test talks to."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        info = psycopg.conninfo.conninfo_to_dict(url)
        return Server(info.get("host", "localhost"), str(info.get("port", "")), info.get("user", "postgres"),
                      info.get("password", ""))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        # Not under pytest's tmp dir: a concurrent pytest run resets pytest-of-<user> to 0700,
        # which locks out the server's own system user when running as root.
        home = Path(tempfile.mkdtemp(prefix="bestrong-test-pg-"))
        atexit.register(shutil.rmtree, home, ignore_errors=True)  # runs after pgserver's own cleanup (LIFO)
        server = pgserver.get_server(home / "data", cleanup_mode="delete")
    return Server(str(server.get_postmaster_info().socket_dir), "", "postgres", "")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(pg_server, request):
    """Point Django's default alias (and so pytest-django's test database) at the test server."""
    from django.conf import settings

    default = settings.DATABASES["default"]
    default.pop("CONFIG_ERROR", None)
    default.update(ENGINE="django.db.backends.postgresql", NAME="bestrong", USER=pg_server.user,
                   PASSWORD=pg_server.password, HOST=pg_server.host, PORT=pg_server.port, OPTIONS={},
                   SOURCE="TEST_DATABASE_URL", POOLED=False)
    # django.setup() already built the default connection with the embedded backend (model
    # classes ask it for max_name_length), which would still connect to ./.pgdata: rebuild it.
    from django.db import connections

    connections["default"].close()
    del connections["default"]
    request.getfixturevalue("django_db_modify_db_settings_parallel_suffix")


@dataclass
class Database:
    """A fresh, empty database on the test server."""

    server: Server
    name: str
    _connection: psycopg.Connection | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.server.url(self.name)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def query(self, query: str, params=None) -> list[tuple]:
        if self._connection is None or self._connection.closed:
            self._connection = self.connect()
        with self._connection.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def tables(self, schema: str = "public") -> set[str]:
        return {r[0] for r in self.query("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))}

    def versions(self) -> list[str]:
        if "schema_migrations" not in self.tables():
            return []
        return [r[0] for r in self.query("SELECT version FROM schema_migrations ORDER BY version::bigint")]

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


@pytest.fixture
def database(pg_server) -> Database:
    """A brand-new database for this test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with pg_server.connect() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    db = Database(pg_server, name)
    yield db
    db.close()
    with pg_server.connect() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without any database/deploy variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env["BESTRONG_ENV_FILE"] = os.devnull
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def manage(database, tmp_path):
    """Run ``manage.py`` as a subprocess against the test's database.

    ``manage("apply_sql_migrations", migrations=dir)`` → :class:`Result`.
    ``env`` adds variables; ``database_url=None`` leaves the database unset.
    """

    def run(*args, migrations=None, seeds=None, env=None, database_url: str | None = "", input=None, timeout=120):
        extra = {"DATABASE_URL": database.url if database_url == "" else database_url,
                 "SQL_EMBEDDED_PGDATA": str(tmp_path / "embedded-pgdata")}
        if migrations is not None:
            extra["SQL_MIGRATIONS_DIR"] = str(migrations)
        if seeds is not None:
            extra["SQL_SEEDS_DIR"] = str(seeds)
        extra.update(env or {})
        proc = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *map(str, args)],
            cwd=ROOT, env=clean_env(**extra), input=input, capture_output=True, text=True, timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def call(database, settings, django_db_blocker):
    """Run a command in-process (``call_command``) against the test's database.

    Returns a :class:`Result`; a ``CommandError`` becomes its return code and message.
    """
    from django.core.management import CommandError, call_command
    from django.db import connections

    alias = f"test_{database.name}"
    connections.settings[alias] = {
        **connections.settings["default"], "ENGINE": "django.db.backends.postgresql", "NAME": database.name,
        "USER": database.server.user, "PASSWORD": database.server.password, "HOST": database.server.host,
        "PORT": database.server.port, "OPTIONS": {}, "SOURCE": "TEST_DATABASE_URL", "POOLED": False, "TEST": {},
    }
    connections.settings[alias].pop("CONFIG_ERROR", None)

    def run(name, *args, migrations=None, seeds=None, **options):
        if migrations is not None:
            settings.SQL_MIGRATIONS_DIR = Path(migrations)
        if seeds is not None:
            settings.SQL_SEEDS_DIR = Path(seeds)
        out, err = StringIO(), StringIO()
        try:
            call_command(name, *map(str, args), database=alias, stdout=out, stderr=err, no_color=True, **options)
            code = 0
        except CommandError as error:
            code = error.returncode
            err.write(str(error))
        return Result(code, out.getvalue(), err.getvalue())

    with django_db_blocker.unblock():
        yield run
        connections[alias].close()
    del connections[alias]
    del connections.settings[alias]


def migration(name: str, body: str, *, wrap: bool = True, description: str | None = None) -> str:
    """The text of a migration in the spec's format (header, optional BEGIN/COMMIT wrapper)."""
    header = (f"-- Migration: {name}\n-- Description: {description or name.replace('_', ' ')}\n"
              f"-- Created: 2024-01-01\n-- Author: Test\n\n")
    return header + (f"BEGIN;\n\n{body.strip()}\n\nCOMMIT;\n" if wrap else body.strip() + "\n")


def write_files(directory: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``{file name: text}`` into ``directory`` (created); return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = directory / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return directory


@pytest.fixture
def migrations_dir(tmp_path) -> Path:
    """An empty migrations folder for this test."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    return directory


SHIPPED_MIGRATIONS = ROOT / "migrations"
SHIPPED_SEEDS = ROOT / "seeds"
