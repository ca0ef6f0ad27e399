"""Transaction poolers and files that run outside a transaction (CREATE INDEX CONCURRENTLY, …).

A real PgBouncer sits between the runner and the test server (``pool_mode=transaction`` on
an ordinary port, its URL without any pooler hint), and deploys run as processes, several at
once. Then: INVALID indexes, and resuming a file that stopped part-way (a failed statement,
``kill -9`` during a long concurrent index build); what only the runner's handling of a file
decides runs in-process (``call``).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from dbmigrations import pooler
from dbmigrations.session import Session
from tests.conftest import ROOT, Server, clean_env, migration, spawn_manage, write_files

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
)


@dataclass
class Bouncer:
    """A running PgBouncer in front of the test server."""

    port: int
    server: Server
    process: subprocess.Popen
    log: Path

    def url(self, dbname: str) -> str:
        return f"postgresql://{quote(self.server.user, safe='')}@127.0.0.1:{self.port}/{dbname}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_pgbouncer(server: Server, pool_mode: str, **settings) -> Bouncer:
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (.ci/run installs it with apt-get install pgbouncer)")
    folder = Path(tempfile.mkdtemp(prefix=f"bestrong-pgbouncer-{pool_mode}-"))
    port = _free_port()
    target = f"host={server.host} port={server.port or 5432} user={server.user}"
    if server.password:
        target += f" password={server.password}"
    (folder / "users.txt").write_text(f'"{server.user}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
* = {target}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = {pool_mode}
default_pool_size = 20
max_client_conn = 200
server_lifetime = 3600
logfile = {folder / "pgbouncer.log"}
"""
        + "".join(f"{key} = {value}\n" for key, value in settings.items())
    )
    command = [PGBOUNCER]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root; the embedded server's own user reaches its socket
        user = "pgserver" if _user_exists("pgserver") else "nobody"
        for path in (folder, *folder.iterdir()):
            shutil.chown(path, user)
        command += ["-u", user]
    process = subprocess.Popen(
        [*command, str(folder / "pgbouncer.ini")], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            log = folder / "pgbouncer.log"
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"pgbouncer did not start: {log.read_text() if log.exists() else 'no log'}")
            time.sleep(0.05)
    return Bouncer(port, server, process, folder / "pgbouncer.log")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="module")
def bouncers(pg_server):
    """``bouncers("transaction")``: a PgBouncer in that pool mode (and with those extra ``settings``), started
    once per module."""
    started: dict[tuple, Bouncer] = {}

    def get(pool_mode: str, **settings) -> Bouncer:
        key = (pool_mode, *sorted(settings.items()))
        if key not in started:
            started[key] = _start_pgbouncer(pg_server, pool_mode, **settings)
        return started[key]

    yield get
    for bouncer in started.values():
        bouncer.process.terminate()
        bouncer.process.wait(timeout=10)
        shutil.rmtree(bouncer.log.parent, ignore_errors=True)


