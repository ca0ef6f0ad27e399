"""One environment policy (dbmigrations.conf): production in any spelling, folder settings, configuration errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dbmigrations import conf
from tests.conftest import ROOT, SHIPPED_MIGRATIONS, SHIPPED_SEEDS, clean_env, migration, write_files

SHIPPED = ["001", "002", "003", "004", "005"]
PRODUCTION_SPELLINGS = [
    ({"NODE_ENV": "Production"}, "NODE_ENV=Production"),
    ({"NODE_ENV": "PRODUCTION"}, "NODE_ENV=PRODUCTION"),
    ({"VERCEL_ENV": "PRODUCTION"}, "VERCEL_ENV=PRODUCTION"),
    ({"NODE_ENV": " production "}, "NODE_ENV=production"),
]


# --- the production rule, in-process ------------------------------------------------------------


@pytest.mark.parametrize(
    "env, cause",
    PRODUCTION_SPELLINGS
    + [
        ({"NODE_ENV": "development", "VERCEL_ENV": "production"}, "VERCEL_ENV=production"),
        ({"NODE_ENV": "production", "VERCEL_ENV": "Production"}, "NODE_ENV=production"),
    ],
)
def test_production_in_any_case_names_the_variable(env, cause):
    assert conf.is_production(env)
    assert conf.production_cause(env) == cause


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"NODE_ENV": ""},
        {"NODE_ENV": "development"},
        {"NODE_ENV": "prod"},
        {"NODE_ENV": "production-eu"},
        {"VERCEL_ENV": "preview"},
        {"VERCEL": "1"},
        {"VERCEL_ENV": "   "},
    ],
)
def test_not_production(env):
    assert not conf.is_production(env)
    assert conf.production_cause(env) == ""


def test_settings_are_read_when_called(monkeypatch):
    monkeypatch.delenv("NODE_ENV", raising=False)
    monkeypatch.delenv("VERCEL_ENV", raising=False)
    assert not conf.is_production()
    monkeypatch.setenv("VERCEL_ENV", "Production")
    assert conf.production_cause() == "VERCEL_ENV=Production"
    monkeypatch.setenv("VERCEL", " 1 ")
    assert conf.is_vercel_build()
    monkeypatch.setenv("VERCEL", "")
    assert not conf.is_vercel_build()
    monkeypatch.setenv("SQL_MIGRATIONS_ON_PREVIEW", "1")
    assert conf.migrations_on_preview()
    monkeypatch.setenv("SQL_MIGRATIONS_ON_PREVIEW", "")
    assert not conf.migrations_on_preview()


# --- folders: empty is unset, relative is relative to BASE_DIR ----------------------------------


@pytest.fixture
def no_folder_settings(settings, monkeypatch):
    """Neither Django settings nor environment variables for the folders."""
    for name in ("SQL_MIGRATIONS_DIR", "SQL_SEEDS_DIR", "SQL_EMBEDDED_PGDATA"):
        if hasattr(settings, name):
            delattr(settings, name)
        monkeypatch.delenv(name, raising=False)
    return settings


def test_folder_defaults_empty_values_and_relative_paths(no_folder_settings, monkeypatch, tmp_path):
    settings = no_folder_settings
    settings.BASE_DIR = tmp_path
    assert conf.migrations_dir() == tmp_path / "migrations"
    assert conf.seeds_dir() == tmp_path / "seeds"
    assert conf.embedded_data_dir() == tmp_path / ".pgdata"
    monkeypatch.setenv("SQL_MIGRATIONS_DIR", "")
    assert conf.migrations_dir() == tmp_path / "migrations"
    monkeypatch.setenv("SQL_MIGRATIONS_DIR", "db/../sql")
    assert conf.migrations_dir() == tmp_path / "sql"
    assert conf.migrations_dir().is_absolute()
    monkeypatch.setenv("SQL_SEEDS_DIR", "  ")
    assert conf.seeds_dir() == tmp_path / "seeds"
    # A Django setting wins over the environment variable; an empty setting is unset.
    settings.SQL_MIGRATIONS_DIR = "from-settings"
    assert conf.migrations_dir() == tmp_path / "from-settings"
    settings.SQL_MIGRATIONS_DIR = ""
    assert conf.migrations_dir() == tmp_path / "sql"
    settings.SQL_EMBEDDED_PGDATA = Path("/srv/pgdata")
    assert conf.embedded_data_dir() == Path("/srv/pgdata")


def test_empty_migrations_dir_variable_means_the_default_folder(call, database):
    """SQL_MIGRATIONS_DIR="" used to mean the working directory: a deploy applied nothing and passed."""
    result = call("apply_sql_migrations", env={"SQL_MIGRATIONS_DIR": ""})
    assert result.returncode == 0, result.output
    assert "Applied 5" in result.stdout
    assert database.versions() == SHIPPED


def run_manage(*args, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_relative_migrations_dir_is_relative_to_the_project_not_the_working_directory(database, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write_files(elsewhere / "migrations", {"001_decoy.sql": migration("001_decoy", "CREATE TABLE decoy (x int);")})
    result = run_manage(
        "apply_sql_migrations", cwd=elsewhere, DATABASE_URL=database.url, SQL_MIGRATIONS_DIR="migrations"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert database.versions() == SHIPPED
    assert "decoy" not in database.tables()


def test_a_missing_folder_is_named_by_its_absolute_path(call, tmp_path):
    result = call("sql_migration_status", env={"SQL_MIGRATIONS_DIR": "no_such_folder"})
    assert result.returncode == 2, result.output
    assert str(ROOT / "no_such_folder") in result.stderr


# --- production refuses the same way everywhere ------------------------------------------------


def populate(call, database):
    assert call("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS).returncode == 0
    database.query("INSERT INTO admin_users (email, password_hash) VALUES ('kept@example.com', 'x')")
    return sorted(database.tables()), database.versions(), database.query("SELECT email FROM admin_users")


def state(database):
    return sorted(database.tables()), database.versions(), database.query("SELECT email FROM admin_users")


REFUSING_COMMANDS = {
    "reset_db": ["reset_db", "--no-input"],
    "rollback": ["rollback_sql_migrations"],
    "seed_dev": ["seed_dev"],
}


@pytest.mark.parametrize("env, cause", PRODUCTION_SPELLINGS[:3])
def test_every_spelling_of_production_refuses_the_same_way(call, database, env, cause):
    before = populate(call, database)
    for subject, args in REFUSING_COMMANDS.items():
        result = call(*args, migrations=SHIPPED_MIGRATIONS, seeds=SHIPPED_SEEDS, env=env)
        assert result.returncode == 2, (args, result.output)
        message = result.stderr.strip().splitlines()[-1]
        assert message.startswith(f"CommandError: {subject} refused in production ({cause}): "), message
        assert message.endswith("Nothing was changed."), message
        assert state(database) == before, args


@pytest.fixture
def embedded_dir(tmp_path):
    """The embedded server's folder the ``manage`` fixture points at; a server started there is stopped."""
    directory = tmp_path / "embedded-pgdata"
    yield directory
    if (directory / "postmaster.pid").exists():
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "embedded_db", "stop"],
            cwd=ROOT,
            timeout=60,
            env=clean_env(SQL_EMBEDDED_PGDATA=str(directory)),
            capture_output=True,
        )


