"""``REINDEX … CONCURRENTLY`` outside a transaction: the INVALID ``_ccnew``/``_ccold`` indexes a failed or
killed one leaves are dropped (after the failure, and before a rerun), never kept beside the rebuilt index.

Real failures of PostgreSQL's REINDEX CONCURRENTLY: a uniqueness violation while rebuilding a unique index
over data that no longer fits it (an expression index on a function declared IMMUTABLE and then changed:
the same happens to text indexes after a collation update), a lock timeout while it waits for older
transactions, and a kill -9 of the runner while it waits.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import psycopg
import pytest

from tests.conftest import clean_env, migration, spawn_manage, write_files
from tests.test_pooler import advisory_locks, invalid_indexes

IDENTITY = "CREATE OR REPLACE FUNCTION bucket(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1'"
# What the function returns now: every row in one bucket, so a unique index on bucket(v) no longer fits.
CONSTANT = "CREATE OR REPLACE FUNCTION bucket(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT 0'"


def leftovers(database) -> list[str]:
    """Every index whose name says it is a REINDEX CONCURRENTLY copy or swapped-out original, valid or not."""
    query = "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relkind = 'i' AND c.relname ~ '_cc(new|old)[0-9]*$'"
    return sorted(r[0] for r in database.query(query))


def _unique_bucket_index(call, database, migrations_dir, tables: str = "t") -> None:
    """Tables with a unique index on bucket(v) (and a TOASTed column), then bucket() changed under them."""
    body = [IDENTITY + ";"]
    for table in tables.split():
        if "." in table:
            body.append(f"CREATE SCHEMA {table.split('.')[0]};")
        body.append(f"CREATE TABLE {table} (v int, doc text);")
        body.append(f"INSERT INTO {table} SELECT g, repeat('x', 3000) FROM generate_series(1, 20) g;")
        body.append(f"CREATE UNIQUE INDEX t_bucket ON {table} (public.bucket(v));")
    write_files(migrations_dir, {"001_t.sql": migration("001_t", "\n".join(body))})
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    database.query(CONSTANT)


def test_a_failed_reindex_table_drops_the_invalid_copies_it_left(call, database, migrations_dir):
    _unique_bucket_index(call, database, migrations_dir)
    # An INVALID index that was there before the REINDEX is not its to drop.
    with pytest.raises(psycopg.errors.UniqueViolation):
        database.query("CREATE UNIQUE INDEX CONCURRENTLY t_bad ON t (bucket(v))")
    toast = database.query("SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 't'::regclass")[0][0]
    write_files(
        migrations_dir, {"002_reindex.sql": migration("002_reindex", "REINDEX TABLE CONCURRENTLY t;", wrap=False)}
    )

    result = call("apply_sql_migrations", migrations=migrations_dir)

    assert result.returncode == 1, result.output
    assert 'could not create unique index "t_bucket_ccnew"' in result.stderr
    assert (
        "It left the INVALID index public.t_bucket_ccnew, which the runner dropped "
        "(DROP INDEX CONCURRENTLY IF EXISTS public.t_bucket_ccnew;)"
    ) in result.stderr
    # The TOAST table's index was copied too, in the same failed statement.
    assert f"It left the INVALID index {toast}_index_ccnew, which the runner dropped" in result.stderr
    assert leftovers(database) == []
    assert invalid_indexes(database) == ["t_bad"]
    assert database.versions() == ["001"]


def test_a_failed_reindex_index_drops_its_copy_in_the_schema_the_statement_resolved(call, database, migrations_dir):
    _unique_bucket_index(call, database, migrations_dir, tables="t app.t")
    body = "SET search_path TO app, public;\nREINDEX INDEX CONCURRENTLY t_bucket;"
    write_files(migrations_dir, {"002_reindex.sql": migration("002_reindex", body, wrap=False)})

    result = call("apply_sql_migrations", migrations=migrations_dir)

    assert result.returncode == 1, result.output
    assert "It left the INVALID index app.t_bucket_ccnew, which the runner dropped" in result.stderr
    assert "public.t_bucket" not in result.stderr
    assert leftovers(database) == []
    assert invalid_indexes(database) == []


def test_a_lock_timeout_after_the_swap_names_the_old_index_and_the_rerun_drops_it(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {"001_t.sql": migration("001_t", "CREATE TABLE t (v int);\nCREATE INDEX t_v ON t (v);")},
    )
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    body = "SET lock_timeout = '1s';\nREINDEX INDEX CONCURRENTLY t_v;"
    write_files(migrations_dir, {"002_reindex.sql": migration("002_reindex", body, wrap=False)})
    # A reader's open transaction: the copy is built and swapped in, then dropping the old index waits for it.
    reader = database.connect()
    reader.autocommit = False
    reader.execute("SELECT count(*) FROM t")
    try:
        result = call("apply_sql_migrations", migrations=migrations_dir)
    finally:
        reader.rollback()
        reader.close()

    assert result.returncode == 1, result.output
    assert "canceling statement due to lock timeout" in result.stderr
    # The reader that stopped the REINDEX also stops the runner's DROP, within the file's lock_timeout.
    assert (
        "It left the INVALID index public.t_v_ccold, and dropping it failed (canceling statement due to lock "
        "timeout): remove it with: DROP INDEX CONCURRENTLY IF EXISTS public.t_v_ccold;"
    ) in result.stderr
    assert leftovers(database) == ["t_v_ccold"]

    rerun = call("apply_sql_migrations", migrations=migrations_dir)

    assert rerun.returncode == 0, rerun.output
    assert "dropped the INVALID index public.t_v_ccold (left by an interrupted REINDEX CONCURRENTLY)" in rerun.stdout
    assert leftovers(database) == []
    assert invalid_indexes(database) == []
    assert database.versions() == ["001", "002"]


def test_leftovers_of_an_earlier_reindex_are_dropped_before_it_runs_again(call, database, migrations_dir):
    _unique_bucket_index(call, database, migrations_dir, tables="t app.t")
    for table in ("public.t_bucket", "app.t_bucket"):  # what failed or killed earlier runs left
        for _ in range(2):
            with pytest.raises(psycopg.errors.UniqueViolation):
                database.query(f"REINDEX INDEX CONCURRENTLY {table}")
    database.query(IDENTITY)
    assert leftovers(database) == [
        "app.t_bucket_ccnew",
        "app.t_bucket_ccnew1",
        "t_bucket_ccnew",
        "t_bucket_ccnew1",
    ]
    body = "SET search_path TO app, public;\nREINDEX INDEX CONCURRENTLY t_bucket;"
    write_files(migrations_dir, {"002_reindex.sql": migration("002_reindex", body, wrap=False)})

    result = call("apply_sql_migrations", migrations=migrations_dir)

    assert result.returncode == 0, result.output
    for name in ("app.t_bucket_ccnew", "app.t_bucket_ccnew1"):
        assert f"dropped the INVALID index {name} (left by an interrupted REINDEX CONCURRENTLY)" in result.stdout
    assert leftovers(database) == ["t_bucket_ccnew", "t_bucket_ccnew1"]  # another table's: not this statement's
    assert database.versions() == ["001", "002"]


KILLED = """INSERT INTO log VALUES (1);
REINDEX INDEX CONCURRENTLY runs_id;
INSERT INTO log VALUES (2);"""


@pytest.mark.slow
def test_kill_9_during_a_long_reindex_concurrently_then_rerun(manage, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration(
                "001_t", "CREATE TABLE runs (id int);\nCREATE INDEX runs_id ON runs (id);\nCREATE TABLE log (step int);"
            )
        },
    )
    assert manage("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    write_files(migrations_dir, {"002_reindex.sql": migration("002_reindex", KILLED, wrap=False)})
    blocker = database.connect()
    blocker.autocommit = False
    blocker.execute("INSERT INTO runs VALUES (100)")  # an open writer: REINDEX CONCURRENTLY waits for it
    runner = spawn_manage(
        "apply_sql_migrations", env=clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    )
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
        "AND query LIKE 'REINDEX%' AND to_regclass('runs_id_ccnew') IS NOT NULL"
    )
    deadline = time.monotonic() + 60
    while not database.query(waiting)[0][0]:  # the copy is in the catalog; the build waits for the writer
        assert time.monotonic() < deadline and runner.poll() is None, runner.communicate()
        time.sleep(0.05)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    running = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'REINDEX%'"
    deadline = time.monotonic() + 30
    while database.query(running + " AND state = 'active'")[0][0]:  # the server notices the dead client
        assert time.monotonic() < deadline
        time.sleep(0.05)
    blocker.rollback()
    blocker.close()
    assert invalid_indexes(database) == ["runs_id_ccnew"]
    assert database.versions() == ["001"]

    rerun = manage("apply_sql_migrations", migrations=migrations_dir)

    assert rerun.returncode == 0, rerun.output
    assert (
        "dropped the INVALID index public.runs_id_ccnew (left by an interrupted REINDEX CONCURRENTLY)" in rerun.stdout
    )
    assert leftovers(database) == []
    assert invalid_indexes(database) == []
    assert database.query("SELECT step FROM log ORDER BY step") == [(1,), (2,)]  # statement 1 ran once
    assert database.versions() == ["001", "002"]
    assert database.query("SELECT count(*) FROM schema_migrations_progress") == [(0,)]
    assert advisory_locks(database) == 0


LONG = "an_index_whose_name_is_as_long_as_postgresql_allows_0123456789a"  # 63 bytes: its copies' names are clipped


def test_a_failed_reindex_schema_drops_the_clipped_copies_of_long_index_names(call, database, migrations_dir):
    _unique_bucket_index(call, database, migrations_dir, tables="app.t")
    database.query(f"CREATE INDEX {LONG} ON app.t (v)")
    body = "REINDEX SCHEMA CONCURRENTLY app;"
    write_files(migrations_dir, {"002_reindex.sql": migration("002_reindex", body, wrap=False)})

    result = call("apply_sql_migrations", migrations=migrations_dir)

    assert result.returncode == 1, result.output
    assert "It left the INVALID index app.t_bucket_ccnew, which the runner dropped" in result.stderr
    assert f"It left the INVALID index app.{LONG[:57]}_ccnew, which the runner dropped" in result.stderr
    assert leftovers(database) == []
    assert invalid_indexes(database) == []


def test_leftovers_on_the_partitions_of_a_partitioned_table_are_dropped_before_a_rerun(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration(
                "001_t",
                f"{IDENTITY};\n"
                "CREATE TABLE p (v int) PARTITION BY RANGE (v);\n"
                "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);\n"
                "CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200);\n"
                "INSERT INTO p SELECT generate_series(1, 150);\n"
                "CREATE UNIQUE INDEX p_bucket ON p1 (bucket(v));\n"
                "CREATE INDEX p_v ON p (v);",
            )
        },
    )
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    database.query(CONSTANT)
    with pytest.raises(psycopg.errors.UniqueViolation):
        database.query("REINDEX TABLE CONCURRENTLY p")
    with pytest.raises(psycopg.errors.UniqueViolation):
        database.query("REINDEX TABLE CONCURRENTLY p1")
    database.query(IDENTITY)
    left = leftovers(database)
    assert left == ["p1_v_idx_ccnew", "p1_v_idx_ccnew1", "p_bucket_ccnew", "p_bucket_ccnew1"], left
    write_files(
        migrations_dir, {"002_reindex.sql": migration("002_reindex", "REINDEX TABLE CONCURRENTLY p;", wrap=False)}
    )

    result = call("apply_sql_migrations", migrations=migrations_dir)

    assert result.returncode == 0, result.output
    for name in left:
        assert f"dropped the INVALID index public.{name} (left by an interrupted REINDEX CONCURRENTLY)" in result.stdout
    assert leftovers(database) == []
    assert invalid_indexes(database) == []


def test_the_copy_of_a_reindex_another_session_is_running_is_not_dropped(call, database, migrations_dir):
    write_files(
        migrations_dir, {"001_t.sql": migration("001_t", "CREATE TABLE t (v int);\nCREATE INDEX t_v ON t (v);")}
    )
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    # Two REINDEXes of one table wait for each other (PostgreSQL may end either with a deadlock): this one
    # gives up first. Dropping the other's copy would have waited for it, then broken it with a deadlock.
    body = "SET lock_timeout = '500ms';\nREINDEX TABLE CONCURRENTLY t;"
    write_files(migrations_dir, {"002_reindex.sql": migration("002_reindex", body, wrap=False)})
    writer = database.connect()
    writer.autocommit = False
    writer.execute("INSERT INTO t VALUES (1)")  # an open writer: the other session's REINDEX waits for it
    other, errors = database.connect(), []

    def reindex() -> None:
        try:
            other.execute("REINDEX INDEX CONCURRENTLY t_v")
        except psycopg.Error as error:
            errors.append(error)

    thread = threading.Thread(target=reindex)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while database.query("SELECT to_regclass('t_v_ccnew')") == [(None,)]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        result = call("apply_sql_migrations", migrations=migrations_dir)
    finally:
        writer.rollback()
        writer.close()
        thread.join(30)
        other.close()

    assert result.returncode == 1, result.output
    assert "canceling statement due to lock timeout" in result.stderr
    assert "REINDEX TABLE CONCURRENTLY t" in result.stderr
    assert "t_v_ccnew" not in result.stderr
    assert errors == []  # the other session's REINDEX finished
    assert leftovers(database) == []
    assert invalid_indexes(database) == []