def advisory_locks(database) -> int:
    """Advisory locks held or awaited on the test's database, by any session, once the backends of
    connections that just closed have ended (a leaked lock stays; a closing backend's goes within a moment)."""
    query = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    deadline = time.monotonic() + 5
    while (count := database.query(query)[0][0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def invalid_indexes(database) -> list[str]:
    return [r[0] for r in database.query("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid")]


def deploys(count: int, env: dict, *args: str) -> list[tuple[int, str, str]]:
    """``count`` apply_sql_migrations processes started at once; their exit codes and output."""
    runners = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "apply_sql_migrations", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    outputs = [runner.communicate(timeout=300) for runner in runners]
    return [(runner.returncode, out, err) for runner, (out, err) in zip(runners, outputs)]


def twenty_migrations(directory: Path) -> Path:
    """20 migrations; 005, 010 and 015 build an index concurrently (IF NOT EXISTS), the others create a
    table without IF NOT EXISTS (so one applied twice fails)."""
    files = {}
    for i in range(1, 21):
        name = f"{i:03d}_m{i}"
        if i in (5, 10, 15):
            body = f"CREATE INDEX CONCURRENTLY IF NOT EXISTS t{i - 1}_v ON t{i - 1} (v);"
            files[f"{name}.sql"] = migration(name, body, wrap=False)
        else:
            files[f"{name}.sql"] = migration(
                name,
                f"CREATE TABLE t{i} (id int, v int);\nINSERT INTO t{i} SELECT g, g FROM generate_series(1, 500) g;",
            )
    return write_files(directory, files)


# --- telling a transaction pooler from its behaviour -------------------------------------------------


def test_behaviour_tells_a_transaction_pooler_from_a_direct_or_session_connection(bouncers, database):
    def verdict(url):
        session = Session(psycopg.connect(url, autocommit=True))
        try:
            return pooler.transaction_pooler(session)
        finally:
            session.close()

    assert verdict(database.url) is None
    assert verdict(bouncers("session").url(database.name)) is None
    assert "server process" in verdict(bouncers("transaction").url(database.name))


def test_concurrently_through_pgbouncer_on_an_ordinary_port_is_refused_and_nothing_changes(
    bouncers, manage, database, migrations_dir
):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration("001_t", "CREATE TABLE t (x int);"),
            "002_i.sql": migration("002_i", "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_x ON t (x);", wrap=False),
        },
    )
    url = bouncers("transaction").url(database.name)
    for args in (("--plan",), ()):
        result = manage("apply_sql_migrations", *args, migrations=migrations_dir, database_url=url)
        assert result.returncode == 2, result.output
        assert "002_i must run outside a transaction" in result.stderr
        assert "This connection goes through one: " in result.stderr
        assert "Nothing was changed. Set DATABASE_URL_UNPOOLED" in result.stderr
        assert database.tables() == set()
    assert advisory_locks(database) == 0


def test_a_down_file_outside_a_transaction_is_refused_through_pgbouncer(bouncers, manage, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration("001_t", "CREATE TABLE t (x int);"),
            "002_i.sql": migration("002_i", "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_x ON t (x);", wrap=False),
            "002_i.down.sql": migration("002_i_down", "DROP INDEX CONCURRENTLY IF EXISTS t_x;", wrap=False),
        },
    )
    assert manage("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    result = manage(
        "rollback_sql_migrations", migrations=migrations_dir, database_url=bouncers("transaction").url(database.name)
    )
    assert result.returncode == 2, result.output
    assert "cannot roll back" in result.stderr and "This connection goes through one" in result.stderr
    assert database.versions() == ["001", "002"]
    assert database.query("SELECT count(*) FROM pg_indexes WHERE indexname = 't_x'") == [(1,)]


def test_through_a_session_pooler_files_outside_a_transaction_run_and_leave_no_lock(
    bouncers, manage, database, migrations_dir
):
    twenty_migrations(migrations_dir)
    result = manage(
        "apply_sql_migrations", migrations=migrations_dir, database_url=bouncers("session").url(database.name)
    )
    assert result.returncode == 0, result.output
    assert len(database.versions()) == 20
    assert invalid_indexes(database) == []
    assert advisory_locks(database) == 0


