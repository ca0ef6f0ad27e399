"""check_sql_schema's fidelity: what a DBA or a console changes is reported, one line per change, and
what only differs in how a session prints a definition (search_path, TimeZone), or comes from the
server's setup rather than the migrations (default privileges, roles), is not."""

import pytest

from tests.conftest import migration, write_files

BASE = """
CREATE SCHEMA IF NOT EXISTS app;
CREATE TABLE t (a int, b text, c text);
CREATE TABLE app.things (id int);
COMMENT ON TABLE app.things IS 'kept elsewhere';
CREATE TYPE addr AS (street text, city text);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE s (id serial, label text);
CREATE OR REPLACE FUNCTION sd() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$ SELECT 1 $$;
CREATE OR REPLACE FUNCTION tg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t_tg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION tg();
CREATE OR REPLACE VIEW v AS SELECT a FROM t;
CREATE EXTENSION IF NOT EXISTS vector;
"""

# A change made by hand → the one line the check must report.
CHANGES = {
    "collation": ('ALTER TABLE t ALTER COLUMN b TYPE text COLLATE "C"', "column t.b: differs"),
    "column order": ("ALTER TABLE t DROP COLUMN b; ALTER TABLE t ADD COLUMN b text", "column order t: differs"),
    "composite attribute": ("ALTER TYPE addr ADD ATTRIBUTE zip text", "type addr: differs"),
    "domain check": ("ALTER DOMAIN posint DROP CONSTRAINT posint_check", "type posint: differs"),
    "partition bounds": (
        "ALTER TABLE events DETACH PARTITION events_2024; "
        "ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM ('2024-01-01') TO ('2024-07-01')",
        "table events_2024: differs",
    ),
    "partition dropped": ("DROP TABLE events_2024", "table events_2024: missing"),
    "unlogged": ("ALTER TABLE t SET UNLOGGED", "table t: differs"),
    "storage parameter": ("ALTER TABLE t SET (fillfactor = 70)", "table t: differs"),
    "function execute revoked": ("REVOKE EXECUTE ON FUNCTION sd() FROM PUBLIC", "function sd(): differs"),
    "schema usage granted": ("GRANT USAGE ON SCHEMA app TO PUBLIC", "schema app: differs"),
    "column grant": ("GRANT SELECT (a) ON t TO PUBLIC", "grant t: extra"),
    "sequence ownership": ("ALTER SEQUENCE s_id_seq OWNED BY NONE", "sequence s_id_seq: differs"),
    "table with its serial dropped": ("DROP TABLE s", "table s: missing"),
    "table with its comment dropped": ("DROP TABLE app.things", "table app.things: missing"),
    "trigger fires on replicas": ("ALTER TABLE t ENABLE ALWAYS TRIGGER t_tg", "trigger t.t_tg: differs"),
    "view security_invoker": ("ALTER VIEW v SET (security_invoker = true)", "view v: differs"),
    "view check option": ("CREATE OR REPLACE VIEW v AS SELECT a FROM t WITH CHECK OPTION", "view v: differs"),
    "extension moved": ("ALTER EXTENSION vector SET SCHEMA app", "extension vector: differs"),
}


@pytest.fixture
def base(call, migrations_dir):
    write_files(migrations_dir, {"001_base.sql": migration("001_base", BASE)})
    applied = call("apply_sql_migrations", migrations=migrations_dir)
    assert applied.returncode == 0, applied.output
    return migrations_dir


def reported(result) -> list[str]:
    lines = [line.strip() for line in result.stdout.splitlines() if ": " in line and not line.startswith(" " * 4)]
    return [line for line in lines if line.split(": ")[1].split()[0] in ("missing", "extra", "differs")]


def test_the_base_schema_has_no_drift(call, base):
    result = call("check_sql_schema", migrations=base)
    assert result.returncode == 0, result.output


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_each_change_is_one_reported_line(call, database, base, change):
    statement, expected = CHANGES[change]
    database.query(statement)
    result = call("check_sql_schema", migrations=base)
    assert result.returncode == 1, result.output
    (line,) = reported(result)
    assert line.startswith(expected), result.stdout


def test_relations_an_extension_created_are_on_its_line(call, database, base):
    # As an extension's own script creates them (postgis' spatial_ref_sys, pg_stat_statements' views): they
    # follow its version, which is compared; listing them would repeat it once per relation.
    database.query("CREATE TABLE vector_meta (a int); ALTER EXTENSION vector ADD TABLE vector_meta")
    database.query("CREATE VIEW vector_info AS SELECT 1 AS x; ALTER EXTENSION vector ADD VIEW vector_info")
    result = call("check_sql_schema", migrations=base)
    assert result.returncode == 0, result.output


# Printed definitions depend on the session: both sides must be read the same way.


