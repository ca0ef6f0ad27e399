"""Where schema drift shows: `check --database`, the deploy's `--check-schema`, and the admin.

`check_sql_schema` stores the schema the applied migrations build; the check and the admin
compare the live catalog with it (no scratch database) as long as the ledger is unchanged.
"""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import migration, write_files
from tests.test_admin import LIST_URL, sql, staff_client  # noqa: F401 (a fixture)
from tests.test_drift import RICH

HOTFIX = "CREATE INDEX hotfix_idx ON notes(id)"


@pytest.fixture
def rich(call, database, migrations_dir):
    write_files(migrations_dir, RICH)
    applied = call("apply_sql_migrations", migrations=migrations_dir)
    assert applied.returncode == 0, applied.output
    return migrations_dir


def drift_warnings(result) -> list[str]:
    return [line for line in result.output.splitlines() if "dbmigrations.W007" in line]


def test_check_database_warns_on_drift_once_the_expected_schema_is_stored(call, database, rich):
    database.query(HOTFIX)
    assert drift_warnings(call("check", "--database", "default", migrations=rich)) == []  # never checked: silent

    assert call("check_sql_schema", migrations=rich).returncode == 1
    result = call("check", "--database", "default", migrations=rich)
    assert result.returncode == 0, result.output  # a warning never blocks Django's commands
    (warning,) = drift_warnings(result)
    assert "1 difference(s)" in warning and "index hotfix_idx: extra" in warning

    database.query("DROP INDEX hotfix_idx")  # the live side is read on every check
    assert drift_warnings(call("check", "--database", "default", migrations=rich)) == []


def test_check_database_is_silent_once_the_ledger_moved_on(call, database, rich):
    assert call("check_sql_schema", migrations=rich).returncode == 0
    write_files(rich, {"003_more.sql": migration("003_more", "CREATE TABLE IF NOT EXISTS more (id int);")})
    assert call("apply_sql_migrations", migrations=rich).returncode == 0
    database.query(HOTFIX)
    # The stored schema is 001–002's: comparing 003's table with it would be a false report.
    assert drift_warnings(call("check", "--database", "default", migrations=rich)) == []


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_deploy_warns_about_drift_then_applies_and_stores_the_new_expected_schema(call, database, rich, how):
    database.query(HOTFIX)
    write_files(rich, {"003_more.sql": migration("003_more", "CREATE TABLE IF NOT EXISTS more (id int);")})
    args, env = (["--check-schema"], {}) if how == "flag" else ([], {"SQL_SCHEMA_CHECK_ON_DEPLOY": "1"})
    result = call("apply_sql_migrations", *args, migrations=rich, env=env)
    assert result.returncode == 0, result.output
    assert "WARNING: schema drift: index hotfix_idx: extra" in result.stderr
    assert "1 schema difference(s)" in result.stderr and "applying anyway" in result.stderr
    assert database.query("SELECT version FROM schema_migrations ORDER BY version") == [("001",), ("002",), ("003",)]
    # The stored expected schema is the one after 003: the check compares against it right away.
    (warning,) = drift_warnings(call("check", "--database", "default", migrations=rich))
    assert "index hotfix_idx: extra" in warning and "more" not in warning


def test_deploy_without_the_option_builds_no_scratch_database(call, database, rich):
    database.query(HOTFIX)
    result = call("apply_sql_migrations", migrations=rich)
    assert result.returncode == 0 and "drift" not in result.output
    assert database.query("SELECT to_regclass('schema_migrations_snapshot')") == [(None,)]


def test_a_clean_database_says_so_before_applying(call, rich):
    result = call("apply_sql_migrations", "--check-schema", migrations=rich)
    assert result.returncode == 0, result.output
    assert "Schema: matches the 2 applied migration(s)." in result.stdout and "WARNING" not in result.stderr