@pytest.mark.slow
def test_eight_concurrent_deploys_through_pgbouncer(bouncers, database, migrations_dir):
    twenty_migrations(migrations_dir)
    pooled = bouncers("transaction").url(database.name)
    outputs = []

    # Through the pooler alone: each deploy refuses before changing anything (or, should the
    # pooler behave like a session throughout the checks, applies everything correctly).
    results = deploys(8, clean_env(DATABASE_URL=pooled, SQL_MIGRATIONS_DIR=str(migrations_dir)))
    for code, out, err in results:
        assert code in (0, 2), out + err
        if code == 2:
            assert "005_m5, 010_m10, 015_m15 must run outside a transaction" in err
            assert "This connection goes through one" in err
    assert sum(code == 2 for code, _, _ in results) >= 6, results
    outputs += results
    assert advisory_locks(database) == 0

    # The transactional migrations before the first such file are safe through the pooler.
    results = deploys(8, clean_env(DATABASE_URL=pooled, SQL_MIGRATIONS_DIR=str(migrations_dir)), "--target", "4")
    assert [code for code, _, _ in results] == [0] * 8, results
    outputs += results
    assert advisory_locks(database) == 0

    # With the direct URL beside the pooled one (as Vercel/Neon set them): all of it.
    env = clean_env(DATABASE_URL=pooled, DATABASE_URL_UNPOOLED=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    results = deploys(8, env)
    assert [code for code, _, _ in results] == [0] * 8, results
    outputs += results

    assert database.versions() == [f"{i:03d}" for i in range(1, 21)]
    assert sum(out.count(" OK (") for _, out, _ in outputs) == 20  # each migration ran in exactly one deploy
    assert invalid_indexes(database) == []
    assert database.query(
        "SELECT count(*) FROM pg_index WHERE indexrelid::regclass::text IN ('t4_v', 't9_v', 't14_v')"
    ) == [(3,)]
    assert database.query("SELECT count(*) FROM schema_migrations_progress") == [(0,)]
    assert advisory_locks(database) == 0


def test_the_lock_of_a_failed_file_outside_a_transaction_is_not_left_behind(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration("001_t", "CREATE TABLE t (x int);"),
            "002_i.sql": migration("002_i", "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_x ON nope (x);", wrap=False),
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1, result.output
    assert advisory_locks(database) == 0  # while the runner's connection is still open


# --- INVALID indexes ------------------------------------------------------------------------------


def test_a_failed_concurrent_build_drops_the_invalid_index_it_left(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration("001_t", "CREATE TABLE dup (v int);\nINSERT INTO dup VALUES (1), (1);"),
            "002_idx.sql": migration("002_idx", "CREATE UNIQUE INDEX CONCURRENTLY dup_v ON dup (v);", wrap=False),
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1
    assert (
        "It left the INVALID index public.dup_v, which the runner dropped "
        "(DROP INDEX CONCURRENTLY IF EXISTS public.dup_v;)"
    ) in result.stderr
    assert database.query("SELECT count(*) FROM pg_class WHERE relname = 'dup_v'") == [(0,)]
    assert database.versions() == ["001"]


def test_an_unnamed_failed_concurrent_build_is_dropped_too(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration("001_t", "CREATE TABLE dup (v int);\nINSERT INTO dup VALUES (1), (1);"),
            "002_idx.sql": migration("002_idx", "CREATE UNIQUE INDEX CONCURRENTLY ON dup (v);", wrap=False),
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1
    assert "It left the INVALID index public.dup_v_idx, which the runner dropped" in result.stderr
    assert invalid_indexes(database) == []


def test_an_invalid_index_left_by_an_interrupted_run_is_rebuilt_not_kept(call, database, migrations_dir):
    write_files(
        migrations_dir, {"001_t.sql": migration("001_t", "CREATE TABLE dup (v int);\nINSERT INTO dup VALUES (1), (1);")}
    )
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    with pytest.raises(psycopg.errors.UniqueViolation):  # what a killed or failed earlier build leaves
        database.query("CREATE UNIQUE INDEX CONCURRENTLY dup_v ON dup (v)")
    database.query("DELETE FROM dup WHERE ctid = (SELECT max(ctid) FROM dup)")
    assert invalid_indexes(database) == ["dup_v"]
    write_files(
        migrations_dir,
        {
            "002_idx.sql": migration(
                "002_idx", "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS dup_v ON dup (v);", wrap=False
            )
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert "dropped the INVALID index public.dup_v (left by an interrupted build) and built it again" in result.stdout
    assert database.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'dup_v'::regclass") == [(True,)]
    assert database.versions() == ["001", "002"]


def test_invalid_index_lookup_follows_the_schema_and_the_search_path(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration(
                "001_t",
                "CREATE SCHEMA app;\n"
                "CREATE TABLE app.t (v int);\n"
                "CREATE TABLE public.t (v int);\n"
                "CREATE INDEX t_v ON public.t (v);",
            )
        },
    )
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    database.query("INSERT INTO app.t VALUES (1), (1)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        database.query("CREATE UNIQUE INDEX CONCURRENTLY t_v ON app.t (v)")
    database.query("TRUNCATE app.t")
    assert invalid_indexes(database) == ["app.t_v"]
    write_files(
        migrations_dir,
        {
            "002_qualified.sql": migration(
                "002_qualified",
                "SET search_path TO app;\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_v ON t (v);",
                wrap=False,
            )
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert "dropped the INVALID index app.t_v" in result.stdout
    assert invalid_indexes(database) == []
    assert database.query("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'app.t'::regclass") == [
        ("app.t_v",)
    ]
    assert database.query("SELECT count(*) FROM pg_index WHERE indexrelid = 'public.t_v'::regclass") == [(1,)]


def test_if_not_exists_skipping_a_taken_name_is_a_failure_not_an_applied_index(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration(
                "001_t", "CREATE TABLE a (v int);\nCREATE TABLE b (v int);\nCREATE INDEX v_idx ON a (v);"
            ),
            "002_idx.sql": migration("002_idx", "CREATE INDEX CONCURRENTLY IF NOT EXISTS v_idx ON b (v);", wrap=False),
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1, result.output
    assert (
        "002_idx.sql:6:1: ERROR: statement 1 returned without an error but built nothing: the name "
        "public.v_idx belongs to an index of another table"
    ) in result.stderr
    assert database.versions() == ["001"]


# --- resuming a file that stopped part-way -----------------------------------------------------------

PARTIAL = """SET search_path TO app;
INSERT INTO runs VALUES (1);
CREATE INDEX CONCURRENTLY IF NOT EXISTS runs_id ON runs (id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS other_id ON {table} (id);"""


def test_a_file_that_failed_part_way_resumes_after_the_statements_that_ran(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration(
                "001_t", "CREATE SCHEMA app;\nCREATE TABLE app.runs (id int);\nCREATE TABLE app.other (id int);"
            ),
            "002_idx.sql": migration("002_idx", PARTIAL.format(table="othr"), wrap=False),
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1
    assert "statements 1-3 ran and stay committed; statement 4 of 4 failed" in result.stderr
    assert "once the file is fixed, a rerun resumes at statement 4" in result.stderr

    status = call("sql_migration_status", migrations=migrations_dir)
    assert "PARTIAL   002_idx" in status.stdout
    assert "statements 1-3 of 4 ran before it stopped; a rerun resumes after them:" in status.stdout
    assert "    2  INSERT INTO runs VALUES (1)" in status.stdout
    assert "1 applied, 0 pending, 0 modified, 0 missing, 1 partial" in status.stdout
    data = json.loads(call("sql_migration_status", "--json", migrations=migrations_dir).stdout)
    entry = data["migrations"][1]
    assert entry["state"] == "partial"
    assert [r["index"] for r in entry["partial"]["ran"]] == [1, 2, 3]
    assert entry["partial"]["statements"] == 4
    assert data["summary"]["partial"] == 1
    assert call("sql_migration_status", "--check", migrations=migrations_dir).returncode == 1

    write_files(migrations_dir, {"002_idx.sql": migration("002_idx", PARTIAL.format(table="other"), wrap=False)})
    plan = call("apply_sql_migrations", "--plan", migrations=migrations_dir)
    assert "002_idx  (NO transaction (not atomic), 4 statement(s), resumes after statement 3)" in plan.stdout
    rerun = call("apply_sql_migrations", migrations=migrations_dir)
    assert rerun.returncode == 0, rerun.output
    assert "resumed after statement 3 (which an earlier run did)" in rerun.stdout
    assert database.query("SELECT count(*) FROM app.runs") == [(1,)]  # statement 2 did not run again
    # The replayed SET search_path put the index where the file meant it.
    assert database.query("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'app.other'::regclass") == [
        ("app.other_id",)
    ]
    assert database.versions() == ["001", "002"]
    assert database.query("SELECT count(*) FROM schema_migrations_progress") == [(0,)]
    assert call("sql_migration_status", "--check", migrations=migrations_dir).returncode == 0


def test_editing_a_statement_that_already_ran_is_refused(manage, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration("001_t", "CREATE SCHEMA app;\nCREATE TABLE app.runs (id int);"),
            "002_idx.sql": migration("002_idx", PARTIAL.format(table="nope"), wrap=False),
        },
    )
    assert manage("apply_sql_migrations", migrations=migrations_dir).returncode == 1
    edited = PARTIAL.format(table="runs").replace("VALUES (1)", "VALUES (2)")
    write_files(migrations_dir, {"002_idx.sql": migration("002_idx", edited, wrap=False)})
    result = manage("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2, result.output
    assert (
        "002_idx.sql: statement 2 already ran (in an earlier run that stopped part-way) and has been edited"
        in result.stderr
    )
    assert "DELETE FROM public.schema_migrations_progress WHERE version = '002';" in result.stderr
    assert database.query("SELECT id FROM app.runs") == [(1,)]
    status = manage("sql_migration_status", migrations=migrations_dir)
    assert "(edited since it ran: the rerun refuses)" in status.stdout


def _kill_during_blocked_build(database, migrations_dir, body: str) -> None:
    """Start a deploy whose concurrent index build waits behind an open transaction; kill -9 it there."""
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    blocker = database.connect()
    blocker.autocommit = False
    blocker.execute("INSERT INTO runs VALUES (100)")  # holds a lock CREATE INDEX CONCURRENTLY waits for
    write_files(migrations_dir, {"002_idx.sql": migration("002_idx", body, wrap=False)})
    runner = spawn_manage("apply_sql_migrations", env=env)
    building = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
        "AND query LIKE 'CREATE INDEX CONCURRENTLY%'"
    )
    deadline = time.monotonic() + 60
    while not database.query(building)[0][0]:
        assert time.monotonic() < deadline and runner.poll() is None, runner.communicate()
        time.sleep(0.05)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    time.sleep(2)  # the server notices the dead client (client_connection_check_interval) — or does not
    blocker.rollback()
    blocker.close()
    deadline = time.monotonic() + 30
    while database.query(building)[0][0]:  # an orphaned build finishes
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert advisory_locks(database) == 0


KILLED = """INSERT INTO log VALUES (1);
{setting}CREATE INDEX CONCURRENTLY IF NOT EXISTS runs_id ON runs (id);
INSERT INTO log VALUES (2);"""


@pytest.mark.slow
@pytest.mark.parametrize("server_finishes", [False, True], ids=["index-left-invalid", "server-finished-index"])
def test_kill_9_during_a_long_concurrent_build_then_rerun(manage, database, migrations_dir, server_finishes):
    write_files(
        migrations_dir, {"001_t.sql": migration("001_t", "CREATE TABLE runs (id int);\nCREATE TABLE log (step int);")}
    )
    assert manage("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    # A server that does not watch its clients (before PostgreSQL 14, or with the check off) finishes the build.
    setting = "SET client_connection_check_interval = 0;\n" if server_finishes else ""
    _kill_during_blocked_build(database, migrations_dir, KILLED.format(setting=setting))
    valid = database.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'runs_id'::regclass")
    assert valid == ([(True,)] if server_finishes else [(False,)])
    assert database.versions() == ["001"]
    status = manage("sql_migration_status", migrations=migrations_dir)
    assert "PARTIAL   002_idx" in status.stdout

    rerun = manage("apply_sql_migrations", migrations=migrations_dir)
    assert rerun.returncode == 0, rerun.output
    assert database.query("SELECT step FROM log ORDER BY step") == [(1,), (2,)]  # statement 1 ran once
    assert database.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'runs_id'::regclass") == [(True,)]
    assert ("dropped the INVALID index public.runs_id" in rerun.stdout) != server_finishes
    assert database.versions() == ["001", "002"]
    assert database.query("SELECT count(*) FROM schema_migrations_progress") == [(0,)]
    assert advisory_locks(database) == 0


@pytest.mark.slow
def test_losing_the_lock_connection_mid_file_records_nothing_and_the_rerun_finishes(manage, database, migrations_dir):
    write_files(
        migrations_dir, {"001_t.sql": migration("001_t", "CREATE TABLE runs (id int);\nCREATE TABLE log (step int);")}
    )
    assert manage("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    blocker = database.connect()
    blocker.autocommit = False
    blocker.execute("INSERT INTO runs VALUES (100)")
    write_files(migrations_dir, {"002_idx.sql": migration("002_idx", KILLED.format(setting=""), wrap=False)})
    runner = spawn_manage("apply_sql_migrations", env=env)
    holder = (
        "SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    deadline = time.monotonic() + 60
    while not database.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
        "query LIKE 'CREATE INDEX CONCURRENTLY%' AND state = 'active'"
    )[0][0]:
        assert time.monotonic() < deadline and runner.poll() is None, runner.communicate()
        time.sleep(0.05)
    ((pid,),) = database.query(holder)
    database.query("SELECT pg_terminate_backend(%s)", (pid,))
    blocker.rollback()
    blocker.close()
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 1, out + err
    assert "its statements ran, but recording it failed on the connection holding the migration lock" in err
    assert database.versions() == ["001"]
    rerun = manage("apply_sql_migrations", migrations=migrations_dir)
    assert rerun.returncode == 0, rerun.output
    assert "resumed after statement 3" in rerun.stdout
    assert database.query("SELECT step FROM log ORDER BY step") == [(1,), (2,)]
    assert database.versions() == ["001", "002"]


@pytest.mark.slow
def test_a_deploy_waiting_for_the_lock_does_not_stall_a_concurrent_index_build(database, migrations_dir, tmp_path):
    # A runner waiting for the migration lock inside the server would hold a snapshot, which
    # CREATE INDEX CONCURRENTLY waits for: the build would wait for the waiter, the waiter for the build.
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration("001_t", "CREATE TABLE runs (id int);"),
            "002_idx.sql": migration(
                "002_idx", "CREATE INDEX CONCURRENTLY IF NOT EXISTS runs_id ON runs (id);", wrap=False
            ),
        },
    )
    other = write_files(
        tmp_path / "other",
        {
            "001_t.sql": (migrations_dir / "001_t.sql").read_text(),
            "003_after.sql": migration("003_after", "CREATE TABLE after_build (id int);"),
        },
    )
    run = [sys.executable, str(ROOT / "manage.py"), "apply_sql_migrations"]
    assert (
        subprocess.run(
            [*run, "--target", "1"],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            env=clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir)),
        ).returncode
        == 0
    )
    blocker = database.connect()
    blocker.autocommit = False
    blocker.execute("INSERT INTO runs VALUES (1)")  # the build waits for this transaction first
    builder = subprocess.Popen(
        run,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir)),
    )
    deadline = time.monotonic() + 60
    while not database.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
        "query LIKE 'CREATE INDEX CONCURRENTLY%' AND state = 'active'"
    )[0][0]:
        assert time.monotonic() < deadline and builder.poll() is None, builder.communicate()
        time.sleep(0.05)
    waiter = subprocess.Popen(
        run,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(other)),
    )
    time.sleep(3)  # the waiter is waiting for the migration lock by now
    assert waiter.poll() is None
    blocker.rollback()
    blocker.close()
    built = builder.communicate(timeout=60)
    assert builder.returncode == 0, built
    waited = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, waited
    assert database.versions() == ["001", "002", "003"]
    assert database.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'runs_id'::regclass") == [(True,)]
    assert advisory_locks(database) == 0


def test_ddl_lock_retries_through_pgbouncer_leave_no_migration_lock_behind(bouncers, manage, database, migrations_dir):
    """A guard: DDL lock timeouts roll attempts back through a transaction pooler whose URL looks direct, and no
    migration lock stays behind on a pooled server connection (one client: the pooler reuses its connection)."""
    write_files(migrations_dir, {"001_t.sql": migration("001_t", "CREATE TABLE IF NOT EXISTS t (x int);")})
    assert manage("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    write_files(migrations_dir, {"002_add.sql": migration("002_add", "ALTER TABLE t ADD COLUMN IF NOT EXISTS y int;")})
    blocker = database.connect()
    blocker.autocommit = False
    blocker.execute("SELECT * FROM t")  # ACCESS SHARE until the end of this transaction
    try:
        result = manage(
            "apply_sql_migrations",
            "--ddl-lock-timeout",
            "0.3",
            "--lock-retry-budget",
            "2",
            migrations=migrations_dir,
            database_url=bouncers("transaction").url(database.name),
        )
        assert result.returncode == 1, result.output
        assert "not granted" in result.output
    finally:
        blocker.rollback()
        blocker.close()
    assert database.versions() == ["001"]
    assert advisory_locks(database) == 0


def test_ddl_lock_retries_through_a_busy_pgbouncer_hold_no_lock_on_a_lent_server_connection(
    bouncers, manage, database, migrations_dir
):
    """Through a transaction pooler whose URL looks direct, other clients borrow server connections between
    the attempts. A session-level hold of the migration lock taken by a failed attempt would stay on the server
    connection it ran on, lent to the next client; the next attempt, served by another, would wait for it, and
    every deploy after it too. The runner tells the pooler from the connection's behaviour and keeps no hold."""
    write_files(migrations_dir, {"001_t.sql": migration("001_t", "CREATE TABLE IF NOT EXISTS t (x int);")})
    assert manage("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    write_files(migrations_dir, {"002_add.sql": migration("002_add", "ALTER TABLE t ADD COLUMN IF NOT EXISTS y int;")})
    # Round robin: an idle server connection goes to the next transaction in turn, whoever's it is.
    bouncer = bouncers("transaction", server_round_robin=1)
    stop = threading.Event()

    def borrow() -> None:  # short transactions, one after the other: the pooler lends whichever connection is free
        with psycopg.connect(bouncer.url(database.name), autocommit=True, prepare_threshold=None) as client:
            while not stop.is_set():
                with client.transaction():
                    client.execute("SELECT pg_sleep(0.05)")

    borrowers = [threading.Thread(target=borrow) for _ in range(2)]
    blocker = database.connect()
    blocker.autocommit = False
    blocker.execute("SELECT * FROM t")  # ACCESS SHARE until the end of this transaction
    try:
        for thread in borrowers:
            thread.start()
        result = manage(
            "apply_sql_migrations",
            "--ddl-lock-timeout",
            "0.3",
            "--lock-retry-budget",
            "3",
            migrations=migrations_dir,
            database_url=bouncer.url(database.name),
            timeout=60,
        )
        assert result.returncode == 1, result.output
        assert "not granted" in result.output
    finally:
        stop.set()
        for thread in borrowers:
            thread.join(timeout=10)
        blocker.rollback()
        blocker.close()
    assert database.versions() == ["001"]
    assert advisory_locks(database) == 0
    blocker_gone = manage("apply_sql_migrations", migrations=migrations_dir, database_url=bouncer.url(database.name))
    assert blocker_gone.returncode == 0, blocker_gone.output
    assert database.versions() == ["001", "002"]
