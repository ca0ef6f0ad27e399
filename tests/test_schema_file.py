"""write_sql_schema: a deterministic, loadable schema file, and --check for CI."""

import subprocess

from dbmigrations import catalog
from dbmigrations.session import Session
from tests.conftest import SHIPPED_MIGRATIONS, migration, write_files


def snapshot(database):
    import psycopg

    with psycopg.connect(database.url, autocommit=True) as connection:
        return catalog.snapshot(Session(connection), ignore_tables=frozenset({"schema_migrations"}))


def test_the_schema_file_loads_into_the_same_schema_and_check_follows_it(manage, database, pg_server, tmp_path):
    assert manage("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS).returncode == 0
    output = tmp_path / "schema.sql"
    written = manage("write_sql_schema", "--output", output)
    assert written.returncode == 0, written.output
    text = output.read_text()
    assert "CREATE TABLE public.clients" in text and "schema_migrations" not in text
    assert "Dumped by" not in text  # nothing that changes between two runs

    again = manage("write_sql_schema", "--output", output)
    assert again.returncode == 0 and "already current" in again.stdout
    assert output.read_text() == text

    from pgserver._commands import POSTGRES_BIN_PATH

    with pg_server.connect() as admin:
        admin.execute(f'CREATE DATABASE "{database.name}_loaded"')
    try:
        loaded_url = pg_server.url(f"{database.name}_loaded")
        proc = subprocess.run(
            [str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(output), loaded_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr

        class Loaded:
            url = loaded_url

        from dbmigrations.drift import compare

        differences = compare(snapshot(database), snapshot(Loaded))
        # The one thing PostgreSQL itself prints differently after a dump and reload: a CHECK (x IN (…)) on a
        # varchar column comes back as ARRAY[('a'::varchar)::text, …] instead of ARRAY['a'::varchar, …]::text[].
        assert [d.name for d in differences] in ([], ["recommendation_jobs.recommendation_jobs_status_check"])
        for difference in differences:
            words = ("'queued'", "'running'", "'succeeded'", "'failed'", "'cancelled'")
            assert all(w in difference.expected and w in difference.actual for w in words)
    finally:
        with pg_server.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database.name}_loaded" WITH (FORCE)')

    assert manage("write_sql_schema", "--check", "--output", output).returncode == 0
    database.query("CREATE TABLE hotfix (id int)")
    stale = manage("write_sql_schema", "--check", "--output", output)
    assert stale.returncode == 1 and "is not current" in stale.stderr
    assert output.read_text() == text  # --check writes nothing


def test_the_ledger_in_its_own_schema_is_left_out_and_url_options_are_quoted(call, database, migrations_dir, tmp_path):
    write_files(migrations_dir, {"001_notes.sql": migration("001_notes", "CREATE TABLE IF NOT EXISTS notes (id int);")})
    env = {"SQL_MIGRATIONS_SCHEMA": "ops"}
    url = database.url + ("&" if "?" in database.url else "?") + "application_name=o%27brien"
    assert call("apply_sql_migrations", migrations=migrations_dir, env=env, database_url=url).returncode == 0
    output = tmp_path / "schema.sql"
    written = call("write_sql_schema", "--output", output, env=env, database_url=url)
    assert written.returncode == 0, written.output
    text = output.read_text()
    assert "CREATE TABLE public.notes" in text and "schema_migrations" not in text
