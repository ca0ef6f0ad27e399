"""Never record what did not run: Ctrl-C, a lost connection, and option values that cannot be right.

The runner must say what became of the file in progress, in one line, and the
ledger must then tell the truth (``sql_migration_status``).
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import pytest

from dbmigrations.database import database_settings, parse_database_url, target_from_settings
from tests.conftest import clean_env, migration, spawn_manage, write_files


def stderr_lines(text: str) -> list[str]:
    """stderr without the ``Database: …`` banner."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("Database: ")]


def wait_for_query(database, pattern: str, timeout: float = 30) -> int:
    """The backend pid running a query LIKE ``pattern`` in the test's database, once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = database.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND (query LIKE %s OR wait_event = 'PgSleep') "
            "AND pid <> pg_backend_pid()",
            (database.name, pattern),
        )
        if rows:
            return rows[0][0]
        time.sleep(0.05)
    pytest.fail(f"no query like {pattern!r} started")


def status_of(manage, migrations_dir, version: str) -> str:
    result = manage("sql_migration_status", "--json", migrations=migrations_dir)
    states = {m["version"]: m["state"] for m in json.loads(result.stdout)["migrations"]}
    return states[version]


SLEEPY = {
    "001_sleepy.sql": migration("001_sleepy", "CREATE TABLE IF NOT EXISTS before_sleep (id int);\nSELECT pg_sleep(30);")
}


# --- 5. Ctrl-C --------------------------------------------------------------------------------------


def test_ctrl_c_during_a_migration_is_one_line_exit_130_and_nothing_recorded(manage, database, migrations_dir):
    write_files(migrations_dir, SLEEPY)
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    runner = spawn_manage("apply_sql_migrations", env=env)
    try:
        wait_for_query(database, "%pg_sleep(30)%")
        began = time.monotonic()
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=20)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130, (out, err)
    assert time.monotonic() - began < 10
    lines = stderr_lines(err)
    assert len(lines) == 1, err
    assert "001_sleepy.sql" in lines[0] and "rolled back" in lines[0] and "Traceback" not in err
    assert "Applying 001_sleepy … INTERRUPTED" in out
    assert database.versions() == [] and "before_sleep" not in database.tables()
    assert status_of(manage, migrations_dir, "001") == "pending"


# --- 6. --lock-timeout values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, message",
    [
        ("inf", "'inf' seconds is too long: at most 86400"),
        ("1e300", "'1e300' seconds is too long: at most 86400"),
        ("86401", "'86401' seconds is too long"),
        ("nan", "'nan' is not a positive number of seconds"),
    ],
)
def test_lock_timeout_must_be_finite_and_at_most_a_day(manage, database, migrations_dir, value, message):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);")})
    result = manage("apply_sql_migrations", "--lock-timeout", value, migrations=migrations_dir)
    assert result.returncode == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr
    assert database.tables() == set()


def test_a_lock_timeout_of_a_day_is_accepted(manage, database, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);")})
    result = manage("apply_sql_migrations", "--lock-timeout", "86400", migrations=migrations_dir)
    assert result.returncode == 0, result.output


# --- 7. Lost connections ----------------------------------------------------------------------------


def test_tcp_connections_get_keepalives_unless_the_url_sets_them():
    options = database_settings({"DATABASE_URL": "postgresql://app:pw@db.example.com/app"})["OPTIONS"]
    assert options["keepalives"] == "1" and int(options["keepalives_idle"]) <= 60
    assert "keepalives_interval" in options and "keepalives_count" in options and "tcp_user_timeout" in options
    own = database_settings({"DATABASE_URL": "postgresql://app:pw@db.example.com/app?keepalives_idle=5"})["OPTIONS"]
    assert own["keepalives_idle"] == "5"
    off = database_settings({"DATABASE_URL": "postgresql://app:pw@db.example.com/app?keepalives=0"})["OPTIONS"]
    assert off["keepalives"] == "0" and "keepalives_idle" not in off
    socket = database_settings({"DATABASE_URL": "postgresql://app@%2Fvar%2Frun%2Fpostgresql/app"})["OPTIONS"]
    assert not any(k.startswith(("keepalives", "tcp_user")) for k in socket)
    parts = database_settings({"POSTGRES_HOST": "db.example.com", "POSTGRES_DATABASE": "app", "POSTGRES_USER": "app"})[
        "OPTIONS"
    ]
    assert parts["keepalives"] == "1"


def test_the_banner_does_not_list_the_default_keepalives():
    target = parse_database_url("postgresql://app:pw@db.example.com/app?sslmode=require")
    assert target_from_settings(target.settings).masked_url == "postgresql://app:***@db.example.com/app?sslmode=require"


def test_a_connection_terminated_during_a_migration(manage, database, migrations_dir):
    write_files(migrations_dir, SLEEPY)
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    runner = spawn_manage("apply_sql_migrations", env=env)
    try:
        pid = wait_for_query(database, "%pg_sleep(30)%")
        database.query("SELECT pg_terminate_backend(%s)", (pid,))
        out, err = runner.communicate(timeout=20)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 1, (out, err)
    assert "Traceback" not in err and "Applying 001_sleepy … FAILED" in out
    assert "001_sleepy.sql" in err and "terminating connection" in err
    assert "rolled back and nothing was recorded" in err
    assert database.versions() == [] and "before_sleep" not in database.tables()
    assert status_of(manage, migrations_dir, "001") == "pending"


class SwallowingProxy:
    """A loopback TCP proxy to the test server that, once a client message contains ``marker``, lets the
    server answer it in full and then drops the client's connection without passing the answer on: a link
    that died after the server had committed."""

    def __init__(self, server, marker: bytes):
        self.server, self.marker = server, marker
        self.swallowed = threading.Event()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = None

        def run():
            asyncio.set_event_loop(self.loop)
            listener = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0))
            self.port = listener.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
            listener.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    async def handle(self, client_reader, client_writer):
        if self.server.host.startswith("/"):
            reader, writer = await asyncio.open_unix_connection(
                f"{self.server.host}/.s.PGSQL.{self.server.port or 5432}"
            )
        else:
            reader, writer = await asyncio.open_connection(self.server.host, int(self.server.port or 5432))
        armed = asyncio.Event()

        async def upstream():
            while data := await client_reader.read(65536):
                if self.marker in data:
                    armed.set()
                writer.write(data)
                await writer.drain()

        async def downstream():
            while data := await reader.read(65536):
                if not armed.is_set():
                    client_writer.write(data)
                    await client_writer.drain()
                elif b"Z\x00\x00\x00\x05" in data:  # ReadyForQuery: the server finished the whole message
                    self.swallowed.set()
                    client_writer.transport.abort()
                    writer.close()
                    return

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)
        client_writer.close()
        writer.close()

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_a_connection_lost_after_the_commit_was_sent_says_outcome_unknown(manage, database, migrations_dir, pg_server):
    from urllib.parse import quote

    write_files(
        migrations_dir,
        {"001_marked.sql": migration("001_marked", "CREATE TABLE IF NOT EXISTS outcome_marker (id int);")},
    )
    proxy = SwallowingProxy(pg_server, b"outcome_marker")
    auth = quote(pg_server.user, safe="") + (":" + quote(pg_server.password, safe="") if pg_server.password else "")
    try:
        result = manage(
            "apply_sql_migrations",
            migrations=migrations_dir,
            database_url=f"postgresql://{auth}@127.0.0.1:{proxy.port}/{database.name}",
            timeout=60,
        )
    finally:
        proxy.close()
    assert proxy.swallowed.is_set()
    assert result.returncode == 1, result.output
    assert "Applying 001_marked … OUTCOME UNKNOWN" in result.stdout and "FAILED" not in result.stdout
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1 and "outcome unknown" in lines[0] and "sql_migration_status" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    # The server had committed: the ledger, and so the status, say so.
    assert status_of(manage, migrations_dir, "001") == "applied"
    assert "outcome_marker" in database.tables()
