"""Never record what did not run: which ledger, what a file leaves behind in the session, what it does to the ledger.

Each test is a way the runner used to report success while the ledger and the
database disagreed; they run ``manage.py`` (or ``call_command``) against the real
PostgreSQL and check the exit code, the output and the database afterwards.
"""

from __future__ import annotations

import time
from io import StringIO
from pathlib import Path

import pytest

from dbmigrations.locks import LOCK_KEY
from tests.conftest import clean_env, migration, spawn_manage, write_files


def url_with(database, **options: str) -> str:
    """The test database's URL with libpq ``options`` (``-c name=value`` each)."""
    from urllib.parse import quote

    flags = " ".join(f"-c{name}={value}" for name, value in options.items())
    return database.url + ("&" if "?" in database.url else "?") + "options=" + quote(flags, safe="")


def ledger_versions(database, schema: str = "public") -> list[str] | None:
    """Versions in ``schema``.schema_migrations, or None when that table does not exist."""
    exists = database.query("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".schema_migrations',))[0][0]
    if not exists:
        return None
    return [r[0] for r in database.query(f'SELECT version FROM "{schema}".schema_migrations ORDER BY version')]


def stderr_lines(result) -> list[str]:
    """stderr without the ``Database: …`` banner."""
    return [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("Database: ")]


# --- 1. The ledger is addressed by its schema, never found through search_path --------------------


@pytest.fixture
def own_alias(database, settings, django_db_blocker):
    """A Django alias of the test's database whose connection outlives a command (the API caller's own)."""
    from django.db import connections

    alias = f"test_{database.name}"
    connections.settings[alias] = {
        **connections.settings["default"],
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database.name,
        "USER": database.server.user,
        "PASSWORD": database.server.password,
        "HOST": database.server.host,
        "PORT": database.server.port,
        "OPTIONS": {},
        "SOURCE": "TEST_DATABASE_URL",
        "POOLED": False,
        "TEST": {},
    }
    connections.settings[alias].pop("CONFIG_ERROR", None)

    def run(name, migrations):
        from django.core.management import call_command

        settings.SQL_MIGRATIONS_DIR = Path(migrations)
        out, err = StringIO(), StringIO()
        call_command(name, database=alias, stdout=out, stderr=err, no_color=True)
        return out.getvalue()

    with django_db_blocker.unblock():
        yield alias, run
        connections[alias].close()
    del connections[alias]
    del connections.settings[alias]


def test_a_url_search_path_does_not_move_the_ledger(manage, database, migrations_dir):
    database.query("CREATE SCHEMA other")
    write_files(migrations_dir, {"001_t.sql": migration("001_t", "CREATE TABLE t (id int);")})
    result = manage(
        "apply_sql_migrations", migrations=migrations_dir, database_url=url_with(database, search_path="other")
    )
    assert result.returncode == 0, result.output
    assert "ledger public.schema_migrations" in result.stderr
    assert ledger_versions(database) == ["001"] and ledger_versions(database, "other") is None
    # The file's own unqualified names still follow the connection's search_path: that is the user's choice.
    assert database.tables("other") == {"t"}
    again = manage("apply_sql_migrations", migrations=migrations_dir)
    assert again.returncode == 0, again.output
    assert "Applied 0, skipped 1 already applied" in again.stdout


def test_a_schema_migrations_earlier_in_a_database_search_path_is_not_the_ledger(manage, database, migrations_dir):
    database.query("CREATE SCHEMA app")
    database.query(
        "CREATE TABLE app.schema_migrations (version VARCHAR(255) PRIMARY KEY, applied_at TIMESTAMP, "
        "checksum VARCHAR(64), description TEXT)"
    )
    database.query("INSERT INTO app.schema_migrations (version) VALUES ('001')")  # another tool's ledger
    database.query(f'ALTER DATABASE "{database.name}" SET search_path = app, public')
    write_files(
        migrations_dir, {"001_real.sql": migration("001_real", "CREATE TABLE IF NOT EXISTS public.real (id int);")}
    )
    result = manage("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert "Applying 001_real … OK" in result.stdout
    assert "real" in database.tables("public")
    assert ledger_versions(database) == ["001"]
    assert database.query("SELECT count(*) FROM app.schema_migrations") == [(1,)]
    status = manage("sql_migration_status", "--check", migrations=migrations_dir)
    assert status.returncode == 0, status.output


def test_a_temp_table_named_schema_migrations_is_not_the_ledger(own_alias, database, migrations_dir):
    from django.db import connections

    alias, run = own_alias
    write_files(migrations_dir, {"001_real.sql": migration("001_real", "CREATE TABLE IF NOT EXISTS real (id int);")})
    connection = connections[alias]
    with connection.cursor() as cursor:  # the session the command will use has a TEMP table of that name
        cursor.execute(
            "CREATE TEMP TABLE schema_migrations (version VARCHAR(255) PRIMARY KEY, applied_at TIMESTAMP,"
            " checksum VARCHAR(64), description TEXT)"
        )
        cursor.execute("INSERT INTO schema_migrations (version) VALUES ('001')")
    assert "Applied 1, skipped 0 already applied" in run("apply_sql_migrations", migrations_dir)
    assert "real" in database.tables() and ledger_versions(database) == ["001"]
    with connection.cursor() as cursor:  # the caller's own temporary table is left alone
        cursor.execute("SELECT version FROM pg_temp.schema_migrations")
        assert cursor.fetchall() == [("001",)]


def test_the_ledger_schema_setting(manage, database, migrations_dir):
    write_files(migrations_dir, {"001_t.sql": migration("001_t", "CREATE TABLE IF NOT EXISTS t (id int);")})
    env = {"SQL_MIGRATIONS_SCHEMA": "ops"}
    result = manage("apply_sql_migrations", migrations=migrations_dir, env=env)
    assert result.returncode == 0, result.output
    assert "ledger ops.schema_migrations" in result.stderr
    assert ledger_versions(database, "ops") == ["001"] and ledger_versions(database) is None
    status = manage("sql_migration_status", "--check", migrations=migrations_dir, env=env)
    assert status.returncode == 0, status.output
    # An empty value is unset: the default public schema (where nothing is applied yet).
    pending = manage("sql_migration_status", "--check", migrations=migrations_dir, env={"SQL_MIGRATIONS_SCHEMA": ""})
    assert pending.returncode == 1 and "ledger public.schema_migrations" in pending.stderr


def test_reset_db_also_forgets_a_ledger_kept_in_another_schema(manage, database, migrations_dir):
    write_files(migrations_dir, {"001_t.sql": migration("001_t", "CREATE TABLE IF NOT EXISTS t (id int);")})
    env = {"SQL_MIGRATIONS_SCHEMA": "ops"}
    assert manage("apply_sql_migrations", migrations=migrations_dir, env=env).returncode == 0
    reset = manage("reset_db", "--no-input", migrations=migrations_dir, env=env)
    assert reset.returncode == 0, reset.output
    assert ledger_versions(database, "ops") is None and "t" not in database.tables()


def test_the_admin_model_names_its_schema():
    from dbmigrations.models import SchemaMigration

    assert SchemaMigration._meta.db_table == '"public"."schema_migrations"'


# --- 2. A file's session state never reaches the next file ---------------------------------------


def test_client_encoding_set_by_one_migration_does_not_garble_the_next(manage, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_latin1.sql": migration(
                "001_latin1", "SET client_encoding TO 'LATIN1';\nCREATE TABLE IF NOT EXISTS a (id int);"
            ),
            "002_text.sql": migration("002_text", "CREATE TABLE IF NOT EXISTS words AS SELECT 'é€'::text AS word;"),
        },
    )
    result = manage("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert database.query("SELECT word FROM words") == [("é€",)]


def test_read_only_default_set_by_one_migration_does_not_fail_the_next(manage, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_ro.sql": migration(
                "001_ro", "SET default_transaction_read_only = on;\nCREATE TABLE IF NOT EXISTS a (id int);"
            ),
            "002_b.sql": migration("002_b", "CREATE TABLE IF NOT EXISTS b (id int);"),
        },
    )
    result = manage("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert ledger_versions(database) == ["001", "002"] and {"a", "b"} <= database.tables()


def test_session_authorization_set_by_a_migration_is_reset(manage, database, migrations_dir):
    role = f"{database.name}_auth"
    write_files(
        migrations_dir,
        {
            "001_auth.sql": migration("001_auth", f"CREATE ROLE {role};\nSET SESSION AUTHORIZATION {role};\nSELECT 1;"),
            "002_next.sql": migration("002_next", "CREATE TABLE IF NOT EXISTS nxt (id int);"),
        },
    )
    try:
        result = manage("apply_sql_migrations", migrations=migrations_dir)
        assert result.returncode == 0, result.output
        assert ledger_versions(database) == ["001", "002"]
        assert database.query("SELECT tableowner <> %s FROM pg_tables WHERE tablename = 'nxt'", (role,)) == [(True,)]
    finally:
        database.query(f"DROP ROLE IF EXISTS {role}")


def test_temp_tables_of_one_migration_do_not_reach_the_next(manage, database, migrations_dir):
    scratch = "CREATE TEMP TABLE scratch AS SELECT 1 AS x;\nCREATE TABLE IF NOT EXISTS {0} AS SELECT x FROM scratch;"
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", scratch.format("a")),
            "002_b.sql": migration("002_b", scratch.format("b")),
        },
    )
    result = manage("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert ledger_versions(database) == ["001", "002"]


def test_the_callers_session_is_restored_after_the_run(own_alias, database, migrations_dir):
    from django.db import connections

    alias, run = own_alias
    # The server's default differs from Django's UTC, so Django sets TimeZone when it connects.
    database.query(f"ALTER DATABASE \"{database.name}\" SET TimeZone = 'Asia/Tokyo'")
    write_files(
        migrations_dir,
        {
            "001_reset.sql": migration("001_reset", "RESET ALL;\nCREATE TABLE IF NOT EXISTS b (id int);"),
            "002_tz.sql": migration(
                "002_tz", "SET TIME ZONE 'America/New_York';\nCREATE TABLE IF NOT EXISTS a (id int);"
            ),
        },
    )
    assert "Applied 2" in run("apply_sql_migrations", migrations_dir)
    with connections[alias].cursor() as cursor:
        cursor.execute("SHOW TimeZone")  # set by Django when it connected
        assert cursor.fetchone()[0] == "UTC"


# --- 3. A migration that changes the ledger is a failure, rolled back ------------------------------


def _tamper(manage, database, migrations_dir, body: str):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);"),
            "002_b.sql": migration("002_b", f"CREATE TABLE IF NOT EXISTS b (id int);\n{body}"),
            "003_c.sql": migration("003_c", "CREATE TABLE IF NOT EXISTS c (id int);"),
        },
    )
    result = manage("apply_sql_migrations", migrations=migrations_dir)
    assert "Traceback" not in result.output
    assert result.returncode == 1, result.output
    assert "Applying 002_b … FAILED" in result.stdout
    lines = stderr_lines(result)
    assert "002_b.sql" in lines[0] and "schema_migrations" in lines[0], result.stderr
    assert "rolled back" in result.stderr
    assert ledger_versions(database) == ["001"]
    assert "b" not in database.tables() and "c" not in database.tables()
    return result


