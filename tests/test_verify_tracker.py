"""verify's picture of the scratch database (dbmigrations/tracker.py, rowcounts.py) stays exact.

verify re-reads only what each step changed. These tests run a long series of schema and data changes
(renames, CASCADE drops, dynamic SQL in DO blocks, partitions, triggers, files outside a transaction)
and check after every step that the picture equals a full read of the catalogs and a count of every
table, and that the differences since an earlier point equal those between two full snapshots.
"""

import collections
from pathlib import Path

import pytest

from bench.pgproxy import LatencyProxy
from dbmigrations import measure, snapshot
from dbmigrations.discovery import SqlSource, discover
from dbmigrations.session import Session
from dbmigrations.tracker import SchemaTracker
from dbmigrations.verify import run_sql, verify
from dbmigrations.watch import Watch
from tests.conftest import migration, write_files

SCHEMA_STEPS = [
    "CREATE TABLE base (id serial PRIMARY KEY, a int, b varchar(10) DEFAULT 'x')",
    "CREATE INDEX idx_a ON base (a)",
    "ALTER TABLE base ALTER COLUMN b TYPE varchar(20)",  # pg_attribute only: the table's pg_class row stays
    "ALTER TABLE base ALTER COLUMN a SET NOT NULL",
    "ALTER TABLE base ALTER COLUMN b DROP DEFAULT",
    "ALTER TABLE base RENAME COLUMN a TO aa",  # the index on it prints the new name
    "CREATE TABLE child (id int PRIMARY KEY, base_id int REFERENCES base (id))",
    "ALTER TABLE base RENAME TO base2",  # child's foreign key prints the new name
    "ALTER TABLE base2 RENAME COLUMN id TO ident",
    "CREATE TYPE mood AS ENUM ('a', 'b')",
    "ALTER TYPE mood ADD VALUE 'c'",
    "ALTER TABLE child ADD COLUMN m mood",
    "ALTER TYPE mood RENAME TO mood2",  # child.m's type prints the new name
    "CREATE FUNCTION f(x mood2) RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
    "CREATE TRIGGER t1 BEFORE INSERT ON child FOR EACH ROW EXECUTE FUNCTION trg()",
    "ALTER FUNCTION trg() RENAME TO trg2",  # the trigger prints the new name
    "CREATE OR REPLACE FUNCTION f(x mood2) RETURNS int LANGUAGE sql AS 'SELECT 2'",
    "CREATE SCHEMA app",
    "CREATE TABLE app.items (id int PRIMARY KEY, c int REFERENCES public.child (id))",
    "ALTER SCHEMA app RENAME TO app2",  # every name in it changes
    "CREATE SEQUENCE s1",
    "ALTER TABLE child ADD COLUMN z int DEFAULT nextval('s1')",
    "ALTER SEQUENCE s1 RENAME TO s2",  # child.z's default prints the new name
    "CREATE VIEW v AS SELECT * FROM child",
    "DO $$ BEGIN EXECUTE 'CREATE INDEX idx_dyn ON child (z)'; END $$",
    "DO $$ BEGIN EXECUTE 'DROP INDEX ' || 'idx_dyn'; END $$",  # no statement names it
    "DO $$ BEGIN EXECUTE 'DROP TABLE ' || 'app2.items'; END $$",
    "ALTER TABLE child DROP COLUMN z CASCADE",  # view v goes too
    "DROP INDEX idx_a",
    "CREATE TABLE gone1 (id int PRIMARY KEY)",
    "CREATE TABLE gone2 (id int PRIMARY KEY, g int REFERENCES gone1 (id))",
    "CREATE VIEW gone_view AS SELECT g FROM gone2",
    "DROP TABLE gone1 CASCADE",  # gone2's foreign key goes too
    "DO $$ BEGIN EXECUTE 'DROP TABLE ' || 'gone2 CASCADE'; END $$",  # and the view on it
    "CREATE TABLE ren (id int PRIMARY KEY)",
    "CREATE TABLE refs (id int REFERENCES ren (id))",
    "DO $$ BEGIN EXECUTE 'ALTER TABLE ' || 'ren RENAME TO ren2'; END $$",
    "CREATE TABLE p (id int, k int) PARTITION BY RANGE (k)",
    "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)",
    "CREATE INDEX ON p (id)",
    "ALTER TABLE base2 ADD CONSTRAINT ck CHECK (aa > 0) NOT VALID",
    "ALTER TABLE base2 VALIDATE CONSTRAINT ck",  # the definition loses its NOT VALID
    "ALTER TABLE base2 RENAME CONSTRAINT ck TO ck2",
    "ALTER TABLE base2 DROP CONSTRAINT ck2",
    "ALTER TABLE child DROP CONSTRAINT child_base_id_fkey",
    "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY)",  # the ledger: never compared
    "DROP FUNCTION f(mood2)",
    "DROP TYPE mood2 CASCADE",  # child.m goes too
    "CREATE TYPE comp AS (x int, y text)",
    "ALTER TYPE comp ADD ATTRIBUTE z int",
    "ALTER TYPE comp RENAME TO comp2",
    "CREATE DOMAIN dd AS int",
    "ALTER TABLE base2 ADD COLUMN d dd",
    "ALTER DOMAIN dd RENAME TO dd2",
    "DROP SCHEMA app2 CASCADE",
    "ALTER TABLE base2 SET SCHEMA public",
    "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x",
    "CREATE UNIQUE INDEX mv_x ON mv (x)",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_child_id ON child (id)",  # outside a transaction
    "DROP INDEX CONCURRENTLY idx_child_id",
    "DROP TABLE p",  # with its partition
    "CREATE VIEW v2 AS SELECT id FROM child",
    "DROP VIEW v2",
    "DROP SEQUENCE s2",
]