@pytest.mark.parametrize("env, cause", PRODUCTION_SPELLINGS[:3])
def test_every_spelling_of_production_refuses_the_embedded_default(call, embedded_dir, env, cause):
    result = call("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS, database_url=None, env=env)
    assert result.returncode == 2, result.output
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"CommandError: embedded development database refused in production ({cause}): ")
    assert "DATABASE_URL" in message and message.endswith("Nothing was changed.")
    assert not embedded_dir.exists()


def test_rollback_in_production_runs_with_allow_production(call, database):
    populate(call, database)
    result = call(
        "rollback_sql_migrations", "--allow-production", migrations=SHIPPED_MIGRATIONS, env={"NODE_ENV": "PRODUCTION"}
    )
    assert result.returncode == 0, result.output
    assert database.versions() == SHIPPED[:4]


# --- configuration errors reach Django's own commands as ImproperlyConfigured ------------------

MYSQL = "mysql://app:hunter2@db.example.com/app"
MYSQL_MESSAGE = "DATABASE_URL is not a postgres:// or postgresql:// URL (scheme 'mysql')"


def assert_clean(result, message):
    assert message in result.stderr, result.output
    assert "hunter2" not in result.output
    for noise in ("psycopg", "libpq", "OperationalError", "socket", "During handling"):
        assert noise not in result.output, result.output


@pytest.mark.parametrize("command", [["check"], ["migrate"]])
def test_djangos_commands_report_a_configuration_error_in_one_line(manage, command):
    result = manage(*command, database_url=MYSQL)
    assert result.returncode != 0
    assert_clean(result, MYSQL_MESSAGE)
    assert "Traceback" not in result.output
    assert f"(dbmigrations.E011) {MYSQL_MESSAGE}" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["migrate", "--skip-checks"],
        ["shell", "-c", "from django.db import connection; connection.ensure_connection()"],
        ["dbshell"],
    ],
)
def test_a_connection_attempt_raises_improperly_configured(manage, command):
    result = manage(*command, database_url=MYSQL)
    assert result.returncode != 0
    assert_clean(result, MYSQL_MESSAGE)
    assert result.stderr.strip().splitlines()[-1] == f"django.core.exceptions.ImproperlyConfigured: {MYSQL_MESSAGE}"


def test_the_tools_commands_print_the_same_message(manage):
    result = manage("sql_migration_status", database_url=MYSQL)
    assert result.returncode == 2
    assert_clean(result, MYSQL_MESSAGE)
    assert result.stderr.strip() == f"CommandError: {MYSQL_MESSAGE}"


def test_no_database_in_production_is_improperly_configured_for_django(manage, embedded_dir):
    result = manage("migrate", database_url=None, env={"NODE_ENV": "Production"})
    assert result.returncode != 0
    assert "embedded development database refused in production (NODE_ENV=Production)" in result.stderr
    assert "Traceback" not in result.output
    shell = manage("dbshell", database_url=None, env={"NODE_ENV": "Production"})
    assert shell.returncode != 0
    assert (
        shell.stderr.strip()
        .splitlines()[-1]
        .startswith("django.core.exceptions.ImproperlyConfigured: embedded development database refused in production")
    )
    assert not embedded_dir.exists()
