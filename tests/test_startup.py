"""Fast at every size: a run reads and parses only what it needs.

A deploy with nothing pending, ``sql_migration_status`` and every Django process of the
project (runserver, gunicorn, ``shell``) load neither the SQL parser (pglast) nor the lint,
nor the apps' admin modules (the URLconf and the admin's checks import them); a no-op
loads no lock-wait machinery either (it locks nothing). A no-op parses no file, status
parses only what it shows (files not applied yet), and a rollback only the down files it
runs. A down file is read only when it is used.
"""

import subprocess
import sys

import pytest

from dbmigrations import statements
from tests.conftest import ROOT, clean_env, migration, write_files

# manage.py in a process that writes, when it ends, the modules it had imported (stderr's last line).
MODULES_AT_EXIT = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: sys.__stderr__.write('\\nMODULES ' + ' '.join(sorted(sys.modules)) + '\\n'))\n"
    "sys.argv = ['manage.py', *sys.argv[1:]]\n"
    "runpy.run_path('manage.py', run_name='__main__')\n"
)
HEAVY = ("pglast", "dbmigrations.lint", "dbmigrations.drift")
# The apps' admin modules (django.contrib.auth's brings its forms): for a request, or the admin's checks.
ADMIN = ("dbmigrations.admin", "django.contrib.auth.admin", "django.contrib.auth.forms")
# What runs a migration: the lock waits and retries, the blockers, the lock watcher, the measures.
RUNNING = (
    "dbmigrations.lockwait",
    "dbmigrations.lockwatch",
    "dbmigrations.blockers",
    "dbmigrations.measure",
    "dbmigrations.tracker",
)