@pytest.fixture
def session(database):
    connection = database.connect()
    yield Session(connection)
    connection.close()


def source(sql: str) -> SqlSource:
    return SqlSource(Path("step.sql"), sql + ";\n", "")


@pytest.mark.parametrize("told", ["locks", "names", "nothing"])
def test_the_schema_tracker_matches_a_full_read_after_every_step(session, told):
    """``locks``: the step's transaction's locks name what it changed (verify's usual way); ``names``:
    catalogs scanned, the statements' names point at drops; ``nothing``: catalogs scanned and counted only."""
    tracker = SchemaTracker(session)
    earlier = collections.deque(maxlen=4)  # (mark, full snapshot) of the last steps
    for sql in SCHEMA_STEPS:
        earlier.append((tracker.mark(), snapshot.take_all(session)))
        step = source(sql)
        run = run_sql(session, step)
        if told == "locks" and step.script.runs_in_transaction:
            tracker.refresh(locked=measure.altered(run))
        else:
            tracker.refresh(step.script.names if told != "nothing" else ())
        now = snapshot.take_all(session)
        assert tracker.snapshot() == now, sql
        for mark, then in earlier:
            assert tracker.differences(mark) == snapshot.differences(then, now), sql


def test_drops_named_by_the_files_need_no_full_read(session):
    """Outside a transaction, a file's DROP statements point the tracker at what they drop."""
    setup = """CREATE TABLE t (id serial PRIMARY KEY, a int);
        CREATE INDEX t_a ON t (a);
        CREATE SEQUENCE s;
        CREATE TYPE e AS ENUM ('x');
        CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';
        CREATE VIEW v AS SELECT a FROM t;
        CREATE SCHEMA app"""
    tracker = SchemaTracker(session)
    run_sql(session, source(setup))
    tracker.refresh(source(setup).script.names)
    for sql in [
        "DROP VIEW v",
        "DROP INDEX t_a",
        "DROP TABLE t",  # with its owned sequence t_id_seq, its key and index
        "DROP SEQUENCE s",
        "DROP TYPE e",
        "DROP FUNCTION f()",
        "DROP SCHEMA app",
    ]:
        run_sql(session, source(sql))
        assert not tracker.refresh(source(sql).script.names).full, sql
        assert tracker.snapshot() == snapshot.take_all(session), sql
    assert tracker.full_reads == 1  # the first read only


