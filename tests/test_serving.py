"""The admin served for real: static files without DEBUG, production settings, the secret key."""

import secrets
import subprocess
import sys

from tests.conftest import ROOT, clean_env

PRODUCTION = {"NODE_ENV": "production", "DJANGO_ALLOWED_HOSTS": "bestrong.example.com"}


def run(*args, env, timeout=120):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean_env(**env), capture_output=True, text=True, timeout=timeout
    )


def test_the_admin_stylesheet_is_served_without_debug(client, settings):
    settings.DEBUG = False
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert b"--header-bg" in b"".join(response.streaming_content)


def test_check_deploy_is_clean_with_production_settings(database):
    proc = run(
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={**PRODUCTION, "DATABASE_URL": database.url, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues" in proc.stdout


def test_the_web_server_refuses_production_without_a_secret_key(database):
    proc = run(
        "-c",
        "import bestrong.wsgi",
        env={**PRODUCTION, "DATABASE_URL": database.url, "DJANGO_SETTINGS_MODULE": "bestrong.settings"},
    )
    assert proc.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in proc.stderr


def test_migrations_still_deploy_without_a_secret_key(database, migrations_dir):
    proc = run(
        "manage.py",
        "apply_sql_migrations",
        "--vercel",
        env={**PRODUCTION, "VERCEL": "1", "DATABASE_URL": database.url, "SQL_MIGRATIONS_DIR": str(migrations_dir)},
    )
    assert proc.returncode == 0, proc.stderr
