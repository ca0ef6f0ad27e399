"""``manage.py check``: SQL file errors always; ledger warnings with ``--database``.

Each scenario writes its own migration and seed directories and runs ``check`` as
``manage.py`` runs it (exit code and output, as a developer sees them): in-process
(``call``), and as a real process for the shipped files and Django's ``migrate``.
"""

from __future__ import annotations

import pytest

from tests.conftest import SHIPPED_MIGRATIONS, SHIPPED_SEEDS, migration, write_files

CREATE_A = migration("001_create_a", "CREATE TABLE IF NOT EXISTS a (id int);")
CREATE_B = migration("002_create_b", "CREATE TABLE IF NOT EXISTS b (id int);")
SEED = (
    "-- Seed: 001_seed_a\n-- Environment: development\n-- Description: one row in a\n-- Created: 2024-01-01\n\n"
    "BEGIN;\n\nINSERT INTO a (id) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM a);\n\nCOMMIT;\n"
)


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


@pytest.mark.parametrize(
    "where, files, check_id, named",
    [
        ("migrations", {"003_AddUsers.sql": "SELECT 1;\n"}, "dbmigrations.E001", ["003_AddUsers.sql"]),
        ("migrations", {"add_users.sql": "SELECT 1;\n"}, "dbmigrations.E001", ["add_users.sql"]),
        (
            "migrations",
            {"0002_create_c.sql": "CREATE TABLE c (id int);\n"},
            "dbmigrations.E002",
            ["0002_create_c.sql", "002_create_b.sql"],
        ),
        ("migrations", {"007_gone.down.sql": "DROP TABLE gone;\n"}, "dbmigrations.E003", ["007_gone.down.sql"]),
        (
            "migrations",
            {"003_broken.sql": "-- header\nCREATE TABLE (;\n"},
            "dbmigrations.E004",
            ["003_broken.sql:2:14"],
        ),
        ("migrations", {"003_latin1.sql": b"-- caf\xe9\nSELECT 1;\n"}, "dbmigrations.E005", ["003_latin1.sql:1"]),
        ("seeds", {"002_Sample.sql": "SELECT 1;\n"}, "dbmigrations.E001", ["002_Sample.sql"]),
        ("seeds", {"002_broken.sql": "INSERT INTO;\n"}, "dbmigrations.E004", ["002_broken.sql:1:12"]),
        ("seeds", {"001_seed_a.down.sql": "DELETE FROM a;\n"}, "dbmigrations.E007", ["001_seed_a.down.sql"]),
        (
            "seeds",
            {"002_index.sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON a (id);\n"},
            "dbmigrations.E009",
            ["002_index.sql:1:1"],
        ),
    ],
)
def test_each_file_error(call, dirs, where, files, check_id, named):
    migrations, seeds = dirs
    write_files(migrations if where == "migrations" else seeds / "development", files)
    result = call("check", migrations=migrations, seeds=seeds)
    assert result.returncode == 1, result.output
    assert f"({check_id})" in result.stderr
    for name in named:
        assert f"{name}: ({check_id})" in result.stderr
    assert "SystemCheckError" in result.stderr
    assert result.stderr.count("HINT: ") == result.stderr.count("(dbmigrations.")  # every message has a hint


def test_every_problem_is_reported_in_one_run(call, dirs):
    migrations, seeds = dirs
    write_files(migrations, {"003_Bad.sql": "SELECT 1;\n", "004_broken.sql": "SELEC 1;\n", "009_x.down.sql": "x"})
    result = call("check", migrations=migrations, seeds=seeds)
    assert result.returncode == 1
    for expected in (
        "003_Bad.sql: (dbmigrations.E001)",
        "004_broken.sql:1:1: (dbmigrations.E004)",
        "009_x.down.sql: (dbmigrations.E003)",
    ):
        assert expected in result.stderr


def test_without_database_option_the_database_is_not_read(call, dirs):
    migrations, seeds = dirs
    result = call("check", migrations=migrations, seeds=seeds, database_url="postgresql://u:pw@127.0.0.1:1/nowhere")
    assert result.returncode == 0, result.output
    assert "no issues" in result.output and "W00" not in result.output


