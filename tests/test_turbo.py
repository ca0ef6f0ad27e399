"""package.json / turbo.json: the spec's npm script names run our management commands, through
the real ``turbo`` from the npm registry, with the environment reaching the command."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Result, clean_env, migration, write_files

SPEC_ENV = [
    "NODE_ENV",
    "POSTGRES_URL",
    "POSTGRES_PRISMA_URL",
    "POSTGRES_URL_NON_POOLING",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DATABASE",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
]
OUR_ENV = [
    "DATABASE_URL",
    "DATABASE_URL_UNPOOLED",
    "VERCEL",
    "VERCEL_ENV",
    "SQL_MIGRATIONS_DIR",
    "SQL_SEEDS_DIR",
    "SQL_MIGRATIONS_ON_PREVIEW",
    "SQL_EMBEDDED_PGDATA",
    "BESTRONG_ENV_FILE",
    # every setting the tool reads: turbo's strict mode drops what a task does not list
    "SQL_MIGRATIONS_SCHEMA",
    "SQL_MIGRATIONS_DDL_LOCK_TIMEOUT",
    "SQL_MIGRATIONS_LOCK_RETRY_BUDGET",
    "SQL_SCHEMA_FILE",
    "SQL_SCHEMA_CHECK_ON_DEPLOY",
]
SCRIPTS = {
    "migrate": "apply_sql_migrations",
    "migrate:vercel": "apply_sql_migrations --vercel",
    "migrate:status": "sql_migration_status",
    "migrate:rollback": "rollback_sql_migrations",
    "migrate:new": "new_sql_migration",
    "migrate:lint": "lint_sql_migrations",
    "migrate:verify": "verify_sql_migrations",
    "seed": "seed_dev",
    "seed:dev": "seed_dev",
    "db:reset": "reset_db",
    "db:status": "sql_migration_status",
}
README_SCRIPTS = (
    "migrate",
    "migrate:vercel",
    "migrate:status",
    "migrate:rollback",
    "seed",
    "seed:dev",
    "db:reset",
    "db:status",
)


def test_package_json_maps_the_spec_names_onto_real_commands():
    from django.core.management import get_commands

    package = json.loads((ROOT / "package.json").read_text())
    assert package["name"] == "backend"  # the spec's `turbo run migrate:vercel --filter=backend`
    assert package["private"] is True and "dependencies" not in package
    assert package["packageManager"].startswith("npm@")  # turbo 2 refuses a workspace without it
    scripts = package["scripts"]
    assert set(SCRIPTS) <= set(scripts)
    for name, command in SCRIPTS.items():
        assert scripts[name].endswith(f"sh scripts/py manage.py {command}"), name
        assert command.split()[0] in get_commands(), f"{name}: no management command {command.split()[0]}"
    assert scripts["seed:dev"].startswith("NODE_ENV=development ")


def test_every_npm_script_the_readme_names_exists():
    scripts = json.loads((ROOT / "package.json").read_text())["scripts"]
    readme = (ROOT / "README.md").read_text()
    for name in README_SCRIPTS:
        assert f"npm run {name}" in readme, name
        assert name in scripts, name


def test_turbo_json_tasks_are_uncached_and_pass_the_database_variables():
    config = json.loads((ROOT / "turbo.json").read_text())
    assert config["extends"] == ["//"]  # a package of the monorepo: turbo rejects the whole repo without it
    tasks = config["tasks"]
    assert {"migrate", "migrate:vercel", "migrate:status", "seed"} <= set(tasks)
    for name, task in tasks.items():
        assert task["cache"] is False and task["outputs"] == [], name
        assert set(SPEC_ENV + OUR_ENV) <= set(task["env"]), name
    assert {"VERCEL", "VERCEL_URL"} <= set(tasks["migrate:vercel"]["env"])


def test_every_variable_the_tool_reads_is_passed_by_every_task():
    """turbo's strict mode drops what a task does not list: a new setting must be added to turbo.json."""
    read = set()
    for path in [*(ROOT / "dbmigrations").rglob("*.py"), ROOT / "bestrong" / "settings.py"]:
        text = path.read_text(encoding="utf-8")
        read |= set(re.findall(r'(?:variable|_seconds|_folder|env\.\w+)\(\s*"(SQL_[A-Z_]+)"', text))
    assert {"SQL_SCHEMA_CHECK_ON_DEPLOY", "SQL_MIGRATIONS_SCHEMA", "SQL_MIGRATIONS_LOG_LEVEL"} <= read  # the scan works
    tasks = json.loads((ROOT / "turbo.json").read_text())["tasks"]
    for name, task in tasks.items():
        assert read <= set(task["env"]), (name, read - set(task["env"]))


