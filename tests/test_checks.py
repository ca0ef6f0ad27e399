"""``manage.py check``: SQL file errors always; ledger warnings with ``--database``.

Each scenario writes its own migration and seed directories and runs ``manage.py``
as a subprocess (exit code and output, as a developer sees them).
"""
from __future__ import annotations

import pytest

from tests.conftest import SHIPPED_MIGRATIONS, SHIPPED_SEEDS, migration, write_files

CREATE_A = migration("001_create_a", "CREATE TABLE IF NOT EXISTS a (id int);")
CREATE_B = migration("002_create_b", "CREATE TABLE IF NOT EXISTS b (id int);")
SEED = ("-- Seed: 001_seed_a\n-- Environment: development\n-- Description: one row in a\n-- Created: 2024-01-01\n\n"
        "BEGIN;\n\nINSERT INTO a (id) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM a);\n\nCOMMIT;\n")


@pytest.fixture
def dirs(tmp_path):
    """Valid migration and seed directories, for a scenario to spoil."""
    migrations = write_files(tmp_path / "migrations", {"001_create_a.sql": CREATE_A, "002_create_b.sql": CREATE_B})
    seeds = tmp_path / "seeds"
    write_files(seeds / "development", {"001_seed_a.sql": SEED})
    return migrations, seeds


def test_shipped_files_have_no_issues(manage):
    result = manage("check", migrations=SHIPPED_MIGRATIONS, seeds=SHIPPED_SEEDS)
    assert result.returncode == 0, result.output
    assert "System check identified no issues" in result.output


@pytest.mark.parametrize("where, files, check_id, named", [
    ("migrations", {"003_AddUsers.sql": "SELECT 1;\n"}, "dbmigrations.E001", ["003_AddUsers.sql"]),
    ("migrations", {"add_users.sql": "SELECT 1;\n"}, "dbmigrations.E001", ["add_users.sql"]),
    ("migrations", {"0002_create_c.sql": "CREATE TABLE c (id int);\n"}, "dbmigrations.E002",
     ["0002_create_c.sql", "002_create_b.sql"]),
    ("migrations", {"007_gone.down.sql": "DROP TABLE gone;\n"}, "dbmigrations.E003", ["007_gone.down.sql"]),
    ("migrations", {"003_broken.sql": "-- header\nCREATE TABLE (;\n"}, "dbmigrations.E004", ["003_broken.sql:2:14"]),
    ("migrations", {"003_latin1.sql": b"-- caf\xe9\nSELECT 1;\n"}, "dbmigrations.E005", ["003_latin1.sql:1"]),
    ("migrations", {"003_empty.sql": "-- nothing yet\nBEGIN;\nCOMMIT;\n"}, "dbmigrations.E006", ["003_empty.sql"]),
    ("seeds", {"002_Sample.sql": "SELECT 1;\n"}, "dbmigrations.E001", ["002_Sample.sql"]),
    ("seeds", {"002_broken.sql": "INSERT INTO;\n"}, "dbmigrations.E004", ["002_broken.sql:1:12"]),
    ("seeds", {"001_seed_a.down.sql": "DELETE FROM a;\n"}, "dbmigrations.E007", ["001_seed_a.down.sql"]),
])
def test_each_file_error(manage, dirs, where, files, check_id, named):
    migrations, seeds = dirs
    write_files(migrations if where == "migrations" else seeds / "development", files)
    result = manage("check", migrations=migrations, seeds=seeds)
    assert result.returncode == 1, result.output
    assert f"({check_id})" in result.stderr
    for name in named:
        assert f"{name}: ({check_id})" in result.stderr
    assert "SystemCheckError" in result.stderr


def test_every_problem_is_reported_in_one_run(manage, dirs):
    migrations, seeds = dirs
    write_files(migrations, {"003_Bad.sql": "SELECT 1;\n", "004_broken.sql": "SELEC 1;\n", "009_x.down.sql": "x"})
    result = manage("check", migrations=migrations, seeds=seeds)
    assert result.returncode == 1
    for expected in ("003_Bad.sql: (dbmigrations.E001)", "004_broken.sql:1:1: (dbmigrations.E004)",
                     "009_x.down.sql: (dbmigrations.E003)"):
        assert expected in result.stderr


def test_without_database_option_the_database_is_not_read(manage, dirs):
    migrations, seeds = dirs
    result = manage("check", migrations=migrations, seeds=seeds, database_url="postgresql://u:pw@127.0.0.1:1/nowhere")
    assert result.returncode == 0, result.output
    assert "no issues" in result.output and "W00" not in result.output


