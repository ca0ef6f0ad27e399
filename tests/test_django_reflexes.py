"""What a Django user reaches for: --version, --help, dbshell, the embedded banner, the admin's links."""

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHIPPED_MIGRATIONS, clean_env


def manage(*args, env=None, timeout=120):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc


def test_version_is_the_tools_not_djangos():
    proc = manage("apply_sql_migrations", "--version")
    assert proc.returncode == 0
    assert proc.stdout.strip().startswith("bestrong-dbmigrations 0.")


def help_in_process(command: str) -> tuple[int, str]:
    """``manage.py COMMAND --help`` without the process: argparse prints the help and exits."""
    from django.core.management import call_command

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        call_command(command, "--help")
    return exited.value.code, out.getvalue()


@pytest.mark.parametrize(
    "command",
    [
        "apply_sql_migrations",
        "sql_migration_status",
        "rollback_sql_migrations",
        "seed_dev",
        "reset_db",
        "lint_sql_migrations",
        "verify_sql_migrations",
    ],
)
def test_help_shows_examples_exit_codes_and_environment(command):
    if command == "apply_sql_migrations":  # once through a real process and argv
        proc = manage(command, "--help")
        returncode, stdout = proc.returncode, proc.stdout
        assert returncode == 0, proc.stderr
    else:
        returncode, stdout = help_in_process(command)
    assert returncode == 0
    assert f"examples:\n  python manage.py {command}" in stdout
    assert "exit codes:\n  0  done" in stdout
    assert "SQL_MIGRATIONS_DIR" in stdout and "DATABASE_URL_UNPOOLED" in stdout


@pytest.fixture(scope="module")
def embedded_pgdata():
    # Outside pytest's tmp dir (see conftest.pg_server for why).
    pgdata = Path(tempfile.mkdtemp(prefix="bestrong-embedded-")) / "pgdata"
    yield pgdata
    manage("embedded_db", "stop", env={"SQL_EMBEDDED_PGDATA": str(pgdata)})
    shutil.rmtree(pgdata.parent, ignore_errors=True)


@pytest.mark.skipif(shutil.which("psql") is None, reason="needs psql (Debian's postgresql-client)")
def test_dbshell_and_the_printed_url_reach_the_embedded_database(embedded_pgdata):
    env = {"SQL_EMBEDDED_PGDATA": str(embedded_pgdata), "SQL_MIGRATIONS_DIR": str(SHIPPED_MIGRATIONS)}
    applied = manage("apply_sql_migrations", env=env)
    assert applied.returncode == 0, applied.stderr

    banner = applied.stderr.splitlines()[0]
    url = banner.removeprefix("Database: embedded PostgreSQL ").strip()
    assert url.startswith("postgresql://postgres@/bestrong?host=/"), banner
    psql = subprocess.run(
        ["psql", url, "-Atc", "SELECT count(*) FROM schema_migrations"], capture_output=True, text=True, timeout=60
    )
    assert psql.returncode == 0, psql.stderr
    assert psql.stdout.strip() == "5"

    shell = manage(
        "dbshell", "--", "-Atc", "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations", env=env
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.strip() == "001,002,003,004,005"


def test_the_embedded_banner_is_not_styled_as_an_error(embedded_pgdata):
    env = {"SQL_EMBEDDED_PGDATA": str(embedded_pgdata), "SQL_MIGRATIONS_DIR": str(SHIPPED_MIGRATIONS)}
    proc = manage("sql_migration_status", "--force-color", env=env)
    assert proc.returncode == 0, proc.stderr
    red = "\x1b[31"  # Django's ERROR style: bold red (\x1b[31;1m)
    assert "embedded development server" in proc.stderr
    assert red not in proc.stderr, repr(proc.stderr)


def test_the_admin_has_no_view_site_link_to_a_missing_page():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bestrong.settings")
    from django.contrib import admin

    import bestrong.urls  # noqa: F401  (configures the admin site)

    assert admin.site.site_url is None


def test_create_db_creates_a_missing_database_once_and_never_in_production(pg_server):
    import uuid

    name = f"created_{uuid.uuid4().hex[:10]}"
    url = pg_server.url(name)
    try:
        first = manage("create_db", env={"DATABASE_URL": url})
        assert first.returncode == 0, first.stderr
        assert f"Created database {name}." in first.stdout
        again = manage("create_db", env={"DATABASE_URL": url})
        assert again.returncode == 0 and "already exists" in again.stdout
        applied = manage(
            "apply_sql_migrations", env={"DATABASE_URL": url, "SQL_MIGRATIONS_DIR": str(SHIPPED_MIGRATIONS)}
        )
        assert applied.returncode == 0, applied.stderr
    finally:
        with pg_server.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    refused = manage("create_db", env={"DATABASE_URL": pg_server.url(name), "NODE_ENV": "production"})
    assert refused.returncode == 2
    assert "refused in production (NODE_ENV=production)" in refused.stderr
    with pg_server.connect() as admin:
        assert admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone() == (0,)