@pytest.fixture(scope="session")
def turbo(tmp_path_factory) -> str:
    """The real ``turbo`` 2 from the npm registry, installed once per session (npm's cache makes reruns fast)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot install turbo to test package.json/turbo.json")
    prefix = tmp_path_factory.mktemp("turbo-install")
    proc = subprocess.run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", "turbo@2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"npm install turbo@2 failed:\n{proc.stdout}{proc.stderr}"
    binary = prefix / "node_modules" / ".bin" / "turbo"
    assert binary.exists(), "turbo's binary is missing after npm install"
    return str(binary)


def monorepo(root: Path) -> Path:
    """BeStrong's layout: an npm-workspaces Turborepo, a stub Next.js ``frontend/``, this project as ``backend/``.

    Returns the ``backend/`` folder (the project's tracked files, without any virtualenv)."""
    write_files(
        root,
        {
            "package.json": json.dumps(
                {
                    "name": "bestrong",
                    "private": True,
                    "packageManager": "npm@10.9.2",
                    "workspaces": ["frontend", "backend"],
                }
            ),
            "turbo.json": json.dumps(
                {"$schema": "https://turborepo.dev/schema.json", "tasks": {"build": {"outputs": [".next/**"]}}}
            ),
        },
    )
    write_files(
        root / "frontend",
        {
            "package.json": json.dumps(
                {"name": "frontend", "private": True, "scripts": {"build": "echo frontend built"}}
            )
        },
    )
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    backend = root / "backend"
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (backend / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, backend / name)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return backend


@pytest.fixture
def project(tmp_path) -> Path:
    """The monorepo, with ``backend/.venv/bin/python`` standing for the test's Python (no install)."""
    backend = monorepo(tmp_path / "bestrong")
    python = backend / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return backend


def turbo_env(database, tmp_path, **env) -> dict:
    return clean_env(
        DATABASE_URL=database.url,
        SQL_EMBEDDED_PGDATA=str(tmp_path / "pgdata"),
        TURBO_TELEMETRY_DISABLED="1",
        DO_NOT_TRACK="1",
        TURBO_NO_UPDATE_NOTIFIER="1",
        **env,
    )


@pytest.fixture
def run_turbo(turbo, project, database, tmp_path):
    """``turbo run TASK --filter=backend …`` from the monorepo's root."""

    def run(*args, **env) -> Result:
        proc = subprocess.run(
            [turbo, "run", "--ui=stream", "--filter=backend", *args],
            cwd=project.parent,
            env=turbo_env(database, tmp_path, **env),
            capture_output=True,
            text=True,
            timeout=180,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def test_turbo_migrate_and_status_use_the_environment(run_turbo, database, tmp_path):
    only = write_files(
        tmp_path / "only", {"007_only_table.sql": migration("007_only_table", "CREATE TABLE only_t (id int);")}
    )

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
    bad = write_files(
        tmp_path / "bad",
        {
            "001_ok.sql": migration("001_ok", "CREATE TABLE ok_t (id int);"),
            "002_broken.sql": migration("002_broken", "CREATE TABLE broken_t (id int);\nSELECT * FROM no_such_table;"),
        },
    )
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

    applied = run_turbo(
        "migrate:vercel", SQL_MIGRATIONS_DIR=str(one), VERCEL="1", VERCEL_ENV="preview", SQL_MIGRATIONS_ON_PREVIEW="1"
    )
    assert applied.returncode == 0, applied.output
    assert database.versions() == ["001"]


def test_the_spec_build_line_works_in_the_monorepo_from_scratch(turbo, database, tmp_path):
    """`turbo run build && turbo run migrate:vercel --filter=backend`, as Vercel runs it: no virtualenv yet,
    so scripts/py installs the backend's Python dependencies (without the embedded server) first."""
    backend = monorepo(tmp_path / "bestrong")
    env = turbo_env(database, tmp_path, VERCEL="1", VERCEL_ENV="production", NODE_ENV="production")
    line = f"{turbo} run --ui=stream build && {turbo} run --ui=stream migrate:vercel --filter=backend"
    proc = subprocess.run(["sh", "-c", line], cwd=backend.parent, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "frontend built" in proc.stdout
    assert "installing the Python dependencies" in proc.stdout + proc.stderr
    assert database.versions() == ["001", "002", "003", "004", "005"]
    assert {"admin_users", "clients", "workouts"} <= database.tables()
    installed = subprocess.run(
        [str(backend / ".venv" / "bin" / "python"), "-c", "import pgserver"], capture_output=True, text=True
    )
    assert installed.returncode != 0  # a deploy does not carry the embedded server's binaries


def test_a_preview_without_database_variables_skips_with_exit_0(call, database, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE a (id int);")})
    result = call(
        "apply_sql_migrations",
        migrations=migrations_dir,
        database_url=None,
        env={"VERCEL": "1", "VERCEL_ENV": "preview"},
    )
    assert result.returncode == 0, result.output
    assert "Preview deployment" in result.stdout and "SQL_MIGRATIONS_ON_PREVIEW" in result.stdout
    assert database.tables() == set()


def test_scripts_py_uses_the_venv(project, tmp_path):
    proc = subprocess.run(
        ["sh", str(project / "scripts" / "py"), "-c", "import sys; print(sys.prefix)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == sys.prefix  # .venv/bin/python (here: the test's interpreter)