def test_a_database_search_path_set_by_a_migration_is_not_drift(call, database, migrations_dir):
    body = """
CREATE SCHEMA IF NOT EXISTS app;
CREATE TYPE app.mood AS ENUM ('a', 'b');
CREATE TABLE app.people (id serial PRIMARY KEY, m app.mood DEFAULT 'a');
CREATE OR REPLACE VIEW app.v AS SELECT id, m FROM app.people;
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET search_path = app, public', current_database()); END $$;
"""
    write_files(migrations_dir, {"001_app.sql": migration("001_app", body)})
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    result = call("check_sql_schema", migrations=migrations_dir)
    assert result.returncode == 0, result.output


def test_the_urls_time_zone_is_not_drift(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {"001_t.sql": migration("001_t", "CREATE TABLE t (at timestamptz DEFAULT '2024-01-01 00:00:00+00');")},
    )
    url = database.url + ("&" if "?" in database.url else "?") + "options=-c%20TimeZone%3DAsia/Tokyo"
    assert call("apply_sql_migrations", migrations=migrations_dir, database_url=url).returncode == 0
    result = call("check_sql_schema", migrations=migrations_dir, database_url=url)
    assert result.returncode == 0, result.output
    # The stored schema is read the same way by Django's own connection (UTC).
    check = call("check", "--database", "default", migrations=migrations_dir)
    assert "dbmigrations.W007" not in check.output, check.output


# The server's setup is not the migrations' doing.


@pytest.fixture
def role(database):
    name = f"r_{database.name}"
    database.query(f'CREATE ROLE "{name}"')
    yield name
    database.query(f'DROP OWNED BY "{name}"')
    database.query(f'DROP ROLE "{name}"')


def test_default_privileges_set_up_outside_the_migrations_are_not_drift(call, database, migrations_dir, role):
    # The least-privilege setup: a DBA lets the application's role read every table the deploy creates.
    database.query(f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "{role}"')
    database.query("ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC")
    body = "CREATE TABLE t (a int);\nCREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;"
    write_files(migrations_dir, {"001_t.sql": migration("001_t", body)})
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    result = call("check_sql_schema", migrations=migrations_dir)
    assert result.returncode == 0, result.output

    database.query(f'GRANT INSERT ON t TO "{role}"')  # by hand: still drift
    result = call("check_sql_schema", migrations=migrations_dir)
    assert result.returncode == 1 and reported(result)[0].startswith("grant t: differs"), result.output


def test_privileges_on_schema_public_granted_outside_the_migrations_are_not_drift(call, database, migrations_dir, role):
    # Since PostgreSQL 15 only the database owner may create in public: a DBA grants it to the role that owns
    # the tables, and a migration creates them as that role.
    database.query(f'GRANT CREATE ON SCHEMA public TO "{role}"')
    body = f'SET ROLE "{role}";\nCREATE TABLE owned (id int GENERATED ALWAYS AS IDENTITY, v text);\nRESET ROLE;'
    write_files(migrations_dir, {"001_owned.sql": migration("001_owned", body)})
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    result = call("check_sql_schema", migrations=migrations_dir)
    assert result.returncode == 0, result.output


def test_a_migration_that_cannot_be_rebuilt_says_so_and_exits_2(call, database, migrations_dir, role):
    # Roles belong to the server: the scratch database sees the one this migration created on the live one.
    created = f"{role}_made"
    write_files(migrations_dir, {"001_role.sql": migration("001_role", f'CREATE ROLE "{created}";')})
    try:
        assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
        result = call("check_sql_schema", migrations=migrations_dir)
        assert result.returncode == 2, result.output
        assert "scratch database" in result.stderr and "drift was not checked" in result.stderr
        assert "already exists" in result.stderr and "IF NOT EXISTS" in result.stderr
        deploy = call("apply_sql_migrations", "--check-schema", migrations=migrations_dir)
        assert deploy.returncode == 0 and "WARNING: schema drift not checked" in deploy.stderr, deploy.output
    finally:
        database.query(f'DROP ROLE IF EXISTS "{created}"')


def test_unmanaged_django_models_do_not_hide_their_tables(call, database, base):
    from django.apps import apps
    from django.db import models

    class Reading(models.Model):  # a read-only model over a table the SQL migrations create
        a = models.IntegerField(primary_key=True)

        class Meta:
            app_label = "admin"
            managed = False
            db_table = "t"

    try:
        database.query("ALTER TABLE t DROP COLUMN c")
        result = call("check_sql_schema", migrations=base)
        assert result.returncode == 1, result.output
        assert reported(result) == ["column t.c: missing (the applied migrations create it): text"]
    finally:
        del apps.all_models["admin"]["reading"]
        apps.clear_cache()


def test_the_report_groups_by_kind_under_plural_headings(call, database, base):
    database.query("CREATE POLICY hotfix ON t USING (true); CREATE INDEX hotfix_idx ON t (a)")
    result = call("check_sql_schema", migrations=base)
    assert result.returncode == 1
    assert [line for line in result.stdout.splitlines() if line.endswith(":")] == ["indexes:", "policies:"]
