"""The deploy mode (spec: migrate-vercel): --vercel or VERCEL=1."""

from tests.conftest import SHIPPED_MIGRATIONS, migration, write_files


def test_vercel_build_applies_with_plain_output(manage, database):
    result = manage(
        "apply_sql_migrations",
        migrations=SHIPPED_MIGRATIONS,
        database_url=None,
        env={
            "VERCEL": "1",
            "VERCEL_ENV": "production",
            "POSTGRES_URL_NON_POOLING": database.url,
            "POSTGRES_URL": "postgresql://wrong:pw@127.0.0.1:1/pooled",
        },
    )
    assert result.returncode == 0, result.output
    assert "(from POSTGRES_URL_NON_POOLING)" in result.stderr
    assert "\x1b[" not in result.output
    assert database.versions() == ["001", "002", "003", "004", "005"]


def test_deploy_mode_refuses_the_embedded_database(call, tmp_path):
    result = call("apply_sql_migrations", "--vercel", migrations=SHIPPED_MIGRATIONS, database_url=None)
    assert result.returncode == 2
    assert "deploy mode needs an explicitly configured database" in result.stderr
    assert not (tmp_path / "embedded-pgdata").exists()


def test_preview_skips_unless_enabled(call, database):
    skipped = call("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS, env={"VERCEL": "1", "VERCEL_ENV": "preview"})
    assert skipped.returncode == 0
    assert "SQL_MIGRATIONS_ON_PREVIEW=1" in skipped.stdout
    assert database.tables() == set()
    enabled = call(
        "apply_sql_migrations",
        migrations=SHIPPED_MIGRATIONS,
        env={"VERCEL": "1", "VERCEL_ENV": "preview", "SQL_MIGRATIONS_ON_PREVIEW": "1"},
    )
    assert enabled.returncode == 0, enabled.output
    assert database.versions() == ["001", "002", "003", "004", "005"]


def test_pooled_only_url_warns_and_still_applies(call, database):
    pooled = database.url + ("&" if "?" in database.url else "?") + "pgbouncer=true&connection_limit=1"
    result = call(
        "apply_sql_migrations",
        "--vercel",
        migrations=SHIPPED_MIGRATIONS,
        database_url=None,
        env={"POSTGRES_URL": pooled},
    )
    assert result.returncode == 0, result.output
    assert "WARNING: POSTGRES_URL points at a connection pooler" in result.stderr
    assert "POSTGRES_URL_NON_POOLING" in result.stderr
    assert len(database.versions()) == 5


def test_concurrently_through_a_pooler_is_refused(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration("001_t", "CREATE TABLE t (x int);"),
            "002_i.sql": migration("002_i", "CREATE INDEX CONCURRENTLY i ON t (x);", wrap=False),
        },
    )
    pooled = database.url + ("&" if "?" in database.url else "?") + "pgbouncer=true"
    result = call(
        "apply_sql_migrations",
        "--vercel",
        migrations=migrations_dir,
        database_url=None,
        env={"POSTGRES_PRISMA_URL": pooled},
    )
    assert result.returncode == 2
    assert "002_i must run outside a transaction" in result.stderr
    assert database.versions() == []


def test_failed_deploy_exits_non_zero(manage, database, migrations_dir):
    write_files(migrations_dir, {"001_bad.sql": migration("001_bad", "CREATE TABLE t (x int REFERENCES nope(id));")})
    result = manage("apply_sql_migrations", "--vercel", migrations=migrations_dir)
    assert result.returncode == 1
    assert "001_bad.sql:8:" in result.stderr and "42P01" in result.stderr
