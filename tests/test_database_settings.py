"""The settings module: environment → database, masking, pooled URLs, production refusal."""

import pytest

from dbmigrations.database import (
    TCP_DEFAULTS,
    URL_VARIABLES,
    database_settings,
    mask_url,
    parse_database_url,
    resolve_database,
    scrub,
)
from dbmigrations.exceptions import ConfigurationError

URL = "postgres://alice:s3cr%40t@db.example.com:5433/app"


@pytest.mark.parametrize("index", range(len(URL_VARIABLES)))
def test_precedence_first_set_url_variable_wins(index):
    env = {name: f"postgres://u{i}@h{i}/d{i}" for i, name in enumerate(URL_VARIABLES) if i >= index}
    env.update(POSTGRES_HOST="parts-host", POSTGRES_DATABASE="p", POSTGRES_USER="pu")
    target = resolve_database(env)
    assert target.source == URL_VARIABLES[index]
    assert target.settings["HOST"] == f"h{index}"
    assert target.settings["NAME"] == f"d{index}"


def test_parts_variables_are_last():
    env = {
        "POSTGRES_HOST": "db.internal",
        "POSTGRES_PORT": "6000",
        "POSTGRES_DATABASE": "bestrong",
        "POSTGRES_USER": "app",
        "POSTGRES_PASSWORD": "pw",
    }
    target = resolve_database(env)
    assert target.source == "POSTGRES_HOST"
    s = target.settings
    assert (s["HOST"], s["PORT"], s["NAME"], s["USER"], s["PASSWORD"]) == (
        "db.internal",
        "6000",
        "bestrong",
        "app",
        "pw",
    )
    assert target.masked_url == "postgresql://app:***@db.internal:6000/bestrong"


def test_parts_without_database_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="POSTGRES_DATABASE"):
        resolve_database({"POSTGRES_HOST": "h", "POSTGRES_USER": "u"})


def test_empty_variables_are_skipped():
    target = resolve_database(
        {"DATABASE_URL_UNPOOLED": "", "POSTGRES_URL_NON_POOLING": "  ", "DATABASE_URL": "postgresql://u@h/d"}
    )
    assert target.source == "DATABASE_URL"


def test_nothing_configured_is_the_embedded_default():
    target = resolve_database({"DATABASE_URL": ""})
    assert target.is_embedded
    assert target.settings["ENGINE"] == "dbmigrations.backends.embedded"


def test_percent_encoded_password_and_both_schemes():
    for scheme in ("postgres", "postgresql"):
        target = parse_database_url(URL.replace("postgres", scheme, 1))
        assert target.settings["PASSWORD"] == "s3cr@t"
        assert target.settings["USER"] == "alice"
        assert target.settings["PORT"] == "5433"
        assert target.masked_url == "postgresql://alice:***@db.example.com:5433/app"


def test_unix_socket_hosts():
    encoded = parse_database_url("postgresql://bob@%2Fvar%2Frun%2Fpostgresql/app")
    assert encoded.settings["HOST"] == "/var/run/postgresql"
    query = parse_database_url("postgresql://bob@/app?host=/tmp/sock")
    assert query.settings["HOST"] == "/tmp/sock"
    assert "host=/tmp/sock" in query.masked_url


def test_ipv6_host():
    target = parse_database_url("postgresql://u:p@[::1]:5432/d")
    assert target.settings["HOST"] == "::1"
    assert target.masked_url == "postgresql://u:***@[::1]:5432/d"


def test_pooled_parameters_dropped_libpq_parameters_kept():
    url = (
        "postgres://default:pw@ep-cool-1234-pooler.us-east-1.aws.neon.tech/verceldb?sslmode=require"
        "&pgbouncer=true&connect_timeout=15&connection_limit=1&pool_timeout=0&schema=public"
        "&channel_binding=require&application_name=bestrong&options=-c%20statement_timeout%3D5000"
    )
    target = parse_database_url(url, source="POSTGRES_PRISMA_URL")
    assert target.settings["OPTIONS"] == {
        "sslmode": "require",
        "connect_timeout": "15",
        "channel_binding": "require",
        "application_name": "bestrong",
        "options": "-c statement_timeout=5000",
        **TCP_DEFAULTS,  # keepalives over TCP, added by default
    }
    assert set(target.dropped_params) == {"pgbouncer", "connection_limit", "pool_timeout", "schema"}
    assert target.pooled


def test_supabase_pooler_port_is_pooled_direct_is_not():
    assert parse_database_url("postgresql://u:p@aws-0.pooler.supabase.com:6543/postgres").pooled
    assert not parse_database_url("postgresql://u:p@db.example.com:5432/postgres").pooled