def test_pending_migrations_warn_with_database(manage, dirs, database):
    migrations, seeds = dirs
    result = manage("check", "--database", "default", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert "(dbmigrations.W001) You have 2 unapplied SQL migration(s) in database 'default': " \
           "001_create_a, 002_create_b." in result.stderr
    assert "apply_sql_migrations" in result.stderr
    assert "schema_migrations" not in database.tables()  # a check never creates the ledger


def test_up_to_date_database_has_no_issues(manage, dirs, database):
    migrations, seeds = dirs
    assert manage("apply_sql_migrations", migrations=migrations).returncode == 0
    result = manage("check", "--database", "default", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert "System check identified no issues" in result.output


def test_checksum_drift_and_missing_files_warn(manage, dirs, database):
    migrations, seeds = dirs
    write_files(migrations, {"003_create_c.sql": migration("003_create_c", "CREATE TABLE IF NOT EXISTS c (id int);")})
    assert manage("apply_sql_migrations", migrations=migrations).returncode == 0
    (migrations / "001_create_a.sql").write_text(CREATE_A.replace("(id int)", "(id bigint)"), encoding="utf-8")
    (migrations / "003_create_c.sql").unlink()
    write_files(migrations, {"004_create_d.sql": migration("004_create_d", "CREATE TABLE IF NOT EXISTS d (id int);")})
    result = manage("check", "--database", "default", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert "001_create_a.sql: (dbmigrations.W002) applied to database 'default' but changed on disk" in result.stderr
    assert "repair_sql_migrations" in result.stderr
    assert "003_create_c.sql: (dbmigrations.W003) recorded as applied in database 'default'" in result.stderr
    assert "(dbmigrations.W001) You have 1 unapplied SQL migration(s) in database 'default': 004_create_d." \
        in result.stderr
    assert "002_create_b" not in result.stderr
    assert database.versions() == ["001", "002", "003"]  # nothing changed


def test_unreachable_database_is_a_warning_not_a_crash(manage, dirs):
    migrations, seeds = dirs
    url = "postgresql://alice:s3cret-pw@127.0.0.1:1/nowhere"
    result = manage("check", "--database", "default", migrations=migrations, seeds=seeds, database_url=url)
    assert result.returncode == 0, result.output
    assert "(dbmigrations.W004) cannot read the SQL migration ledger of database 'default'" in result.stderr
    assert "127.0.0.1" in result.stderr
    assert "s3cret-pw" not in result.output and "Traceback" not in result.output


def test_unreadable_ledger_is_a_warning_not_a_crash(manage, dirs, database):
    migrations, seeds = dirs
    database.query("CREATE VIEW schema_migrations AS SELECT (1 / 0)::text AS version, now()::timestamp AS applied_at, "
                   "NULL::text AS checksum, NULL::text AS description, NULL::int AS execution_ms, "
                   "NULL::text AS filename, NULL::text AS applied_by")
    result = manage("check", "--database", "default", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert "(dbmigrations.W004) cannot read the SQL migration ledger of database 'default': division by zero" \
        in result.stderr
    assert "Traceback" not in result.output


def test_invalid_files_with_database_report_errors_only(manage, dirs):
    migrations, seeds = dirs
    write_files(migrations, {"003_Bad.sql": "SELECT 1;\n"})
    result = manage("check", "--database", "default", migrations=migrations, seeds=seeds)
    assert result.returncode == 1
    assert "003_Bad.sql: (dbmigrations.E001)" in result.stderr
    assert "W00" not in result.stderr  # a plan of invalid files would be wrong: errors first


def test_django_migrate_runs_the_database_checks(manage, dirs, database):
    migrations, seeds = dirs
    result = manage("migrate", "--no-input", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert "(dbmigrations.W001) You have 2 unapplied SQL migration(s)" in result.output
    assert "schema_migrations" not in database.tables() and "auth_user" in database.tables()


def test_makemigrations_check_reports_no_changes(manage):
    result = manage("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.output
    assert "No changes detected" in result.stdout


def test_extension_point_runs_added_file_checks(monkeypatch, settings):
    """A lint (or any file check) joins ``manage.py check`` by appending a function to FILE_CHECKS."""
    from django.core import checks as django_checks
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    from dbmigrations import checks

    settings.SQL_MIGRATIONS_DIR, settings.SQL_SEEDS_DIR = SHIPPED_MIGRATIONS, SHIPPED_SEEDS

    def extra():
        return [django_checks.Error("a lint finding", obj="migrations/001_x.sql:3", id="dbmigrations.E999")]

    monkeypatch.setattr(checks, "FILE_CHECKS", [*checks.FILE_CHECKS, extra])
    with pytest.raises(SystemCheckError, match=r"migrations/001_x.sql:3: \(dbmigrations.E999\) a lint finding"):
        call_command("check")