def test_a_role_that_cannot_store_the_expected_schema_still_gets_its_report(
    call, manage, database, migrations_dir, pg_server
):
    write_files(migrations_dir, {"001_notes.sql": RICH["002_notes.sql"].replace("002", "001")})
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    role = f"nostore_{database.name}"
    # Since PostgreSQL 15 only the database owner may create in schema public: this role reads, and may
    # create the scratch database, but not the table that keeps the expected schema.
    database.query(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw' CREATEDB")
    database.query(f'GRANT SELECT ON schema_migrations TO "{role}"')
    if database.query("SELECT has_schema_privilege(%s, 'public', 'CREATE')", (role,)) != [(False,)]:
        pytest.skip("this server lets every role create in schema public (PostgreSQL 14)")
    try:
        result = manage(
            "check_sql_schema",
            migrations=migrations_dir,
            database_url=pg_server.url(database.name, user=role, password="pw"),
        )
        assert result.returncode == 0, result.output
        assert "the database matches them" in result.stdout
        assert "could not store the expected schema" in result.stderr
        assert database.query("SELECT to_regclass('schema_migrations_snapshot')") == [(None,)]
    finally:
        database.query(f'DROP OWNED BY "{role}"')
        database.query(f'DROP ROLE IF EXISTS "{role}"')


# The admin, on pytest-django's test database.


@pytest.fixture
def admin_ledger(transactional_db, settings, tmp_path):
    directory = write_files(tmp_path / "migrations", RICH)
    settings.SQL_MIGRATIONS_DIR = directory
    call_command("apply_sql_migrations", stdout=StringIO(), stderr=StringIO(), no_color=True)
    yield directory
    sql(
        "DROP TABLE IF EXISTS schema_migrations, schema_migrations_snapshot, members, notes, more CASCADE;"
        "DROP MATERIALIZED VIEW IF EXISTS member_count; DROP FUNCTION IF EXISTS touch() CASCADE;"
        "DROP TYPE IF EXISTS mood; DROP SEQUENCE IF EXISTS ticket_seq; DROP EXTENSION IF EXISTS vector"
    )


def check_schema():
    try:
        call_command("check_sql_schema", stdout=StringIO(), stderr=StringIO(), no_color=True)
    except CommandError as error:
        return error.returncode
    return 0


def panel_text(client) -> str:
    page = client.get(LIST_URL).content.decode()
    start = page.index('id="sql-drift"')
    end = page.index("</div>", start) if page[:start].endswith("<div ") else page.index("</p>", start)
    return " ".join(page[start:end].split())


def test_admin_shows_the_drift_summary_next_to_the_ledger(staff_client, admin_ledger):  # noqa: F811
    assert "not checked yet" in panel_text(staff_client)

    assert check_schema() == 0
    assert "matches its applied SQL migrations" in panel_text(staff_client)

    sql(HOTFIX)
    text = panel_text(staff_client)
    assert "Schema drift: this database differs" in text and "1 difference" in text
    assert "index hotfix_idx: extra" in text

    write_files(admin_ledger, {"003_more.sql": migration("003_more", "CREATE TABLE IF NOT EXISTS more (id int);")})
    call_command("apply_sql_migrations", stdout=StringIO(), stderr=StringIO(), no_color=True)
    assert "not known" in panel_text(staff_client) and "Run it again" in panel_text(staff_client)


# The stored schema: who may read it, two checks at once, another version of the tool.


def test_the_ledgers_readers_may_read_the_stored_schema(call, database, rich, pg_server):
    role = f"reader_{database.name}"
    database.query(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw'")
    database.query(f'GRANT SELECT ON schema_migrations TO "{role}"')  # the application's role, say
    try:
        assert call("check_sql_schema", migrations=rich).returncode == 0  # stored by the deploy's role
        database.query(HOTFIX)
        result = call(
            "check",
            "--database",
            "default",
            migrations=rich,
            database_url=pg_server.url(database.name, user=role, password="pw"),
        )
        (warning,) = drift_warnings(result)
        assert "index hotfix_idx: extra" in warning, result.output
    finally:
        database.query(f'DROP OWNED BY "{role}"')
        database.query(f'DROP ROLE "{role}"')


def test_a_schema_stored_by_another_version_of_the_tool_is_not_compared(call, database, rich):
    import json

    from dbmigrations import ledger

    assert call("check_sql_schema", migrations=rich).returncode == 0
    # What an older tool stored: filed under the ledger alone, its catalog printed its own way.
    (text,) = database.query("SELECT catalog FROM schema_migrations_snapshot")[0]
    older = json.loads(text)
    older["extension"] = {name: "printed another way" for name in older["extension"]}
    rows = database.query("SELECT version, checksum FROM schema_migrations")
    database.query(
        "UPDATE schema_migrations_snapshot SET fingerprint = %s, catalog = %s",
        (ledger.fingerprint(rows), json.dumps(older)),
    )
    assert drift_warnings(call("check", "--database", "default", migrations=rich)) == []


def test_two_checks_storing_at_once_both_store(call, database, rich, tmp_path):
    import time

    from tests.conftest import clean_env, spawn_manage

    assert call("check_sql_schema", migrations=rich).returncode == 0
    (stored,) = database.query("SELECT fingerprint, server_version, catalog FROM schema_migrations_snapshot")
    with database.connect() as other:  # another check, storing the same expected schema right now
        other.execute("BEGIN")
        other.execute("DELETE FROM schema_migrations_snapshot")
        other.execute(
            "INSERT INTO schema_migrations_snapshot (fingerprint, server_version, catalog) VALUES (%s, %s, %s)", stored
        )
        env = clean_env(
            DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(rich), SQL_EMBEDDED_PGDATA=str(tmp_path / "pg")
        )
        process = spawn_manage("check_sql_schema", env=env)
        blocked = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        deadline = time.monotonic() + 60
        while database.query(blocked) == [(0,)] and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        other.execute("COMMIT")
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, out + err
    assert "could not store" not in err
    assert database.query("SELECT count(*) FROM schema_migrations_snapshot") == [(1,)]


def test_a_scratch_database_the_role_cannot_connect_to_is_a_warning_in_a_deploy(call, database, rich, pg_server):
    role = f"noscratch_{database.name}"
    database.query(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw' CREATEDB")
    database.query(f'ALTER DATABASE "{database.name}" OWNER TO "{role}"')
    database.query(f'ALTER TABLE schema_migrations OWNER TO "{role}"')
    # Any new database refuses this role's connections (as a pg_hba.conf listing databases would); its own works.
    database.query(f"ALTER ROLE \"{role}\" SET session_preload_libraries = 'no_such_library_for_drift'")
    database.query(f'ALTER ROLE "{role}" IN DATABASE "{database.name}" SET session_preload_libraries = \'plpgsql\'')
    url = pg_server.url(database.name, user=role, password="pw")
    try:
        checked = call("check_sql_schema", migrations=rich, database_url=url)
        assert checked.returncode == 2, checked.output
        assert "cannot connect to the scratch database" in checked.stderr and "pw" not in checked.stderr
        write_files(rich, {"003_more.sql": migration("003_more", "CREATE TABLE IF NOT EXISTS more (id int);")})
        deploy = call("apply_sql_migrations", "--check-schema", migrations=rich, database_url=url)
        assert deploy.returncode == 0, deploy.output
        assert "WARNING: schema drift not checked: cannot connect to the scratch database" in deploy.stderr
        assert database.versions() == ["001", "002", "003"]
    finally:
        database.query(f'ALTER DATABASE "{database.name}" OWNER TO "{pg_server.user}"')
        database.query(f'REASSIGN OWNED BY "{role}" TO "{pg_server.user}"')
        database.query(f'DROP OWNED BY "{role}"')
        database.query(f'DROP ROLE "{role}"')


def test_admin_page_survives_a_stored_schema_it_may_not_read(staff_client, admin_ledger, settings):  # noqa: F811
    from django.db import connection

    assert check_schema() == 0
    role = f"web_{connection.settings_dict['NAME']}"
    sql(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw'")
    sql(
        f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"'
    )
    sql(f'REVOKE ALL ON schema_migrations_snapshot FROM "{role}"')
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(USER=role, PASSWORD="pw", ATOMIC_REQUESTS=True)
    try:
        response = staff_client.get(LIST_URL)
        assert response.status_code == 200
        assert "could not be read" in panel_text(staff_client) and "permission denied" in panel_text(staff_client)
        assert [row.version for row in response.context["cl"].result_list] == ["001", "002"]  # the ledger still lists
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
        sql(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


def test_comparing_leaves_no_setting_on_the_session(call, database, rich):
    # Through a transaction pooler (PgBouncer, Neon's -pooler) a session-level SET would stay on a server
    # connection another client gets next, and the next query might not run where it was set.
    import psycopg

    from dbmigrations import drift
    from dbmigrations.session import Session

    assert call("check_sql_schema", migrations=rich).returncode == 0
    with psycopg.connect(database.url, autocommit=True) as connection:
        assert drift.compare_with_stored(Session(connection)).state == "ok"
        changed = "SELECT name FROM pg_settings WHERE source = 'session' AND name <> 'transaction_isolation'"
        assert connection.execute(changed).fetchall() == []


def test_a_deploy_during_the_check_is_not_reported_as_drift(call, database, migrations_dir, tmp_path):
    import time

    from tests.conftest import clean_env, spawn_manage

    slow = "CREATE TABLE IF NOT EXISTS slow (id int);\nSELECT pg_sleep(CASE WHEN current_database() LIKE 'drift%' THEN 4 ELSE 0 END);"
    write_files(migrations_dir, {"001_slow.sql": migration("001_slow", slow)})
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    env = clean_env(
        DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir), SQL_EMBEDDED_PGDATA=str(tmp_path / "pg")
    )
    process = spawn_manage("check_sql_schema", env=env)
    deadline = time.monotonic() + 30
    busy = "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'drift%' AND wait_event = 'PgSleep'"
    while database.query(busy) == [(0,)] and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    # The check read the ledger and is rebuilding 001 on its scratch database: a deploy lands meanwhile.
    write_files(migrations_dir, {"002_more.sql": migration("002_more", "CREATE TABLE IF NOT EXISTS more (id int);")})
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2, out + err
    assert "table more: extra" not in out and "while the check ran" in err


def test_an_annotation_points_at_the_file_that_creates_the_object(call, database, rich):
    database.query("ALTER TABLE notes ALTER COLUMN id TYPE bigint")
    result = call("check_sql_schema", migrations=rich, env={"GITHUB_ACTIONS": "true"})
    assert result.returncode == 1
    (annotation,) = [line for line in result.stdout.splitlines() if line.startswith("::warning")]
    # "id" is on an earlier line of 001_base.sql too: the column of notes is created in 002.
    assert "002_notes.sql" in annotation and "column notes.id: differs" in annotation, annotation
