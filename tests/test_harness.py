"""The harness itself: a reused test database is as empty as a new one, or it is a new one."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import DatabasePool, migration, write_files

# What a brand-new database looks like from inside (compared before and after each scenario).
LOOK = {
    "objects": "SELECT count(*) FROM pg_class WHERE oid >= 16384",
    "schemas": "SELECT array_agg(nspname::text ORDER BY nspname) FROM pg_namespace "
    "WHERE nspname !~ '^pg_(temp|toast_temp)_'",
    "public": "SELECT nspowner::regrole::text, nspacl::text, obj_description(oid, 'pg_namespace') FROM pg_namespace "
    "WHERE nspname = 'public'",
    "functions": "SELECT count(*) FROM pg_proc WHERE oid >= 16384",
    "types": "SELECT count(*) FROM pg_type WHERE oid >= 16384",
    "extensions": "SELECT array_agg(extname::text ORDER BY extname) FROM pg_extension",
    "default_acl": "SELECT count(*) FROM pg_default_acl",
    "event_triggers": "SELECT count(*) FROM pg_event_trigger",
    "large_objects": "SELECT count(*) FROM pg_largeobject_metadata",
    "database": "SELECT datdba::regrole::text, datacl::text, datconnlimit, shobj_description(oid, 'pg_database'), "
    "(SELECT count(*) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) "
    "FROM pg_database d WHERE datname = current_database()",
}


def look(server, name: str) -> dict:
    with server.connect(name) as connection:
        return {key: connection.execute(query).fetchall() for key, query in LOOK.items()}


@pytest.fixture
def pool(pg_server):
    pool = DatabasePool(pg_server)
    yield pool
    pool.drop()


@pytest.fixture
def role(pg_server, pool):
    name = "harness_role_" + pool.acquire()
    with pg_server.connect() as admin:
        admin.execute(f'CREATE ROLE "{name}" LOGIN')
    yield name
    if pool.name is not None:  # the databases the pool replaced are gone, and with them what the role owned
        with pg_server.connect(pool.name) as connection:
            connection.execute(f'DROP OWNED BY "{name}"')
    with pg_server.connect() as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{name}"')


EMPTIED = {  # the same database, emptied
    "tables, views, functions, types in public": """
        CREATE TABLE t (id serial PRIMARY KEY, v text);
        INSERT INTO t (v) VALUES ('x');
        CREATE VIEW v AS SELECT * FROM t;
        CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';
        CREATE TYPE mood AS ENUM ('ok');
        CREATE SEQUENCE s;
        CREATE INDEX t_v ON t (v);
        COMMENT ON TABLE t IS 'a comment';""",
    "other schemas": """
        CREATE SCHEMA other;
        CREATE TABLE other.schema_migrations (version text);
        CREATE SCHEMA "Quoted Name";""",
    "public itself changed": """
        GRANT CREATE ON SCHEMA public TO PUBLIC;
        COMMENT ON SCHEMA public IS 'changed';""",
    "public dropped": "DROP SCHEMA public CASCADE;",
    "an extension": "CREATE EXTENSION {extension};",
    "a temporary table of a session left open": "CREATE TEMP TABLE tmp (id int);",
    "an event trigger (its function lives in a schema)": """
        CREATE SCHEMA triggers;
        CREATE FUNCTION triggers.et() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END';
        CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION triggers.et();""",
}

RECREATED = {  # nothing a schema holds: a new database instead
    "default privileges": "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC;",
    "a publication": "CREATE PUBLICATION everything FOR ALL TABLES;",
    "a large object": "SELECT lo_create(0);",
    "a database setting": "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET work_mem = ''8MB''', "
    "current_database()); END $$;",
    "a comment on the database": "DO $$ BEGIN EXECUTE format('COMMENT ON DATABASE %I IS ''x''', "
    "current_database()); END $$;",
    "a privilege on a system function": "REVOKE EXECUTE ON FUNCTION pg_catalog.now() FROM PUBLIC;",
    "a privilege on the database": "DO $$ BEGIN EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', "
    "current_database()); END $$;",
}


@pytest.mark.parametrize("dirt", EMPTIED.values(), ids=EMPTIED.keys())
def test_a_database_left_dirty_is_emptied_to_look_brand_new(pg_server, pool, dirt):
    name = pool.acquire()
    fresh = look(pg_server, name)
    left_open = pg_server.connect(name)  # a session the test forgot: ended, its lock released
    left_open.execute("SELECT pg_advisory_lock(1)")
    with pg_server.connect(name) as connection:
        if "{extension}" in dirt:
            available = connection.execute(
                "SELECT name FROM pg_available_extensions WHERE name = ANY(%s) ORDER BY name",
                (["pg_trgm", "pgcrypto", "vector"],),
            ).fetchall()
            if not available:
                left_open.close()
                pytest.skip("the server has none of pg_trgm, pgcrypto, vector")
            dirt = dirt.format(extension=available[0][0])
        connection.execute(dirt)
    if "TEMP" in dirt:
        left_open.execute(dirt)
    assert pool.acquire() == name  # emptied, not recreated
    with pytest.raises(psycopg.OperationalError):
        left_open.execute("SELECT 1")
    left_open.close()
    assert look(pg_server, name) == fresh
    with pg_server.connect(name) as connection:
        assert connection.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone() == (0,)


@pytest.mark.parametrize("dirt", RECREATED.values(), ids=RECREATED.keys())
def test_what_emptying_cannot_undo_gets_a_new_database(pg_server, pool, dirt):
    name = pool.acquire()
    fresh = look(pg_server, name)
    with pg_server.connect(name) as connection:
        connection.execute(dirt)
    new = pool.acquire()
    assert new != name
    assert look(pg_server, new) == fresh
    with pg_server.connect() as admin:
        assert admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone() == (0,)


def test_a_changed_owner_gets_a_new_database(pg_server, pool, role):
    name = pool.acquire()
    fresh = look(pg_server, name)
    with pg_server.connect() as admin:
        admin.execute(f'ALTER DATABASE "{name}" OWNER TO "{role}"')
    new = pool.acquire()
    assert new != name and look(pg_server, new) == fresh


def test_objects_of_another_role_go_with_the_schema(pg_server, pool, role):
    name = pool.acquire()
    fresh = look(pg_server, name)
    with pg_server.connect(name) as connection:
        connection.execute(f'GRANT CREATE ON SCHEMA public TO "{role}"')
        connection.execute(f'SET ROLE "{role}"')
        connection.execute("CREATE TABLE owned_by_role (id int)")
    assert pool.acquire() == name
    assert look(pg_server, name) == fresh


def test_the_database_fixture_hands_out_an_empty_database(database):
    # Whatever ran before in this worker: nothing of it is visible.
    assert database.tables() == set()
    assert database.query("SELECT count(*) FROM pg_class WHERE oid >= 16384") == [(0,)]
    database.query("CREATE TABLE leftover (id int)")  # the next test of the worker must not see it


# --- call mirrors manage: the same exit code and the same output, in-process -------------------


def _scenario_failed_file(migrations_dir):
    write_files(migrations_dir, {"001_bad.sql": migration("001_bad", "CREATE TABLE t (id int);\nSELECT * FROM nope;")})
    return ("apply_sql_migrations",), {"migrations": migrations_dir}


def _scenario_refused_in_production(migrations_dir):
    seeds = write_files(migrations_dir.parent / "seeds" / "development", {"001_a.sql": "SELECT 1;\n"}).parent
    return ("seed_dev",), {"seeds": seeds, "env": {"NODE_ENV": "Production"}}


def _scenario_system_check_error(migrations_dir):
    write_files(migrations_dir, {"001_Bad.sql": "SELECT 1;\n"})
    return ("check",), {"migrations": migrations_dir}


def _scenario_bad_url(migrations_dir):
    return ("sql_migration_status",), {
        "migrations": migrations_dir,
        "database_url": "postgresql://app:S3cret@127.0.0.1:1/db",
    }


@pytest.mark.parametrize(
    "scenario",
    [_scenario_failed_file, _scenario_refused_in_production, _scenario_system_check_error, _scenario_bad_url],
    ids=lambda f: f.__name__.removeprefix("_scenario_"),
)
def test_call_gives_what_manage_gives(manage, call, migrations_dir, scenario):
    args, options = scenario(migrations_dir)
    process, in_process = manage(*args, **options), call(*args, **options)
    assert process.returncode != 0
    assert (in_process.returncode, in_process.stdout, in_process.stderr) == (
        process.returncode,
        process.stdout,
        process.stderr,
    )
