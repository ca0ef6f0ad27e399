"""Test harness: a real PostgreSQL server per test session and a fresh database per test.

The server is a throwaway embedded one (pgserver) in a temp dir, or the server of
``TEST_DATABASE_URL`` when set. Every test that changes a database gets one that is
indistinguishable from a brand-new one (``database`` fixture): each xdist worker keeps
one database and empties it between tests, checking it against a fingerprint of a
freshly created database, and recreates it whenever anything is left over.
Commands run end to end, either as subprocesses (``manage``: the real process, its
exit code, stdout, stderr; for what only a process shows: the settings module
reading the environment, argv parsing, stdin prompts, signals, concurrency) or
in-process (``call``: the same command through ``call_command``, about ten times cheaper).
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
from contextlib import contextmanager
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
    "DATABASE_URL_UNPOOLED",
    "POSTGRES_URL_NON_POOLING",
    "DATABASE_URL",
    "POSTGRES_URL",
    "POSTGRES_PRISMA_URL",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DATABASE",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "NODE_ENV",
    "VERCEL",
    "VERCEL_ENV",
    "VERCEL_URL",
    "SQL_MIGRATIONS_DIR",
    "SQL_SEEDS_DIR",
    "SQL_MIGRATIONS_ON_PREVIEW",
    "GITHUB_ACTIONS",
    "SQL_EMBEDDED_PGDATA",
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
        return Server(
            info.get("host", "localhost"),
            str(info.get("port", "")),
            info.get("user", "postgres"),
            info.get("password", ""),
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        # Not under pytest's tmp dir: a concurrent pytest run resets pytest-of-<user> to 0700,
        # which locks out the server's own system user when running as root.
        home = Path(tempfile.mkdtemp(prefix="bestrong-test-pg-"))
        atexit.register(shutil.rmtree, home, ignore_errors=True)  # runs after pgserver's own cleanup (LIFO)
        server = pgserver.get_server(home / "data", cleanup_mode="delete")
    return Server(str(server.get_postmaster_info().socket_dir), "", "postgres", "")


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing():
    """In-process logins hash with MD5 (Django's advice for tests): PBKDF2 costs ~0.3 s of CPU per hash.

    What the tests check is who may see and change what, not the hash; ``manage`` subprocesses
    (``createsuperuser``) keep the project's real hashers.
    """
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def django_db_modify_db_settings(pg_server, request):
    """Point Django's default alias (and so pytest-django's test database) at the test server."""
    from django.conf import settings

    default = settings.DATABASES["default"]
    default.pop("CONFIG_ERROR", None)
    default.update(
        ENGINE="django.db.backends.postgresql",
        NAME="bestrong",
        USER=pg_server.user,
        PASSWORD=pg_server.password,
        HOST=pg_server.host,
        PORT=pg_server.port,
        OPTIONS={},
        SOURCE="TEST_DATABASE_URL",
        POOLED=False,
    )
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


class DatabasePool:
    """One reusable test database per worker, handed out fresh to every test.

    Creating and dropping a database per test costs the server ~130 ms of CPU; emptying
    one costs ~10 ms. Emptying: end every other session in it, drop every schema but the
    system ones, recreate ``public`` as a new database has it. Then the database must match
    the fingerprint taken right after it was created (every user object in every catalog of
    the database, ACLs of system objects, the database's own owner, ACL, settings and
    comment); anything else (an event trigger, a default privilege, a large object, a
    changed owner, …) makes it drop the database and create a new one instead.
    """

    def __init__(self, server: Server):
        self.server = server
        self.name: str | None = None
        self.fresh: str | None = None
        self._fingerprint_sql: str | None = None
        self._public: tuple[str, list[tuple[str, str]], str | None] | None = None

    def acquire(self) -> str:
        """The name of an empty database, indistinguishable from a new one."""
        if self.name is not None:
            try:
                if self._empty() == self.fresh:
                    return self.name
            except psycopg.Error:
                pass
            self.drop()
        self._create()
        return self.name

    def drop(self) -> None:
        if self.name is not None:
            with self.server.connect() as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
            self.name = None

    def _create(self) -> None:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.server.connect() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        self.name = name
        with self.server.connect(name) as connection:
            self.fresh = self._fingerprint(connection)
            if self._public is None:
                owner, comment = connection.execute(
                    "SELECT nspowner::regrole::text, obj_description(oid, 'pg_namespace') FROM pg_namespace "
                    "WHERE nspname = 'public'"
                ).fetchone()
                grants = connection.execute(
                    "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.privilege_type "
                    "FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = 'public' AND a.grantee <> n.nspowner"
                ).fetchall()
                self._public = (owner, grants, comment)

    def _empty(self) -> str:
        owner, grants, comment = self._public
        with self.server.connect(self.name) as connection:
            others = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
            for (pid,) in others:  # waits until it is gone (its temp tables and locks with it)
                connection.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
            with connection.transaction():
                schemas = connection.execute(
                    "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') "
                    r"AND nspname !~ '^pg_(toast|temp_\d+|toast_temp_\d+)$'"
                ).fetchall()
                for (schema,) in schemas:
                    connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
                connection.execute(sql.SQL("CREATE SCHEMA public AUTHORIZATION {}").format(sql.Identifier(owner)))
                for grantee, privilege in grants:
                    to = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
                    connection.execute(sql.SQL("GRANT {} ON SCHEMA public TO {}").format(sql.SQL(privilege), to))
                connection.execute(sql.SQL("COMMENT ON SCHEMA public IS {}").format(sql.Literal(comment)))
            return self._fingerprint(connection)

    def _fingerprint(self, connection: psycopg.Connection) -> str:
        if self._fingerprint_sql is None:
            self._fingerprint_sql = self._fingerprint_query(connection)
        return connection.execute(self._fingerprint_sql).fetchone()[0]

    @staticmethod
    def _fingerprint_query(connection: psycopg.Connection) -> str:
        """One query over every catalog of the database: user objects (oid >= 16384) and every ACL."""
        catalogs = connection.execute(
            "SELECT c.relname, bool_or(a.attname = 'oid'), array_agg(a.attname::text) FILTER "
            "(WHERE a.atttypid = 'aclitem[]'::regtype) FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r' AND NOT c.relisshared "
            "AND a.attnum > 0 AND NOT a.attisdropped GROUP BY c.relname ORDER BY c.relname"
        ).fetchall()
        parts = []
        for catalog, has_oid, acl_columns in catalogs:
            if catalog == "pg_namespace":  # by name below: a recreated public has a new oid
                continue
            if has_oid:
                parts.append(
                    sql.SQL("(SELECT {} || ': ' || count(*) FROM pg_catalog.{} WHERE oid >= 16384)").format(
                        sql.Literal(catalog), sql.Identifier(catalog)
                    )
                )
            # The initial privileges of the original public schema (oid 2200) are not recreated with it
            # (nor by reset_db): only pg_dump reads them.
            where = sql.SQL(
                "NOT (classoid = 'pg_namespace'::regclass AND objoid = 2200)" if catalog == "pg_init_privs" else "true"
            )
            for column in acl_columns or ():
                parts.append(
                    sql.SQL(
                        "(SELECT {} || ': ' || coalesce(md5(string_agg({}::text, ',' ORDER BY 1)), '') "
                        "FROM pg_catalog.{} WHERE {} IS NOT NULL AND {})"
                    ).format(
                        sql.Literal(f"{catalog}.{column}"),
                        sql.Identifier(column),
                        sql.Identifier(catalog),
                        sql.Identifier(column),
                        where,
                    )
                )
        parts.append(
            sql.SQL(
                "(SELECT string_agg(format('%s %s %s %s', nspname, nspowner::regrole, nspacl, "
                "obj_description(oid, 'pg_namespace')), '; ' ORDER BY nspname) FROM pg_namespace "
                r"WHERE nspname !~ '^pg_(temp|toast_temp)_\d+$')"
            )
        )
        parts.append(
            sql.SQL(
                "(SELECT format('%s %s %s %s %s %s', datdba::regrole, datacl, datconnlimit, datallowconn, datistemplate, "
                "shobj_description(oid, 'pg_database')) || ' settings: ' || (SELECT count(*) FROM pg_db_role_setting "
                "WHERE setdatabase = d.oid) FROM pg_database d WHERE datname = current_database())"
            )
        )
        return sql.SQL("SELECT concat_ws(E'\\n', {})").format(sql.SQL(", ").join(parts)).as_string(connection)


@pytest.fixture(scope="session")
def database_pool(pg_server) -> DatabasePool:
    """This worker's reusable test database (see :class:`DatabasePool`)."""
    pool = DatabasePool(pg_server)
    yield pool
    pool.drop()


