"""reset_db: drop and recreate public as in a new database; the guards that come first."""

import uuid

import pytest
from psycopg import sql

from dbmigrations import snapshot
from dbmigrations.database import embedded_target, mask_url, parse_database_url
from dbmigrations.reset import is_local
from dbmigrations.session import Session
from tests.conftest import SHIPPED_MIGRATIONS, SHIPPED_SEEDS, migration, write_files

SHIPPED = ["001", "002", "003", "004", "005"]
PUBLIC = (
    "SELECT nspowner::regrole::text, nspacl::text, obj_description(oid, 'pg_namespace') "
    "FROM pg_namespace WHERE nspname = 'public'"
)


def schema(database):
    with database.connect() as connection:
        return snapshot.take(Session(connection))


def populate(call, database):
    result = call("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS)
    assert result.returncode == 0, result.output
    database.query("INSERT INTO admin_users (email, password_hash) VALUES ('a@example.com', 'x')")


def test_reset_populated_database_restores_a_new_databases_schema_then_reapply(call, database):
    fresh = database.query(PUBLIC)
    populate(call, database)
    full = schema(database)
    database.query("CREATE VIEW admin_emails AS SELECT email FROM admin_users")  # not from a migration
    database.query("GRANT CREATE ON SCHEMA public TO PUBLIC")  # a privilege a new database does not have

    result = call("reset_db", "--no-input")
    assert result.returncode == 0, result.output
    assert "dropped 7 table(s) and the record of 5 applied migration(s)" in result.stdout
    assert "`python manage.py migrate` to recreate them" in result.stdout
    assert database.tables() == set()
    assert database.query(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
    ) == [(0,)]
    assert database.query(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
    ) == [(0,)]
    assert database.query(PUBLIC) == fresh

    again = call("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS)
    assert again.returncode == 0, again.output
    assert "Applied 5, skipped 0 already applied" in again.stdout
    assert database.versions() == SHIPPED
    assert snapshot.differences(full, schema(database)) == []  # the view is gone, all else as before


def test_reset_migrate_seed_after_typing_yes(manage, call, database):
    populate(call, database)
    result = manage("reset_db", "--seed", migrations=SHIPPED_MIGRATIONS, seeds=SHIPPED_SEEDS, input="yes\n")
    assert result.returncode == 0, result.output
    assert f"drops every table and all data in the public schema of {mask_url(database.url)}" in result.stdout
    assert "Applied 5 migration(s)." in result.stdout
    assert "Seeded 2 file(s)" in result.stdout
    assert "Django's own tables" in result.stdout  # the prompt says what goes, the summary what came back
    assert {"auth_user", "django_session", "django_admin_log"} <= database.tables()  # the admin still works
    assert database.versions() == SHIPPED
    emails = {r[0] for r in database.query("SELECT email FROM admin_users")}
    assert "a@example.com" not in emails and emails  # the old row is gone, the seeds' rows are there


@pytest.mark.parametrize("answer", ["no\n", "\n", "y\n"])
def test_anything_but_yes_cancels(manage, call, database, answer):
    populate(call, database)
    result = manage("reset_db", input=answer)
    assert result.returncode == 0, result.output
    assert "Reset cancelled." in result.stdout
    assert database.versions() == SHIPPED
    assert database.query("SELECT count(*) FROM admin_users") == [(1,)]


def test_closed_stdin_refuses(manage, call, database):
    populate(call, database)
    result = manage("reset_db", input="")
    assert result.returncode == 2
    assert "no answer to the confirmation" in result.stderr and "--no-input" in result.stderr
    assert database.versions() == SHIPPED


@pytest.mark.parametrize(
    "env",
    [
        {"DATABASE_URL": "postgresql://u:pw@db.example.com/x"},
        {"DATABASE_URL": "postgres://u:pw@10.1.2.3:5432/x?sslmode=require"},
        {
            "DATABASE_URL": None,
            "POSTGRES_HOST": "db.example.com",
            "POSTGRES_USER": "u",
            "POSTGRES_PASSWORD": "pw",
            "POSTGRES_DATABASE": "x",
        },
    ],
)
def test_remote_host_is_refused_before_connecting_and_the_password_never_shown(call, env):
    # db.example.com does not answer: a connection attempt would fail differently (or hang).
    result = call("reset_db", "--no-input", database_url=None, env=env)
    assert result.returncode == 2, result.output
    assert "is not on this machine" in result.stderr and "--allow-remote" in result.stderr
    assert "u:***@" in result.stderr
    assert "pw" not in result.output
    assert "Database:" not in result.stderr  # never got as far as connecting


def test_production_is_refused_even_local_and_with_allow_remote(call, database):
    populate(call, database)
    for env in ({"NODE_ENV": "production"}, {"VERCEL_ENV": "production"}):
        result = call("reset_db", "--no-input", "--allow-remote", env=env)
        assert result.returncode == 2
        assert "never runs in production" in result.stderr
    assert database.versions() == SHIPPED


@pytest.mark.parametrize(
    "url, local",
    [
        ("postgresql://u:pw@localhost/x", True),
        ("postgresql://u:pw@127.0.0.1:5433/x", True),
        ("postgresql://u:pw@[::1]/x", True),
        ("postgresql://u@/x", True),
        ("postgresql://u@/x?host=/var/run/postgresql", True),
        ("postgresql://u:pw@db.example.com/x", False),
        ("postgresql://u:pw@ep-cool-1234.eu-central-1.aws.neon.tech/neondb?sslmode=require", False),
        ("postgresql://u:pw@localhost,db.example.com/x", False),
        ("postgresql://u:pw@localhost/x?hostaddr=10.0.0.7", False),
    ],
)
def test_which_hosts_count_as_this_machine(url, local):
    assert is_local(parse_database_url(url)) is local


def test_embedded_server_counts_as_local():
    assert is_local(embedded_target())


def test_invalid_migration_file_with_migrate_refuses_before_dropping(call, database, migrations_dir):
    populate(call, database)
    shipped = {p.name: p.read_text() for p in SHIPPED_MIGRATIONS.iterdir()}
    write_files(migrations_dir, {**shipped, "006_broken.sql": migration("006_broken", "CREATE TABLE (;")})
    result = call("reset_db", "--no-input", "--migrate", migrations=migrations_dir)
    assert result.returncode == 2
    assert "006_broken.sql:8:14: syntax error" in result.stderr
    assert database.versions() == SHIPPED


def test_seed_in_a_non_development_environment_refuses_before_dropping(call, database):
    populate(call, database)
    result = call(
        "reset_db",
        "--no-input",
        "--seed",
        migrations=SHIPPED_MIGRATIONS,
        seeds=SHIPPED_SEEDS,
        env={"NODE_ENV": "staging"},
    )
    assert result.returncode == 2
    assert "NODE_ENV=staging" in result.stderr
    assert database.versions() == SHIPPED


@pytest.fixture
def role(pg_server, database):
    """A login role of the test's own (no superuser), dropped afterwards."""
    name = f"r_{uuid.uuid4().hex[:10]}"
    with pg_server.connect() as admin:
        # A password too, for servers that ask for one over TCP (TEST_DATABASE_URL).
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(name)))
    yield name
    with pg_server.connect() as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER").format(sql.Identifier(database.name)))
    database.query(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    with pg_server.connect() as admin:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def as_role(database, role):
    return database.server.url(database.name, user=role, password=role)


def test_database_owner_without_superuser_can_reset(call, pg_server, database, role):
    """The hosted case (Neon, Vercel Postgres): the login owns the database but is no superuser."""
    fresh = database.query(PUBLIC)
    with pg_server.connect() as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database.name), sql.Identifier(role))
        )
    url = as_role(database, role)
    assert call("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS, database_url=url).returncode == 0
    result = call("reset_db", "--no-input", "--migrate", migrations=SHIPPED_MIGRATIONS, database_url=url)
    assert result.returncode == 0, result.output
    assert database.versions() == SHIPPED
    assert database.query(PUBLIC) == fresh


def test_a_login_that_does_not_own_the_schema_fails_and_nothing_changes(call, database, role):
    populate(call, database)
    result = call("reset_db", "--no-input", database_url=as_role(database, role))
    assert result.returncode == 1
    assert "reset_db failed, nothing was changed: ERROR 42501" in result.stderr
    assert "owner of the database" in result.stderr
    assert database.versions() == SHIPPED
