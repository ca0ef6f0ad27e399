"""Bounded DDL lock waits: a migration blocked by a long transaction never stalls the application.

Each test holds a lock from a second connection (an open transaction that read the
table), runs ``apply_sql_migrations`` as a subprocess and checks the exit code, the
output (the blockers named) and the database afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psycopg
import pytest

from dbmigrations.locks import LOCK_KEY
from tests.conftest import ROOT, clean_env, migration, write_files

ADD_NOTE = migration("002_add_note", "ALTER TABLE accounts ADD COLUMN note TEXT;")


@pytest.fixture
def accounts(database, migrations_dir):
    """A database with a table ``accounts`` (100 rows) and ``002_add_note`` (ALTER TABLE) pending."""
    database.query("CREATE TABLE accounts (id int PRIMARY KEY); INSERT INTO accounts SELECT generate_series(1, 100)")
    write_files(migrations_dir, {"002_add_note.sql": ADD_NOTE})
    return database


@pytest.fixture
def reader(accounts):
    """An application session idle in a transaction that read ``accounts`` (it holds ACCESS SHARE)."""
    connection = psycopg.connect(accounts.url, application_name="report-job")
    yield connection
    connection.close()


def columns(database, table="accounts") -> set[str]:
    return {
        r[0]
        for r in database.query("SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))
    }


def start_apply(database, migrations_dir, *args, env=None) -> subprocess.Popen:
    environment = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir), **(env or {}))
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "apply_sql_migrations", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def alter_waiting(database) -> bool:
    return bool(
        database.query(
            "SELECT 1 FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock' AND relation = 'accounts'::regclass"
        )
    )


def test_blocked_migration_gives_up_naming_the_blocker_and_changes_nothing(accounts, reader, manage, migrations_dir):
    reader.execute("SELECT count(*) FROM accounts")  # stays open: idle in transaction
    pid = reader.info.backend_pid

    result = manage(
        "apply_sql_migrations", "--ddl-lock-timeout", "0.3", "--lock-retry-budget", "2", migrations=migrations_dir
    )

    assert result.returncode == 1, result.output
    assert f"pid {pid} " in result.output and "(report-job), idle in transaction for" in result.output
    assert "lock on public.accounts" in result.output
    assert "002_add_note: lock on public.accounts (ACCESS EXCLUSIVE) not granted in 0.3 s" in result.stdout
    assert "retry 2 in" in result.stdout and "gave up after" in result.stdout
    assert "Every attempt was rolled back, so nothing changed" in result.stderr
    assert "002_add_note.sql:" in result.stderr and "55P03" in result.stderr
    assert "note" not in columns(accounts)
    assert accounts.versions() == []
    assert migration_lock_holders(accounts) == []  # the lock kept between attempts is released


def test_migration_applies_once_the_blocker_ends_and_records_its_attempts(accounts, reader, manage, migrations_dir):
    reader.execute("SELECT count(*) FROM accounts")
    runner = start_apply(accounts, migrations_dir, "--ddl-lock-timeout", "0.3", "--lock-retry-budget", "60")
    wait_for(lambda: alter_waiting(accounts), what="the ALTER to wait")
    time.sleep(1.5)  # a few attempts time out
    reader.rollback()
    out, err = runner.communicate(timeout=60)

    assert runner.returncode == 0, out + err
    assert "note" in columns(accounts)
    assert accounts.versions() == ["002"]
    ((attempts,),) = accounts.query("SELECT attempts FROM schema_migrations WHERE version = '002'")
    assert attempts >= 2
    assert f"attempt {attempts})" in out
    assert out.count("Applied 1,") == 1


def test_settings_bound_the_wait_and_a_bad_value_is_refused(accounts, reader, manage, migrations_dir):
    reader.execute("SELECT count(*) FROM accounts")

    result = manage(
        "apply_sql_migrations",
        migrations=migrations_dir,
        env={"SQL_MIGRATIONS_DDL_LOCK_TIMEOUT": "0.1", "SQL_MIGRATIONS_LOCK_RETRY_BUDGET": "0"},
    )
    assert result.returncode == 1, result.output
    assert "not granted in 0.1 s" in result.stdout and "gave up after 1 attempt(s)" in result.stdout
    # Too short for the watcher: the blocker is found afterwards, from the locks held on the statement's table.
    assert f"pid {reader.info.backend_pid} " in result.stdout and "holds ACCESS SHARE" in result.stdout

    refused = manage("apply_sql_migrations", migrations=migrations_dir, env={"SQL_MIGRATIONS_DDL_LOCK_TIMEOUT": "soon"})
    assert refused.returncode == 2
    assert "SQL_MIGRATIONS_DDL_LOCK_TIMEOUT='soon' is not a number of seconds" in refused.stderr
    assert accounts.versions() == []


def test_a_files_own_lock_timeout_wins(accounts, reader, manage, migrations_dir):
    write_files(
        migrations_dir,
        {
            "002_add_note.sql": migration(
                "002_add_note", "SET LOCAL lock_timeout = '20s';\nALTER TABLE accounts ADD COLUMN note TEXT;"
            )
        },
    )
    reader.execute("SELECT count(*) FROM accounts")
    threading.Timer(1.5, reader.rollback).start()

    result = manage(
        "apply_sql_migrations", "--ddl-lock-timeout", "0.2", "--lock-retry-budget", "0", migrations=migrations_dir
    )

    assert result.returncode == 0, result.output
    assert accounts.query("SELECT attempts FROM schema_migrations WHERE version = '002'") == [(1,)]
    assert "not granted" not in result.output


def test_application_queries_wait_at_most_about_the_lock_timeout(accounts, reader, manage, migrations_dir):
    reader.execute("SELECT count(*) FROM accounts")
    runner = start_apply(accounts, migrations_dir, "--ddl-lock-timeout", "0.5", "--lock-retry-budget", "60")
    try:
        wait_for(lambda: alter_waiting(accounts), what="the ALTER to wait")
        # Without the bound, this query would queue behind the ALTER until the reader ends (never, here).
        # (statement_timeout: so that without the bound the test fails instead of hanging)
        with psycopg.connect(accounts.url, autocommit=True, options="-c statement_timeout=8000") as application:
            began = time.monotonic()
            assert application.execute("SELECT count(*) FROM accounts").fetchone() == (100,)
            stalled = time.monotonic() - began
        assert stalled < 0.5 + 2.0, f"the application's query waited {stalled:.2f} s"
    finally:
        reader.rollback()
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, out + err
    assert accounts.versions() == ["002"]


def test_the_wait_for_another_runner_is_shown_and_not_counted_as_the_migrations_time(accounts, manage, migrations_dir):
    # The ledger exists already (as on every deploy but the first): the wait is the migration's own.
    write_files(migrations_dir, {"001_first.sql": migration("001_first", "CREATE TABLE first (id int);")})
    assert manage("apply_sql_migrations", "--target", "1", migrations=migrations_dir).returncode == 0
    with psycopg.connect(accounts.url, autocommit=True, application_name="other-deploy") as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        runner = start_apply(accounts, migrations_dir)
        wait_for(
            lambda: accounts.query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"),
            what="the runner to wait for the migration lock",
        )
        time.sleep(2.5)
        other.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        out, err = runner.communicate(timeout=60)
        pid = other.info.backend_pid

    assert runner.returncode == 0, out + err
    assert f"002_add_note: waiting 1 s for the migration lock, held by pid {pid} " in out
    assert "(other-deploy)" in out
    done = next(line for line in out.splitlines() if line.startswith("Applying 002_add_note") and "OK" in line)
    elapsed = int(done.split("OK (")[1].split(" ms")[0])
    waited = float(done.split("waited ")[1].split(" s")[0])
    assert elapsed < 1000 and waited >= 2.5, done


def test_rollback_is_bounded_and_retried_too(accounts, reader, manage, migrations_dir):
    write_files(
        migrations_dir,
        {"002_add_note.down.sql": migration("002_add_note", "ALTER TABLE accounts DROP COLUMN IF EXISTS note;")},
    )
    assert manage("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    reader.execute("SELECT count(*) FROM accounts")

    result = manage(
        "rollback_sql_migrations", "--ddl-lock-timeout", "0.2", "--lock-retry-budget", "1", migrations=migrations_dir
    )

    assert result.returncode == 1, result.output
    assert f"pid {reader.info.backend_pid} " in result.output
    assert accounts.versions() == ["002"] and "note" in columns(accounts)


def migration_lock_holders(database) -> list[int]:
    return [
        r[0]
        for r in database.query(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s",
            (LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF),
        )
    ]


def test_between_attempts_the_runner_keeps_the_migration_lock(accounts, reader, manage, migrations_dir):
    # Other deploys then wait for the migration lock instead of queueing their own ALTER in the pause.
    reader.execute("SELECT count(*) FROM accounts")
    runner = start_apply(accounts, migrations_dir, "--ddl-lock-timeout", "0.2", "--lock-retry-budget", "60")
    wait_for(lambda: alter_waiting(accounts), what="the ALTER to wait")
    held, until = [], time.monotonic() + 2.0
    while time.monotonic() < until:
        held.append(migration_lock_holders(accounts))
        time.sleep(0.05)
    reader.rollback()
    out, err = runner.communicate(timeout=60)

    assert runner.returncode == 0, out + err
    assert out.count("not granted in 0.2 s") >= 2
    assert all(len(pids) == 1 for pids in held), held
    assert migration_lock_holders(accounts) == []
    assert accounts.versions() == ["002"]


def test_settings_read_when_called_zero_is_a_value_and_empty_is_unset(settings, monkeypatch):
    from dbmigrations import conf

    monkeypatch.delenv("SQL_MIGRATIONS_DDL_LOCK_TIMEOUT", raising=False)
    settings.SQL_MIGRATIONS_DDL_LOCK_TIMEOUT = 0
    assert conf.ddl_lock_timeout() == 0
    settings.SQL_MIGRATIONS_DDL_LOCK_TIMEOUT = ""
    monkeypatch.setenv("SQL_MIGRATIONS_DDL_LOCK_TIMEOUT", " ")
    assert conf.ddl_lock_timeout() == conf.DEFAULT_DDL_LOCK_TIMEOUT
    monkeypatch.setenv("SQL_MIGRATIONS_DDL_LOCK_TIMEOUT", "2.5")
    assert conf.ddl_lock_timeout() == 2.5
    monkeypatch.setenv("SQL_MIGRATIONS_LOCK_RETRY_BUDGET", "-1")
    with pytest.raises(Exception, match="SQL_MIGRATIONS_LOCK_RETRY_BUDGET='-1' is not a number of seconds"):
        conf.lock_retry_budget()
