"""Two deploys at once, and a deploy killed mid-migration."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, clean_env, migration, spawn_manage, write_files


@pytest.mark.slow
def test_six_runners_apply_thirty_migrations_exactly_once(database, migrations_dir):
    # CREATE TABLE without IF NOT EXISTS: a migration run twice would fail.
    write_files(
        migrations_dir,
        {f"{i:03d}_t{i}.sql": migration(f"{i:03d}_t{i}", f"CREATE TABLE t{i} (id int);") for i in range(1, 31)},
    )
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    runners = [spawn_manage("apply_sql_migrations", env=env) for _ in range(6)]
    outputs = [runner.communicate(timeout=120) for runner in runners]
    assert [runner.returncode for runner in runners] == [0] * 6, outputs
    assert database.query("SELECT count(*) FROM schema_migrations") == [(30,)]
    assert len({t for t in database.tables() if t.startswith("t")}) == 30
    applied = sum(out.count(" OK (") for out, _ in outputs)
    assert applied == 30  # each migration ran in exactly one runner


@pytest.mark.slow
def test_kill_9_during_a_migration_leaves_nothing_and_rerun_is_clean(database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE a (id int);"),
            "002_slow.sql": migration(
                "002_slow", "CREATE TABLE slow (id int);\nSELECT pg_sleep(30);\nCREATE TABLE after_sleep (id int);"
            ),
        },
    )
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    runner = spawn_manage("apply_sql_migrations", env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sleeping = database.query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND (query LIKE %s OR wait_event = 'PgSleep')",
            (database.name, "%pg_sleep(30)%"),
        )
        if sleeping[0][0]:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the migration never reached pg_sleep")
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    # The server notices the dead client (client_connection_check_interval) and rolls back.
    deadline = time.monotonic() + 15
    while (
        time.monotonic() < deadline
        and database.query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND (query LIKE %s OR wait_event = 'PgSleep')",
            (database.name, "%pg_sleep(30)%"),
        )[0][0]
    ):
        time.sleep(0.1)
    assert database.versions() == ["001"]
    assert "slow" not in database.tables() and "after_sleep" not in database.tables()

    write_files(migrations_dir, {"002_slow.sql": migration("002_slow", "CREATE TABLE slow (id int);")})
    rerun = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "apply_sql_migrations"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert database.versions() == ["001", "002"]