def test_pending_migrations_warn_with_database(call, dirs, database):
    migrations, seeds = dirs
    result = call("check", "--database", "default", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert (
        "(dbmigrations.W001) You have 2 unapplied SQL migration(s) in database 'default': "
        "001_create_a, 002_create_b." in result.stderr
    )
    assert "apply_sql_migrations" in result.stderr
    assert "schema_migrations" not in database.tables()  # a check never creates the ledger


def test_up_to_date_database_has_no_issues(call, dirs, database):
    migrations, seeds = dirs
    assert call("apply_sql_migrations", migrations=migrations).returncode == 0
    result = call("check", "--database", "default", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert "System check identified no issues" in result.output


def test_checksum_drift_and_missing_files_warn(call, dirs, database):
    migrations, seeds = dirs
    write_files(migrations, {"003_create_c.sql": migration("003_create_c", "CREATE TABLE IF NOT EXISTS c (id int);")})
    assert call("apply_sql_migrations", migrations=migrations).returncode == 0
    (migrations / "001_create_a.sql").write_text(CREATE_A.replace("(id int)", "(id bigint)"), encoding="utf-8")
    (migrations / "003_create_c.sql").unlink()
    write_files(migrations, {"004_create_d.sql": migration("004_create_d", "CREATE TABLE IF NOT EXISTS d (id int);")})
    result = call("check", "--database", "default", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert "001_create_a.sql: (dbmigrations.W002) applied to database 'default' but changed on disk" in result.stderr
    assert "repair_sql_migrations" in result.stderr
    assert "003_create_c.sql: (dbmigrations.W003) recorded as applied in database 'default'" in result.stderr
    assert (
        "(dbmigrations.W001) You have 1 unapplied SQL migration(s) in database 'default': 004_create_d."
        in result.stderr
    )
    assert "002_create_b" not in result.stderr
    assert database.versions() == ["001", "002", "003"]  # nothing changed


def test_unreachable_database_is_a_warning_not_a_crash(call, dirs):
    migrations, seeds = dirs
    url = "postgresql://alice:s3cret-pw@127.0.0.1:1/nowhere"
    result = call("check", "--database", "default", migrations=migrations, seeds=seeds, database_url=url)
    assert result.returncode == 0, result.output
    assert "(dbmigrations.W004) cannot read the SQL migration ledger of database 'default'" in result.stderr
    assert "127.0.0.1" in result.stderr
    assert "s3cret-pw" not in result.output and "Traceback" not in result.output


def test_unreadable_ledger_is_a_warning_not_a_crash(call, dirs, database):
    migrations, seeds = dirs
    database.query(
        "CREATE VIEW schema_migrations AS SELECT (1 / 0)::text AS version, now()::timestamp AS applied_at, "
        "NULL::text AS checksum, NULL::text AS description, NULL::int AS execution_ms, "
        "NULL::text AS filename, NULL::text AS applied_by"
    )
    result = call("check", "--database", "default", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert (
        "(dbmigrations.W004) cannot read the SQL migration ledger of database 'default': division by zero"
        in result.stderr
    )
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"003_Bad.sql": "SELECT 1;\n"}, "003_Bad.sql: (dbmigrations.E001)"),
        ({"003_broken.sql": "SELEC 1;\n"}, "003_broken.sql:1:1: (dbmigrations.E004)"),
    ],
)
def test_invalid_files_with_database_report_errors_only(call, dirs, files, expected):
    migrations, seeds = dirs
    write_files(migrations, files)
    result = call("check", "--database", "default", migrations=migrations, seeds=seeds)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "W00" not in result.stderr  # a plan of invalid files would be wrong: errors first


