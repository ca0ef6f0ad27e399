"""The reusable app: the wheel built from the repository, installed into a fresh virtualenv,
runs the commands and the public API in a Django project that is not BeStrong."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHIPPED_MIGRATIONS, clean_env

PACKAGE = ROOT / "dbmigrations"

SETTINGS = """
import os
from pathlib import Path

from dbmigrations.database import database_settings

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "host-project"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "dbmigrations"]
DATABASES = {"default": database_settings(os.environ)}
USE_TZ = True
"""

MANAGE = """
import os
import sys

from django.core.management import execute_from_command_line

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostproject.settings")
execute_from_command_line(sys.argv)
"""

API_SCRIPT = """
import django

django.setup()
from dbmigrations import api

print("API", [(e.version, e.state.value) for e in api.migration_status()])
"""


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel`` of a copy of the repository's package files (the source tree stays untouched)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "dbmigrations", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "dist"), str(source)])
    (built,) = (base / "dist").glob("bestrong_dbmigrations-*.whl")
    return built


def test_wheel_holds_the_app_its_backends_templates_and_entry_point(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "dbmigrations/apps.py",
        "dbmigrations/api.py",
        "dbmigrations/pytest_plugin.py",
        "dbmigrations/backends/embedded/base.py",
        "dbmigrations/management/commands/apply_sql_migrations.py",
    ):
        assert required in names
    for path in PACKAGE.rglob("*"):  # every file of the app (subpackages, templates, static) is in the wheel
        if path.is_file() and path.suffix != ".pyc" and "__pycache__" not in path.parts:
            assert path.relative_to(ROOT).as_posix() in names, f"{path.relative_to(ROOT)} is missing from the wheel"
    if (PACKAGE / "templates").is_dir():
        assert any(n.startswith("dbmigrations/templates/") for n in names)
    assert not any(n.startswith(("bestrong/", "tests/", "migrations/", "seeds/")) for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pytest11]" in text and "dbmigrations = dbmigrations.pytest_plugin" in text


def test_installed_wheel_migrates_another_django_project(wheel, database, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = str(env_dir / "bin" / "python")
    # The test's own pip installs into the new environment: no ensurepip, same local caches and indexes;
    # no byte-compiling of Django & co. (half the install's CPU; Python compiles what it imports anyway).
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile", str(wheel)])

    host = tmp_path / "host"
    (host / "hostproject").mkdir(parents=True)
    (host / "hostproject" / "__init__.py").write_text("")
    (host / "hostproject" / "settings.py").write_text(SETTINGS)
    (host / "manage.py").write_text(MANAGE)
    shutil.copytree(SHIPPED_MIGRATIONS, host / "migrations")
    env = clean_env(DATABASE_URL=database.url, SQL_EMBEDDED_PGDATA=str(tmp_path / "pgdata"))
    env.pop("PYTHONPATH", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)

    where = _run([python, "-c", "import dbmigrations; print(dbmigrations.__file__)"], cwd=host, env=env)
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout  # the installed copy, not the repo

    applied = subprocess.run(
        [python, "manage.py", "apply_sql_migrations"], cwd=host, env=env, capture_output=True, text=True, timeout=300
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Applied 5, skipped 0 already applied, 0 pending." in applied.stdout
    assert database.versions() == ["001", "002", "003", "004", "005"]
    rows = database.query("SELECT version, filename FROM schema_migrations ORDER BY version")
    assert rows[0] == ("001", "001_initial_schema.sql")

    status = subprocess.run(
        [python, "manage.py", "sql_migration_status", "--check"],
        cwd=host,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    api = _run([python, "-c", API_SCRIPT], cwd=host, env={**env, "DJANGO_SETTINGS_MODULE": "hostproject.settings"})
    assert (
        "API [('001', 'applied'), ('002', 'applied'), ('003', 'applied'), ('004', 'applied'), ('005', 'applied')]"
        in api.stdout
    )