@pytest.fixture
def database(database_pool) -> Database:
    """An empty database for this test, as a brand-new one would be."""
    db = Database(database_pool.server, database_pool.acquire())
    yield db
    db.close()


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without any database/deploy variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env["BESTRONG_ENV_FILE"] = os.devnull
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def spawn_manage(*args: str, env: dict[str, str]) -> subprocess.Popen:
    """Start ``manage.py ARGS`` in the background (for signals, kills and concurrent runners), output piped."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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
        extra = {
            "DATABASE_URL": database.url if database_url == "" else database_url,
            "SQL_EMBEDDED_PGDATA": str(tmp_path / "embedded-pgdata"),
        }
        if migrations is not None:
            extra["SQL_MIGRATIONS_DIR"] = str(migrations)
        if seeds is not None:
            extra["SQL_SEEDS_DIR"] = str(seeds)
        extra.update(env or {})
        proc = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *map(str, args)],
            cwd=ROOT,
            env=clean_env(**extra),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


# Read by bestrong/settings.py when it is imported: only a new process sees them (use ``manage``).
READ_AT_SETTINGS_IMPORT = (
    "BESTRONG_ENV_FILE",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "SQL_MIGRATIONS_LOG_LEVEL",
)
FOLDER_SETTINGS = ("SQL_MIGRATIONS_DIR", "SQL_SEEDS_DIR", "SQL_EMBEDDED_PGDATA")


@contextmanager
def environment(environ: dict[str, str]):
    """``os.environ`` is exactly ``environ`` inside the block, and as it was after it."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def default_database(database_settings: dict):
    """Django's ``default`` alias points at ``database_settings`` inside the block (a connection of its own)."""
    from django.db import connections

    saved_settings = connections.settings["default"]
    saved_connection = getattr(connections._connections, "default", None)
    base = {k: v for k, v in saved_settings.items() if k != "CONFIG_ERROR"}
    connections.settings["default"] = {**base, "OPTIONS": {}, **database_settings}
    if saved_connection is not None:
        del connections["default"]
    try:
        yield
    finally:
        if getattr(connections._connections, "default", None) is not None:
            connections["default"].close()
            del connections["default"]
        connections.settings["default"] = saved_settings
        if saved_connection is not None:
            connections["default"] = saved_connection


