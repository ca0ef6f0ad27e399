"""A run's cost per migration does not grow with the history: what apply does once, and what it keeps.

Time is the benchmark's business (bench/apply_bench.py); these tests check the properties
behind its figures with counts the server and the API report, never with timings.
"""

from __future__ import annotations

import time

from tests.conftest import migration, write_files


def ledger_scans(database) -> tuple[int, int]:
    """(sequential scans, rows they read) of the ledger, once every other session has ended."""
    deadline = time.monotonic() + 30
    while database.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )[0][0]:
        assert time.monotonic() < deadline, "the runner's session did not end"
        time.sleep(0.05)
    database.query("SELECT pg_stat_clear_snapshot()")
    (row,) = database.query(
        "SELECT seq_scan, seq_tup_read FROM pg_stat_user_tables WHERE relid = 'public.schema_migrations'::regclass"
    )
    return row


def test_the_ledger_check_after_each_migration_reads_no_ledger_row(manage, database, migrations_dir):
    files = {f"{n:03d}_t{n}.sql": migration(f"{n:03d}_t{n}", f"CREATE TABLE t{n} (id int);") for n in range(1, 31)}
    write_files(migrations_dir, files)
    result = manage("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    scans, rows = ledger_scans(database)
    # The run reads the ledger once before the first file; the check that each file left the ledger
    # alone must not read it again (a digest of every row made applying N migrations quadratic).
    assert scans <= 2 and rows <= 30, (scans, rows)


def test_a_run_keeps_no_parse_tree_of_the_files_it_ran(database, migrations_dir):
    import psycopg

    from dbmigrations.executor import MigrationExecutor
    from dbmigrations.loader import migration_files
    from dbmigrations.session import Session

    files = {f"{n:03d}_t{n}.sql": migration(f"{n:03d}_t{n}", f"CREATE TABLE t{n} (id int);") for n in range(1, 21)}
    write_files(migrations_dir, files)
    sql_files = migration_files(migrations_dir)
    parsed = []

    def progress(event, payload):
        if event in ("start", "done"):
            parsed.append(sum(f.source.parsed for f in sql_files))

    with psycopg.connect(database.url, autocommit=True) as connection:
        result = MigrationExecutor(Session(connection), progress=progress).apply(sql_files)
    assert len(result.applied) == 20 and len(database.versions()) == 20
    # Every file was parsed (and checked) before the first one ran, but no tree is kept for the run: between
    # two files only the next one's is held (parsed while the server ran the one before). Memory does not
    # grow with the number of files.
    assert max(parsed) <= 1 and not any(f.source.parsed for f in sql_files), parsed


def test_an_invalid_last_file_still_stops_the_run_before_the_first_file(call, database, migrations_dir):
    files = {f"{n:03d}_t{n}.sql": migration(f"{n:03d}_t{n}", f"CREATE TABLE t{n} (id int);") for n in range(1, 50)}
    files["050_bad.sql"] = migration("050_bad", "CREATE TABLE t50 (id int);\nSELEC 1;")
    write_files(migrations_dir, files)
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2, result.output
    assert '050_bad.sql:9:1: syntax error at or near "SELEC"' in result.stderr
    assert database.tables() == set()  # not even the ledger


def test_ctrl_c_while_the_next_file_is_prepared_cancels_the_file_in_flight(database):
    import psycopg
    import pytest

    from dbmigrations.session import Part, Session

    database.query("CREATE TABLE t (id int)")
    with psycopg.connect(database.url, autocommit=True) as connection:
        session = Session(connection)

        def interrupted():
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            session.batch(
                [Part(("BEGIN", "INSERT INTO t VALUES (1)", "SELECT pg_sleep(60)", "COMMIT"))], meanwhile=interrupted
            )
        session.rollback_if_needed()
        assert session.fetch("SELECT count(*) FROM t") == [(0,)]  # cancelled, not committed; the session still works


def test_the_next_file_is_parsed_while_the_server_runs_the_current_one(database, migrations_dir):
    import psycopg

    from dbmigrations.executor import MigrationExecutor
    from dbmigrations.loader import migration_files
    from dbmigrations.session import Session

    files = {f"{n:03d}_t{n}.sql": migration(f"{n:03d}_t{n}", f"CREATE TABLE t{n} (id int);") for n in range(1, 4)}
    write_files(migrations_dir, files)
    sql_files = migration_files(migrations_dir)
    seen = []

    def progress(event, payload):
        if event == "done":  # the file that just ran, and whether the next one is ready
            seen.append([f.source.parsed for f in sql_files])

    with psycopg.connect(database.url, autocommit=True) as connection:
        MigrationExecutor(Session(connection), progress=progress).apply(sql_files)
    assert seen == [[False, True, False], [False, False, True], [False, False, False]]
