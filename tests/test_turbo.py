"""package.json / turbo.json: the spec's npm script names run our management commands, through
the real ``turbo`` from the npm registry, with the environment reaching the command."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Result, clean_env, migration, write_files

SPEC_ENV = ["NODE_ENV", "POSTGRES_URL", "POSTGRES_PRISMA_URL", "POSTGRES_URL_NON_POOLING", "POSTGRES_HOST",
            "POSTGRES_PORT", "POSTGRES_DATABASE", "POSTGRES_USER", "POSTGRES_PASSWORD"]
OUR_ENV = ["DATABASE_URL", "DATABASE_URL_UNPOOLED", "VERCEL", "VERCEL_ENV", "SQL_MIGRATIONS_DIR", "SQL_SEEDS_DIR",
           "SQL_MIGRATIONS_ON_PREVIEW", "SQL_EMBEDDED_PGDATA", "BESTRONG_ENV_FILE"]
SCRIPTS = {
    "migrate": "apply_sql_migrations", "migrate:vercel": "apply_sql_migrations --vercel",
    "migrate:status": "sql_migration_status", "seed": "seed_dev", "seed:dev": "seed_dev",
    "db:reset": "reset_db", "db:status": "sql_migration_status",
}


def test_package_json_maps_the_spec_names_onto_real_commands():
    from django.core.management import get_commands

    package = json.loads((ROOT / "package.json").read_text())
    assert package["private"] is True and "dependencies" not in package
    assert package["packageManager"].startswith("npm@")  # turbo 2 refuses a workspace without it
    scripts = package["scripts"]
    assert set(SCRIPTS) <= set(scripts)
    for name, command in SCRIPTS.items():
        assert scripts[name].endswith(f"sh scripts/py manage.py {command}"), name
        assert command.split()[0] in get_commands(), f"{name}: no management command {command.split()[0]}"
    assert scripts["seed:dev"].startswith("NODE_ENV=development ")


def test_turbo_json_tasks_are_uncached_and_pass_the_database_variables():
    tasks = json.loads((ROOT / "turbo.json").read_text())["tasks"]
    assert {"migrate", "migrate:vercel", "migrate:status", "seed"} <= set(tasks)
    for name, task in tasks.items():
        assert task["cache"] is False and task["outputs"] == [], name
        assert set(SPEC_ENV + OUR_ENV) <= set(task["env"]), name
    assert {"VERCEL", "VERCEL_URL"} <= set(tasks["migrate:vercel"]["env"])


@pytest.fixture(scope="session")
def turbo(tmp_path_factory) -> str:
    """The real ``turbo`` 2 from the npm registry, installed once per session (npm's cache makes reruns fast)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot install turbo to test package.json/turbo.json")
    prefix = tmp_path_factory.mktemp("turbo-install")
    proc = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error",
                           "turbo@2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"npm install turbo@2 failed:\n{proc.stdout}{proc.stderr}"
    binary = prefix / "node_modules" / ".bin" / "turbo"
    assert binary.exists(), "turbo's binary is missing after npm install"
    return str(binary)


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project's npm/turbo entry points with a ``.venv/bin/python`` that is the test's Python."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("package.json", "turbo.json", "manage.py"):
        shutil.copy2(ROOT / name, root / name)
    shutil.copytree(ROOT / "scripts", root / "scripts")
    shutil.copytree(ROOT / "bestrong", root / "bestrong", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "dbmigrations").symlink_to(ROOT / "dbmigrations")
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return root


@pytest.fixture
def run_turbo(turbo, project, database, tmp_path):
    def run(*args, **env) -> Result:
        extra = {"DATABASE_URL": database.url, "SQL_EMBEDDED_PGDATA": str(tmp_path / "pgdata"),
                 "TURBO_TELEMETRY_DISABLED": "1", "DO_NOT_TRACK": "1", "TURBO_NO_UPDATE_NOTIFIER": "1"}
        proc = subprocess.run([turbo, "run", "--ui=stream", *args], cwd=project,
                              env=clean_env(**extra, **env), capture_output=True, text=True, timeout=180)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def test_turbo_migrate_and_status_use_the_environment(run_turbo, database, tmp_path):
    only = write_files(tmp_path / "only", {"007_only_table.sql": migration("007_only_table", "CREATE TABLE only_t (id int);")})

    result = run_turbo("migrate", SQL_MIGRATIONS_DIR=str(only))
    assert result.returncode == 0, result.output
    assert "Applying 007_only_table" in result.output
    assert database.versions() == ["007"]  # SQL_MIGRATIONS_DIR reached the command, and only it
    assert "only_t" in database.tables()

    status = run_turbo("migrate:status", SQL_MIGRATIONS_DIR=str(only))
    assert status.returncode == 0, status.output
    assert "APPLIED" in status.output and "007_only_table" in status.output

    write_files(only, {"008_next.sql": migration("008_next", "CREATE TABLE next_t (id int);")})
    check = run_turbo("migrate:status", "--", "--check", SQL_MIGRATIONS_DIR=str(only))
    assert check.returncode == 1, check.output  # the command's exit code comes through turbo
    assert "PENDING" in check.output and "1 pending" in check.output
    assert database.versions() == ["007"]


def test_turbo_migrate_failure_exits_1_naming_the_line(run_turbo, database, tmp_path):
    bad = write_files(tmp_path / "bad", {
        "001_ok.sql": migration("001_ok", "CREATE TABLE ok_t (id int);"),
        "002_broken.sql": migration("002_broken", "CREATE TABLE broken_t (id int);\nSELECT * FROM no_such_table;"),
    })
    result = run_turbo("migrate", SQL_MIGRATIONS_DIR=str(bad))
    assert result.returncode == 1, result.output
    assert "002_broken.sql:9:" in result.output and "no_such_table" in result.output
    assert database.versions() == ["001"]
    assert "broken_t" not in database.tables()


def test_turbo_migrate_vercel_sees_the_preview_variables(run_turbo, database, tmp_path):
    one = write_files(tmp_path / "one", {"001_a.sql": migration("001_a", "CREATE TABLE a (id int);")})

    skipped = run_turbo("migrate:vercel", SQL_MIGRATIONS_DIR=str(one), VERCEL="1", VERCEL_ENV="preview")
    assert skipped.returncode == 0, skipped.output
    assert "SQL_MIGRATIONS_ON_PREVIEW" in skipped.output
    assert database.versions() == []

    applied = run_turbo("migrate:vercel", SQL_MIGRATIONS_DIR=str(one), VERCEL="1", VERCEL_ENV="preview",
                        SQL_MIGRATIONS_ON_PREVIEW="1")
    assert applied.returncode == 0, applied.output
    assert database.versions() == ["001"]


def test_scripts_py_prefers_the_venv_then_python3(project, tmp_path):
    def which_python(root: Path) -> str:
        proc = subprocess.run(["sh", str(root / "scripts" / "py"), "-c", "import sys; print(sys.prefix)"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60, env=clean_env())
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert which_python(project) == sys.prefix  # .venv/bin/python (here: the test's interpreter)
    shutil.rmtree(project / ".venv")
    expected = subprocess.run(["python3", "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                              env=clean_env()).stdout.strip()
    assert which_python(project) == expected