DATA_STEPS = [
    # Once the ledger exists, verify reads each step's changes from its locks.
    "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY)",
    "CREATE TABLE base (id serial PRIMARY KEY, a int)",
    "CREATE TABLE audit (id serial PRIMARY KEY, note text)",
    """CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS
       $$ BEGIN INSERT INTO audit (note) VALUES ('base'); RETURN NEW; END $$""",
    "CREATE TRIGGER noted AFTER INSERT ON base FOR EACH ROW EXECUTE FUNCTION note()",
    "INSERT INTO base (a) VALUES (1), (2)",  # audit gets rows through the trigger
    "DO $$ BEGIN EXECUTE format('INSERT INTO %I (note) VALUES (%L)', 'audit', 'dynamic'); END $$",
    """CREATE FUNCTION add_audit() RETURNS int LANGUAGE sql AS $$ INSERT INTO audit (note) VALUES ('f') RETURNING 1 $$""",
    "SELECT add_audit()",
    """DO $$ BEGIN
         BEGIN INSERT INTO audit (note) VALUES ('rolled back'); RAISE EXCEPTION 'no'; EXCEPTION WHEN OTHERS THEN NULL; END;
       END $$""",
    "INSERT INTO audit (note) VALUES ('x'); DELETE FROM audit WHERE note = 'x'",
    "CREATE TABLE p (id int, k int) PARTITION BY RANGE (k)",
    "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)",
    "INSERT INTO p1 VALUES (1, 1), (2, 2)",  # written through the partition: p counts them
    "ALTER TABLE p DETACH PARTITION p1",  # now a table of its own
    "CREATE TABLE parent (id int PRIMARY KEY)",
    "CREATE TABLE kid (pid int REFERENCES parent (id) ON DELETE CASCADE)",
    "INSERT INTO parent VALUES (1), (2); INSERT INTO kid VALUES (1), (1), (2)",
    "DELETE FROM parent WHERE id = 1",  # kid loses rows by the cascade
    "TRUNCATE audit",
    "ALTER TABLE base RENAME TO base2",
    "CREATE SCHEMA app",
    "CREATE TABLE app.t AS SELECT generate_series(1, 3) AS n",
    "DROP SCHEMA app CASCADE",
    "DROP TABLE kid",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS base_a ON base2 (a)",  # outside a transaction, no rows change
    "UPDATE base2 SET a = a + 1",
]


def test_row_counts_match_a_count_of_every_table_after_every_step(session):
    """Only the tables a step's transaction locked to write are counted again; triggers, functions, DO
    blocks and foreign-key cascades write under such locks too."""
    watch = Watch(session)
    earlier = collections.deque(maxlen=3)
    for sql in DATA_STEPS:
        earlier.append((watch.mark(), snapshot.row_counts(session)))
        step = source(sql)
        watch.after(step, run_sql(session, step))
        now = snapshot.row_counts(session)
        assert watch.rows.as_dict() == now, sql
        for mark, then in earlier:
            assert watch.count_differences(mark) == snapshot.count_differences(then, now), sql


def uniform_history(directory: Path, n: int) -> list:
    """N migrations alike (a table with a serial key and an index, and a down file that drops it)."""
    for i in range(1, n + 1):
        name = f"{i:03d}_table_{i}"
        up = f"CREATE TABLE IF NOT EXISTS t{i} (id serial PRIMARY KEY, a int);\nCREATE INDEX IF NOT EXISTS t{i}_a ON t{i} (a);"
        write_files(
            directory, {f"{name}.sql": migration(name, up), f"{name}.down.sql": migration(name, f"DROP TABLE t{i};")}
        )
    return discover(directory)


def test_each_migration_costs_the_same_queries_however_long_the_history(pg_server, tmp_path):
    """Counted by a loopback proxy (bench/pgproxy.py): the queries verify sends grow by the same number for
    every migration added, not by more as the history grows (it once snapshotted the whole database)."""
    proxy = LatencyProxy(pg_server.host, pg_server.port or None, delay_ms=0)
    params = {
        "host": "127.0.0.1",
        "port": proxy.port,
        "user": pg_server.user,
        "password": pg_server.password,
        "dbname": "postgres",
        "sslmode": "disable",
    }
    sent = {}
    for n in (4, 8, 12):
        files = uniform_history(tmp_path / f"n{n}", n)
        proxy.reset()
        assert verify(params, files, None).ok
        sent[n] = proxy.queries
    assert sent[12] - sent[8] == sent[8] - sent[4], sent
