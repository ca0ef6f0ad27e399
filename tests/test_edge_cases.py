"""Adversarial edge cases, driven through the commands (in-process, as ``manage.py`` runs them) against a real PostgreSQL.

Each test is a bug a developer met (or would meet) at 2 a.m.: it asserts the exit
code, the one-line error (never a traceback) and the database state afterwards.
"""

from __future__ import annotations

from tests.conftest import migration, write_files


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.output, result.output


# --- a file's session state must not leak into the runner's own SQL -----------------------------


def test_set_search_path_in_a_migration_does_not_hide_the_ledger(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_other_schema.sql": migration(
                "001_other_schema",
                "CREATE SCHEMA IF NOT EXISTS other;\n"
                "SET search_path TO other;\nCREATE TABLE IF NOT EXISTS t1 (id int);",
            ),
            "002_public_table.sql": migration("002_public_table", "CREATE TABLE IF NOT EXISTS t2 (id int);"),
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert database.versions() == ["001", "002"]
    assert database.tables("other") == {"t1"}
    # The next migration runs with the connection's search_path again, not the previous file's.
    assert "t2" in database.tables("public")
    assert database.query("SELECT execution_ms IS NOT NULL FROM schema_migrations WHERE version = '001'") == [(True,)]


def test_set_search_path_to_a_schema_with_its_own_schema_migrations(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_decoy.sql": migration(
                "001_decoy",
                "CREATE SCHEMA IF NOT EXISTS decoy;\n"
                "CREATE TABLE IF NOT EXISTS decoy.schema_migrations (version text);\n"
                "SET search_path TO decoy;",
            ),
            "002_next.sql": migration("002_next", "CREATE TABLE IF NOT EXISTS public.nxt (id int);"),
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert database.versions() == ["001", "002"]
    assert database.query("SELECT count(*) FROM decoy.schema_migrations") == [(0,)]


def test_set_role_in_a_migration_does_not_break_the_ledger_update(call, database, migrations_dir):
    role = f"{database.name}_low"
    write_files(
        migrations_dir,
        {
            "001_as_role.sql": migration("001_as_role", f"CREATE ROLE {role};\nSET ROLE {role};\nSELECT 1;"),
            "002_next.sql": migration("002_next", "CREATE TABLE IF NOT EXISTS nxt (id int);"),
        },
    )
    try:
        result = call("apply_sql_migrations", migrations=migrations_dir)
        assert result.returncode == 0, result.output
        assert database.versions() == ["001", "002"]
        # Created by the connection's own role, not the one the previous file switched to.
        assert database.query("SELECT tableowner <> %s FROM pg_tables WHERE tablename = 'nxt'", (role,)) == [(True,)]
    finally:
        database.query(f"DROP ROLE IF EXISTS {role}")