def test_a_migration_deleting_ledger_rows_fails(manage, database, migrations_dir):
    _tamper(manage, database, migrations_dir, "DELETE FROM schema_migrations WHERE version = '001';")


def test_a_migration_truncating_the_ledger_fails(manage, database, migrations_dir):
    _tamper(manage, database, migrations_dir, "TRUNCATE schema_migrations;")


def test_a_migration_forging_a_ledger_row_fails(manage, database, migrations_dir):
    _tamper(
        manage, database, migrations_dir, "INSERT INTO schema_migrations (version, checksum) VALUES ('003', 'forged');"
    )


def test_a_migration_rewriting_its_own_ledger_row_fails(manage, database, migrations_dir):
    _tamper(manage, database, migrations_dir, "UPDATE schema_migrations SET checksum = 'x' WHERE version = '002';")


def test_a_migration_resetting_the_session_before_tampering_is_still_caught(manage, database, migrations_dir):
    _tamper(manage, database, migrations_dir, "RESET ALL;\nDELETE FROM schema_migrations WHERE version = '001';")


def test_a_migration_truncating_the_ledger_and_putting_its_own_row_back_fails(manage, database, migrations_dir):
    # The write counts of the transaction restart at a TRUNCATE: the check must still see it.
    _tamper(
        manage,
        database,
        migrations_dir,
        "CREATE TEMP TABLE kept AS SELECT * FROM schema_migrations WHERE version = '002';\n"
        "TRUNCATE schema_migrations;\nINSERT INTO schema_migrations SELECT * FROM kept;",
    )