@pytest.fixture
def call(database, settings, django_db_blocker, tmp_path):
    """Run a command in-process (``call_command``) as ``manage`` runs it in a process, ~10x cheaper.

    ``call("apply_sql_migrations", "--plan", migrations=dir)`` → :class:`Result`; keyword options go to
    the command (``target="003"``). Like ``manage``: the environment is the test's without any
    database/deploy variable, plus ``env`` (``None`` unsets one), for the duration of the command;
    ``database_url=None`` leaves the database unset. Django's ``default`` alias is built from that
    environment by the same ``database_settings`` settings.py uses (so messages name ``'default'``),
    with a connection of its own that is closed afterwards. A ``CommandError`` becomes its exit code
    and is written to stderr as ``manage.py`` writes it. ``migrations``/``seeds`` set the folder
    settings, which then stay for the rest of the test.

    Use ``manage`` where the process is the point: variables read when settings.py is imported
    (``.env``), argv parsing errors (exit 2 from argparse), stdin prompts, signals, concurrency.
    """
    from django.core.management import CommandError, call_command
    from django.core.management.base import SystemCheckError

    from dbmigrations.database import database_settings

    def run(name, *args, migrations=None, seeds=None, env=None, database_url: str | None = "", **options):
        imported = sorted(set(env or {}) & set(READ_AT_SETTINGS_IMPORT))
        if imported:
            raise ValueError(f"{', '.join(imported)}: read when settings.py is imported; use the manage fixture")
        extra = {
            "DATABASE_URL": database.url if database_url == "" else database_url,
            "SQL_EMBEDDED_PGDATA": str(tmp_path / "embedded-pgdata"),
        }
        if migrations is not None:
            extra["SQL_MIGRATIONS_DIR"] = str(migrations)
        if seeds is not None:
            extra["SQL_SEEDS_DIR"] = str(seeds)
        extra.update(env or {})
        environ = clean_env(**extra)
        for setting in FOLDER_SETTINGS:  # what settings.py would have read from the environment
            if environ.get(setting):
                setattr(settings, setting, Path(environ[setting]))
        out, err = StringIO(), StringIO()
        with default_database(database_settings(environ)), environment(environ):
            try:
                call_command(name, *map(str, args), stdout=out, stderr=err, no_color=True, **options)
                code = 0
            except SystemCheckError as error:  # formats itself
                code = error.returncode
                err.write(f"{error}\n")
            except CommandError as error:
                code = error.returncode
                err.write(f"CommandError: {error}\n")
        return Result(code, out.getvalue(), err.getvalue())

    with django_db_blocker.unblock():
        yield run


def migration(name: str, body: str, *, wrap: bool = True, description: str | None = None) -> str:
    """The text of a migration in the spec's format (header, optional BEGIN/COMMIT wrapper)."""
    header = (
        f"-- Migration: {name}\n-- Description: {description or name.replace('_', ' ')}\n"
        f"-- Created: 2024-01-01\n-- Author: Test\n\n"
    )
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