def test_reset_all_in_a_migration(call, database, migrations_dir):
    write_files(
        migrations_dir, {"001_reset.sql": migration("001_reset", "CREATE TABLE IF NOT EXISTS r (id int);\nRESET ALL;")}
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert_no_traceback(result)
    assert result.returncode == 0, result.output
    assert database.versions() == ["001"]


def test_migration_that_drops_the_ledger_is_one_line_error_and_rolled_back(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);"),
            "002_drop_ledger.sql": migration(
                "002_drop_ledger", "CREATE TABLE b (id int);\nDROP TABLE schema_migrations;"
            ),
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert_no_traceback(result)
    assert result.returncode == 1, result.output
    assert "002_drop_ledger.sql" in result.stderr and "schema_migrations" in result.stderr
    assert "rolled back" in result.stderr
    assert database.versions() == ["001"]
    assert "b" not in database.tables()


# --- malformed database URLs: one line, exit 2, no password -------------------------------------


def test_bad_connect_timeout_in_url_is_one_line_error(call, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE a (id int);")})
    url = "postgresql://app:S3cretPw@127.0.0.1:5/db?connect_timeout=abc"
    result = call("apply_sql_migrations", migrations=migrations_dir, database_url=url)
    assert_no_traceback(result)
    assert result.returncode == 2, result.output
    assert "connect_timeout" in result.stderr
    assert "S3cretPw" not in result.output


def test_non_numeric_port_is_named_as_the_port(call, migrations_dir):
    url = "postgresql://app:S3cretPw@db.invalid:abc/db"
    result = call("sql_migration_status", migrations=migrations_dir, database_url=url)
    assert result.returncode == 2, result.output
    assert "port that is not a number" in result.stderr
    assert "resolve host" not in result.stderr
    assert "S3cretPw" not in result.output


def test_unencoded_slash_or_hash_in_password_never_shows_the_password(call, migrations_dir):
    for url in (
        "postgresql://app:1234/S3cretPw@127.0.0.1:5/db",
        "postgresql://app:S3cret#Pw@127.0.0.1:5/db",
        "postgresql://app:S3cret?Pw@127.0.0.1:5/db",
        "postgresql://app:S3cretPw/db",
    ):
        result = call("sql_migration_status", migrations=migrations_dir, database_url=url)
        assert result.returncode == 2, (url, result.output)
        assert "S3cret" not in result.output and "1234" not in result.output, (url, result.output)
        assert "Traceback" not in result.output


# --- the migrations folder and its files ---------------------------------------------------------


def test_migrations_dir_that_is_a_file_is_refused(call, database, tmp_path):
    not_a_dir = tmp_path / "migrations.sql"
    not_a_dir.write_text("SELECT 1;\n")
    result = call("apply_sql_migrations", migrations=not_a_dir)
    assert_no_traceback(result)
    assert result.returncode == 2, result.output
    assert str(not_a_dir) in result.stderr and "Not a directory" in result.stderr
    assert database.tables() == set()


def test_dangling_symlink_migration_is_not_skipped_silently(call, database, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);")})
    (migrations_dir / "002_b.sql").symlink_to(migrations_dir / "elsewhere" / "002_b.sql")
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert_no_traceback(result)
    assert result.returncode == 2, result.output
    assert "002_b.sql: cannot read the file: No such file or directory" in result.stderr
    assert database.tables() == set()


def test_folder_named_like_a_migration_is_reported(call, database, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);")})
    (migrations_dir / "002_b.sql").mkdir()
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2, result.output
    assert "002_b.sql: a folder, not a SQL file" in result.stderr
    assert database.tables() == set()


# --- SQL edge cases through the runner -----------------------------------------------------------


def test_isolation_level_of_the_files_begin_is_kept(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_iso.sql": (
                "BEGIN ISOLATION LEVEL SERIALIZABLE;\n"
                "CREATE TABLE iso AS SELECT current_setting('transaction_isolation') AS level;\n"
                "COMMIT;\n"
            )
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert database.query("SELECT level FROM iso") == [("serializable",)]
    assert database.versions() == ["001"]


def test_read_only_wrapper_is_one_line_error_and_nothing_recorded(call, database, migrations_dir):
    write_files(migrations_dir, {"001_ro.sql": "START TRANSACTION READ ONLY;\nSELECT 1;\nEND;\n"})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert_no_traceback(result)
    assert result.returncode == 1, result.output
    assert "001_ro.sql" in result.stderr and "read-only transaction" in result.stderr
    assert database.query("SELECT count(*) FROM schema_migrations") == [(0,)]


def test_timeouts_set_by_one_migration_do_not_leak_into_the_next(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            # squawk's advice: each migration sets its own timeouts.
            "001_tight.sql": migration(
                "001_tight",
                "SET statement_timeout = '20ms';\nSET lock_timeout = '1ms';\n"
                "CREATE TABLE IF NOT EXISTS tight (id int);",
            ),
            "002_slow.sql": migration(
                "002_slow", "CREATE TABLE IF NOT EXISTS slow AS SELECT pg_sleep(0.2)::text AS slept;"
            ),
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert database.versions() == ["001", "002"]
    assert {"tight", "slow"} <= database.tables()