def test_django_migrate_runs_the_database_checks(manage, dirs, database):
    migrations, seeds = dirs
    result = manage("migrate", "--no-input", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert "(dbmigrations.W001) You have 2 unapplied SQL migration(s)" in result.output
    assert "schema_migrations" not in database.tables() and "auth_user" in database.tables()


def test_makemigrations_check_reports_no_changes(call):
    result = call("makemigrations", "--check", "--dry-run")
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


# ---- style findings and scaffolds are warnings: they never stop Django's own commands ----

STYLE_ONLY = (
    "-- Migration: 003_create_c\n-- Description: c without a Created header\n\n"
    "BEGIN;\n\nCREATE TABLE c (id int);\n\nCOMMIT;\n"
)


def test_lint_findings_are_warnings(call, dirs):
    migrations, seeds = dirs
    write_files(migrations, {"003_create_c.sql": STYLE_ONLY})
    result = call("check", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert "003_create_c.sql:1:1: (dbmigrations.W102) " in result.stderr
    assert "003_create_c.sql:6:1: (dbmigrations.W105) CREATE TABLE c without IF NOT EXISTS" in result.stderr
    assert "HINT: add IF NOT EXISTS" in result.stderr
    assert "System check identified 2 issues" in result.stdout + result.stderr
    assert "SystemCheckError" not in result.output and "(dbmigrations.L0" not in result.output


def test_migrate_and_createsuperuser_run_despite_a_style_finding(manage, dirs, database):
    migrations, seeds = dirs
    write_files(migrations, {"003_create_c.sql": STYLE_ONLY})
    result = manage("migrate", "--no-input", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert "(dbmigrations.W105) CREATE TABLE c without IF NOT EXISTS" in result.output
    assert "auth_user" in database.tables()
    result = manage(
        "createsuperuser",
        "--no-input",
        "--username",
        "admin",
        "--email",
        "admin@example.com",
        migrations=migrations,
        seeds=seeds,
        env={"DJANGO_SUPERUSER_PASSWORD": "a-long-pass-4321"},
    )
    assert result.returncode == 0, result.output
    assert database.query("SELECT username FROM auth_user") == [("admin",)]
    # the runner accepts the same file
    assert manage("apply_sql_migrations", migrations=migrations).returncode == 0
    assert database.versions() == ["001", "002", "003"]


def test_invalid_name_is_still_an_error_beside_a_style_warning(call, dirs):
    migrations, seeds = dirs
    write_files(migrations, {"003_create_c.sql": STYLE_ONLY, "004_AddD.sql": "SELECT 1;\n"})
    result = call("check", migrations=migrations, seeds=seeds)
    assert result.returncode == 1
    assert "SystemCheckError" in result.stderr
    assert "004_AddD.sql: (dbmigrations.E001)" in result.stderr
    assert "003_create_c.sql:6:1: (dbmigrations.W105)" in result.stderr


def test_unwritten_scaffold_is_a_warning_the_runner_still_refuses(call, dirs):
    migrations, seeds = dirs
    assert call("new_sql_migration", "add_things", "--down", migrations=migrations).returncode == 0
    result = call("check", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert "003_add_things.sql: (dbmigrations.W006) empty file" in result.stderr
    assert "003_add_things.down.sql: (dbmigrations.W006) empty file" in result.stderr
    assert "(dbmigrations.E" not in result.output
    refused = call("apply_sql_migrations", migrations=migrations)
    assert refused.returncode == 2 and "003_add_things.sql" in refused.output


def test_an_empty_seed_is_a_warning(call, dirs):
    migrations, seeds = dirs
    write_files(seeds / "development", {"002_later.sql": "-- to do\n"})
    result = call("check", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert "002_later.sql: (dbmigrations.W006)" in result.stderr


def test_each_lint_rule_has_a_documented_warning_id():
    from dbmigrations.lint.checks import check_id
    from dbmigrations.lint.registry import RULES
    from tests.conftest import ROOT

    docs = [(ROOT / "docs" / name).read_text(encoding="utf-8") for name in ("admin-and-checks.md", "lint.md")]
    for rule in sorted(RULES):
        if rule == "L001":  # the runner's refusals: E001…E009
            continue
        assert check_id(rule) == f"dbmigrations.W1{rule[2:]}"
        for text in docs:
            assert f"W1{rule[2:]}" in text, rule


# ---- the file checks' results are reused only while the files are unchanged ----


def _age(directory, seconds=60):
    """Make every file look older than the cache's racy window, so results get stored."""
    import os
    import time

    for path in directory.rglob("*.sql"):
        os.utime(path, ns=(time.time_ns() - seconds * 10**9,) * 2)


def test_checks_see_every_edit_between_runs(manage, dirs):
    import os

    migrations, seeds = dirs
    write_files(migrations, {"003_create_c.sql": migration("003_create_c", "CREATE TABLE IF NOT EXISTS c (id int);")})
    _age(migrations), _age(seeds)
    first = manage("check", migrations=migrations, seeds=seeds)
    assert first.returncode == 0 and "no issues" in first.output, first.output
    again = manage("check", migrations=migrations, seeds=seeds)
    assert again.returncode == 0 and "no issues" in again.output, again.output

    # Same size, modification time put back: still seen (the key includes the inode change time).
    path = migrations / "003_create_c.sql"
    stat = path.stat()
    path.write_text(path.read_text(encoding="utf-8").replace("CREATE", "CRATEE"), encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    broken = manage("check", migrations=migrations, seeds=seeds)
    assert broken.returncode == 1 and "003_create_c.sql:8:" in broken.stderr, broken.output

    path.write_text(migration("003_create_c", "CREATE TABLE c (id int);"), encoding="utf-8")
    style = manage("check", migrations=migrations, seeds=seeds)
    assert style.returncode == 0 and "(dbmigrations.W105)" in style.stderr, style.output

    (seeds / "development" / "001_seed_a.sql").unlink()
    write_files(seeds / "development", {"001_Seed.sql": SEED})
    renamed = manage("check", migrations=migrations, seeds=seeds)
    assert renamed.returncode == 1 and "001_Seed.sql: (dbmigrations.E001)" in renamed.stderr, renamed.output


def test_unchanged_files_reuse_the_stored_messages(settings, monkeypatch, tmp_path):
    from dbmigrations.lint import checks as lint_checks

    settings.SQL_MIGRATIONS_DIR = write_files(tmp_path / "migrations", {"003_create_c.sql": STYLE_ONLY})
    settings.SQL_SEEDS_DIR = tmp_path / "seeds"
    _age(tmp_path)
    first = lint_checks.check_sql_lint()
    assert [w.id for w in first] == ["dbmigrations.W102", "dbmigrations.W105"]

    def no_lint(*args, **kwargs):
        raise AssertionError("the files were linted again")

    monkeypatch.setattr(lint_checks, "lint", no_lint)
    assert lint_checks.check_sql_lint() == first  # from the store
    (tmp_path / "migrations" / "004_new.sql").write_text("SELECT 1;\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="linted again"):
        lint_checks.check_sql_lint()