def test_bad_scheme_and_missing_name_are_clear_errors():
    with pytest.raises(ConfigurationError, match="postgres://"):
        parse_database_url("mysql://u:p@h/d")
    with pytest.raises(ConfigurationError) as error:
        parse_database_url("nocreatedb_user:s3cret-pw@host/db")
    assert "s3cret" not in str(error.value)
    with pytest.raises(ConfigurationError, match="names no database"):
        parse_database_url("postgresql://u:p@h")


def test_repr_of_a_target_never_shows_the_password():
    target = parse_database_url("postgresql://app:Sup3rSecret@db.example.com/app")
    assert "Sup3rSecret" not in repr(target) and "Sup3rSecret" not in target.describe()


def test_configuration_error_is_kept_for_the_commands_not_raised():
    settings = database_settings({"DATABASE_URL": "mysql://u:hunter2@h/d"})
    assert "CONFIG_ERROR" in settings and "hunter2" not in settings["CONFIG_ERROR"]


def test_masking_never_shows_the_password():
    assert (
        mask_url("postgresql://u:topsecret@h/d?password=alsosecret&sslmode=require")
        == "postgresql://u:***@h/d?sslmode=require"
    )
    assert "topsecret" not in mask_url("garbage://u:topsecret@h/d")
    assert scrub("failed for s3cr@t and s3cr%40t", "s3cr@t") == "failed for *** and ***"


def test_every_pooled_url_form_connects(pg_server, database):
    """Vercel/Neon-style parameters must not stop libpq from connecting (real server)."""
    import psycopg

    base = database.url
    sep = "&" if "?" in base else "?"
    url = base + sep + "pgbouncer=true&connection_limit=1&pool_timeout=0&schema=public&connect_timeout=5"
    target = parse_database_url(url, source="POSTGRES_PRISMA_URL")
    s = target.settings
    params = {"dbname": s["NAME"], "user": s["USER"], "host": s["HOST"], **s["OPTIONS"]}
    if s["PORT"]:
        params["port"] = s["PORT"]
    if s["PASSWORD"]:
        params["password"] = s["PASSWORD"]
    with psycopg.connect(**params) as connection:
        assert connection.execute("SELECT current_database()").fetchone()[0] == database.name


def test_dotenv_file_is_read_and_real_environment_wins(manage, tmp_path, database):
    env_file = tmp_path / ".env"
    env_file.write_text(f"DATABASE_URL_UNPOOLED={database.url}\nSQL_MIGRATIONS_DIR={tmp_path / 'none'}\n")
    # .env supplies the database; the real environment's SQL_MIGRATIONS_DIR wins over .env's.
    (tmp_path / "real").mkdir()
    result = manage(
        "sql_migration_status",
        database_url=None,
        env={"BESTRONG_ENV_FILE": str(env_file), "SQL_MIGRATIONS_DIR": str(tmp_path / "real")},
    )
    assert result.returncode == 0, result.output
    assert "(from DATABASE_URL_UNPOOLED)" in result.stderr
    assert "No migrations found." in result.stdout


def test_real_environment_key_beats_dotenv_key_by_precedence(manage, tmp_path, database):
    """.env has DATABASE_URL_UNPOOLED, the environment DATABASE_URL → precedence picks UNPOOLED."""
    env_file = tmp_path / ".env"
    env_file.write_text(f"DATABASE_URL_UNPOOLED={database.url}\n")
    result = manage(
        "sql_migration_status",
        env={"BESTRONG_ENV_FILE": str(env_file)},
        database_url="postgresql://nobody:pw@127.0.0.1:1/none",
    )
    assert result.returncode == 0, result.output
    assert "(from DATABASE_URL_UNPOOLED)" in result.stderr


def test_connection_failure_names_source_and_hides_password(call, tmp_path):
    result = call(
        "apply_sql_migrations", database_url="postgresql://app:Sup3rSecret@127.0.0.1:1/bestrong", migrations=tmp_path
    )
    assert result.returncode == 2
    assert "Sup3rSecret" not in result.output
    assert "postgresql://app:***@127.0.0.1:1/bestrong" in result.output
    assert "cannot connect" in result.stderr


def test_production_without_database_refuses(call, tmp_path):
    for env in ({"NODE_ENV": "production"}, {"VERCEL_ENV": "production"}):
        result = call("apply_sql_migrations", database_url=None, env=env, migrations=tmp_path)
        assert result.returncode == 2, result.output
        assert "embedded development database refused in production" in result.stderr
        assert not (tmp_path / "embedded-pgdata").exists()
    result = call("apply_sql_migrations", database_url=None, env={"VERCEL": "1"}, migrations=tmp_path)
    assert result.returncode == 2
    assert "deploy mode needs an explicitly configured database" in result.stderr