def test_without_track_counts_a_migration_writing_the_ledger_still_fails(manage, database, migrations_dir):
    # The server then counts no writes: the check reads the ledger's rows instead.
    database.query(f'ALTER DATABASE "{database.name}" SET track_counts = off')
    _tamper(manage, database, migrations_dir, "DELETE FROM schema_migrations WHERE version = '001';")


# --- 4. A role's statement_timeout bounds the file's statements, not the wait for the lock ---------


def test_a_role_statement_timeout_does_not_cut_the_wait_for_the_migration_lock(database, migrations_dir):
    database.query(f"ALTER ROLE CURRENT_USER IN DATABASE \"{database.name}\" SET statement_timeout = '1s'")
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);")})
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    with database.connect() as holder:  # another deploy holds the lock
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        runner = spawn_manage("apply_sql_migrations", env=env)
        try:
            deadline = time.monotonic() + 30
            while not database.query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"):
                assert time.monotonic() < deadline and runner.poll() is None, runner.communicate()
                time.sleep(0.05)
            time.sleep(2.5)  # well past the role's statement_timeout
            assert runner.poll() is None, runner.communicate()  # still waiting, not killed
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, out + err
    assert ledger_versions(database) == ["001"]


def test_a_role_statement_timeout_still_bounds_the_files_statements(manage, database, migrations_dir):
    database.query(f"ALTER ROLE CURRENT_USER IN DATABASE \"{database.name}\" SET statement_timeout = '1s'")
    write_files(
        migrations_dir,
        {"001_slow.sql": migration("001_slow", "CREATE TABLE IF NOT EXISTS a (id int);\nSELECT pg_sleep(3);")},
    )
    result = manage("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1, result.output
    assert "001_slow.sql:9:1: ERROR 57014" in result.stderr and "statement timeout" in result.stderr
    assert ledger_versions(database) == [] and "a" not in database.tables()


def test_a_down_file_changing_the_ledger_fails_and_is_rolled_back(manage, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);"),
            "002_b.sql": migration("002_b", "CREATE TABLE IF NOT EXISTS b (id int);"),
            "002_b.down.sql": migration(
                "002_b", "DROP TABLE IF EXISTS b;\nDELETE FROM schema_migrations WHERE version = '001';"
            ),
        },
    )
    assert manage("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    result = manage("rollback_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1, result.output
    lines = stderr_lines(result)
    assert "002_b.down.sql" in lines[0] and "changed the ledger public.schema_migrations" in lines[0], result.stderr
    assert ledger_versions(database) == ["001", "002"] and "b" in database.tables()