def run_listing_modules(database, migrations, *args) -> tuple[subprocess.CompletedProcess, set[str]]:
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations))
    proc = subprocess.run(
        [sys.executable, "-c", MODULES_AT_EXIT, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    listed = [line for line in proc.stderr.splitlines() if line.startswith("MODULES ")]
    assert listed, proc.stderr
    return proc, set(listed[-1].split()[1:])


def loaded(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


@pytest.fixture
def applied(call, database, migrations_dir):
    """Three migrations with down files, all applied."""
    for number, name in enumerate(["a", "b", "c"], start=1):
        write_files(
            migrations_dir,
            {
                f"00{number}_{name}.sql": migration(f"00{number}_{name}", f"CREATE TABLE {name} (id int);"),
                f"00{number}_{name}.down.sql": f"DROP TABLE {name};\n",
            },
        )
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    return migrations_dir


@pytest.mark.parametrize(
    "command",
    [
        ("apply_sql_migrations",),
        ("sql_migration_status", "--check"),
        ("shell", "--no-imports", "-c", "pass"),  # any Django process of the project: runserver, gunicorn…
    ],
)
def test_a_run_with_nothing_to_do_loads_neither_the_parser_nor_the_lint_nor_the_admin(database, applied, command):
    proc, modules = run_listing_modules(database, applied, *command)
    assert proc.returncode == 0, proc.stderr
    for package in (*HEAVY, *ADMIN):
        assert loaded(modules, package) == [], f"{' '.join(command)} imported {package}"


def test_a_no_op_apply_loads_no_lock_wait_machinery_nor_the_embedded_server(database, applied):
    proc, modules = run_listing_modules(database, applied, "apply_sql_migrations")
    assert proc.returncode == 0 and "Applied 0, skipped 3 already applied" in proc.stdout, proc.stderr
    for package in (*RUNNING, "dbmigrations.annotations", "pgserver"):
        assert loaded(modules, package) == [], f"a no-op apply imported {package}"


CHECK_COUNTING_MODEL_ADMINS = """
import django
django.setup()
from django.contrib.admin import ModelAdmin
from django.core.management import call_command

checked = []
original = ModelAdmin.check
ModelAdmin.check = lambda self, **kwargs: checked.append(type(self)) or original(self, **kwargs)
call_command("check", tags=["admin"])  # not the URLconf's check, which imports the admin modules too
print("CHECKED", " ".join(sorted(f"{admin.__module__}.{admin.__name__}" for admin in checked)))
"""


def test_the_admin_checks_still_check_every_model_admin(migrations_dir):
    """The admin's checks import the admin modules themselves, before Django checks each ModelAdmin
    (Django runs its registered checks in no set order, and the tags may leave the URLconf's out)."""
    env = clean_env(SQL_MIGRATIONS_DIR=str(migrations_dir), DJANGO_SETTINGS_MODULE="bestrong.settings")
    proc = subprocess.run(
        [sys.executable, "-c", CHECK_COUNTING_MODEL_ADMINS], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    checked = next(line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("CHECKED"))
    assert {
        "dbmigrations.admin.SchemaMigrationAdmin",
        "django.contrib.auth.admin.GroupAdmin",
        "django.contrib.auth.admin.UserAdmin",
    } <= set(checked), proc.stdout


def test_version_is_the_installed_packages():
    """``--version`` prints ``dbmigrations.__version__`` (no metadata read per command), which pyproject.toml builds."""
    from importlib import metadata

    proc = subprocess.run(
        [sys.executable, "manage.py", "apply_sql_migrations", "--version"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"bestrong-dbmigrations {metadata.version('bestrong-dbmigrations')}"


def test_a_check_still_loads_the_lint_and_reports_each_finding_once(call, migrations_dir, tmp_path):
    write_files(migrations_dir, {"001_a.sql": "CREATE TABLE a (id int);\n"})  # no header: lint warnings
    seeds = tmp_path / "seeds"
    first = call("check", migrations=migrations_dir, seeds=seeds)
    from dbmigrations.lint import checks  # noqa: F401  (imported again by whoever wants it: registers nothing)

    again = call("check", migrations=migrations_dir, seeds=seeds)
    assert first.returncode == 0, first.output
    assert "(dbmigrations.W1" in first.stderr
    assert again.stderr == first.stderr


@pytest.fixture
def parses(monkeypatch):
    """The texts parsed with PostgreSQL's grammar (every parse goes through statements.parse_tree)."""
    parsed: list[str] = []
    original = statements.parse_tree

    def counting(text):
        parsed.append(text)
        return original(text)

    monkeypatch.setattr(statements, "parse_tree", counting)
    return parsed


def test_a_no_op_apply_parses_no_file(call, applied, parses):
    result = call("apply_sql_migrations", migrations=applied)
    assert result.returncode == 0 and "Applied 0, skipped 3 already applied" in result.stdout, result.output
    assert parses == []


def test_status_parses_only_the_files_not_applied_yet(call, applied, parses):
    write_files(applied, {"004_d.sql": migration("004_d", "CREATE TABLE d (id int);")})
    result = call("sql_migration_status", migrations=applied)
    assert result.returncode == 0 and "3 applied, 1 pending" in result.stdout, result.output
    # The pending file is parsed: status shows it INVALID when apply_sql_migrations would refuse it.
    assert len(parses) == 1 and "CREATE TABLE d" in parses[0]


def test_rollback_parses_only_the_down_files_it_runs(call, database, applied, parses):
    result = call("rollback_sql_migrations", "--steps", "2", migrations=applied)
    assert result.returncode == 0, result.output
    assert sorted(parses) == ["DROP TABLE b;\n", "DROP TABLE c;\n"]
    assert database.versions() == ["001"]


def test_a_down_file_is_read_only_when_it_runs(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE a (id int);"),
            "001_a.down.sql": b"DROP TABLE a; -- \xff\n",  # not UTF-8
            "002_b.sql": migration("002_b", "CREATE TABLE b (id int);"),
            "002_b.down.sql": "DROP TABLE b;\n",
        },
    )
    # Applying never runs a down file: a broken one does not block a deploy …
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    assert call("rollback_sql_migrations", migrations=migrations_dir).returncode == 0
    assert database.versions() == ["001"]
    # … but the rollback that would run it refuses it, naming it, and the checks report it.
    refused = call("rollback_sql_migrations", migrations=migrations_dir)
    assert refused.returncode == 2, refused.output
    assert "001_a.down.sql:1: not valid UTF-8 (byte 0xff)" in refused.stderr
    assert database.versions() == ["001"]
    checked = call("check", migrations=migrations_dir)
    assert "001_a.down.sql:1: (dbmigrations.E005) not valid UTF-8" in checked.stderr, checked.output
