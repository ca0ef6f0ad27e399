"""new_sql_migration: the next number, the template, the refusals."""

from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import Result, migration, write_files


@pytest.fixture
def scaffold(settings, tmp_path, monkeypatch):
    """Run new_sql_migration in-process on ``tmp_path/migrations``; git's user.name is "Test Author"."""
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[user]\n\tname = Test Author\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    settings.SQL_MIGRATIONS_DIR = tmp_path / "migrations"
    # Not the project's embedded server: a quick start may have applied the shipped migrations there, and
    # the scaffold skips the versions a reachable ledger knows.
    settings.SQL_EMBEDDED_PGDATA = tmp_path / "no-embedded-server"

    def run(*args):
        out, err = StringIO(), StringIO()
        try:
            call_command("new_sql_migration", *args, stdout=out, stderr=err, no_color=True)
            code = 0
        except CommandError as error:
            code = error.returncode
            err.write(str(error))
        return Result(code, out.getvalue(), err.getvalue())

    return run


def names(directory):
    return sorted(p.name for p in directory.iterdir())


def test_empty_directory_starts_at_001_with_the_specs_template(scaffold, tmp_path):
    result = scaffold("add_goals_table")
    assert result.returncode == 0, result.output
    path = tmp_path / "migrations" / "001_add_goals_table.sql"
    assert f"Created {path}" in result.stdout
    assert "an empty (comment-only) migration is refused by apply_sql_migrations" in result.stdout
    text = path.read_text()
    assert text.splitlines()[:4] == [
        "-- Migration: 001_add_goals_table",
        "-- Description: Add goals table",
        f"-- Created: {date.today().isoformat()}",
        "-- Author: Test Author",
    ]
    lines = text.splitlines()
    assert lines.index("BEGIN;") < lines.index("COMMIT;")
    assert "-- TODO: write the schema change here" in text
    assert names(tmp_path / "migrations") == ["001_add_goals_table.sql"]


@pytest.mark.parametrize(
    "existing, expected",
    [
        (["001_a.sql", "002_b.sql"], "003_next.sql"),
        (["009_a.sql"], "010_next.sql"),
        (["0999_a.sql"], "1000_next.sql"),
        (["0041_a.sql", "0042_b.sql"], "0043_next.sql"),
        (["999_a.sql"], "1000_next.sql"),
        (["002_a.sql", "010_b.sql", "1000_c.sql"], "1001_next.sql"),  # numeric, not string, order
        (["004_a.sql", "005_b.down.sql"], "006_next.sql"),  # a down file's number is taken too
        (["007_BadName.sql", "README.md", ".gitkeep"], "008_next.sql"),  # an invalid name still holds its number
    ],
)
def test_next_number(scaffold, tmp_path, existing, expected):
    write_files(tmp_path / "migrations", {name: "-- x\n" for name in existing})
    result = scaffold("next")
    assert result.returncode == 0, result.output
    assert (tmp_path / "migrations" / expected).is_file()


def test_down_creates_the_matching_down_file(scaffold, tmp_path):
    write_files(tmp_path / "migrations", {"005_a.sql": "-- x\n"})
    result = scaffold("drop_legacy_column", "--down")
    assert result.returncode == 0, result.output
    directory = tmp_path / "migrations"
    assert names(directory) == ["005_a.sql", "006_drop_legacy_column.down.sql", "006_drop_legacy_column.sql"]
    assert f"Created {directory / '006_drop_legacy_column.sql'}" in result.stdout
    assert f"Created {directory / '006_drop_legacy_column.down.sql'}" in result.stdout
    down = (directory / "006_drop_legacy_column.down.sql").read_text()
    assert down.startswith(
        "-- Migration: 006_drop_legacy_column (down)\n-- Description: Reverts 006_drop_legacy_column\n"
    )
    assert "BEGIN;" in down and "COMMIT;" in down


@pytest.mark.parametrize(
    "description, suggestion",
    [
        ("AddGoals", "addgoals"),
        ("add goals table", "add_goals_table"),
        ("add-goals", "add_goals"),
        ("add__goals", "add_goals"),
        ("_add_goals", "add_goals"),
    ],
)
def test_description_must_be_snake_case(scaffold, tmp_path, description, suggestion):
    result = scaffold(description)
    assert result.returncode == 2
    assert f"invalid description {description!r}: use snake_case" in result.stderr
    assert f"(e.g. {suggestion})" in result.stderr
    assert not (tmp_path / "migrations").exists() or names(tmp_path / "migrations") == []


def test_author_falls_back_to_the_os_user(scaffold, tmp_path, monkeypatch):
    (tmp_path / "gitconfig").write_text("")
    monkeypatch.setenv("LOGNAME", "os_user_x")
    assert scaffold("a").returncode == 0
    assert "-- Author: os_user_x\n" in (tmp_path / "migrations" / "001_a.sql").read_text()


def test_scaffold_is_refused_by_apply_until_filled_in(scaffold, call, database, tmp_path):
    directory = tmp_path / "migrations"
    assert scaffold("add_goals_table", "--down").returncode == 0
    refused = call("apply_sql_migrations", migrations=directory)
    assert refused.returncode == 2
    assert "001_add_goals_table.sql: empty file" in refused.stderr
    assert database.tables() == set()

    up = directory / "001_add_goals_table.sql"
    up.write_text(up.read_text().replace("COMMIT;", "CREATE TABLE IF NOT EXISTS goals (id int);\n\nCOMMIT;"))
    down = directory / "001_add_goals_table.down.sql"
    down.write_text(down.read_text().replace("COMMIT;", "DROP TABLE IF EXISTS goals;\n\nCOMMIT;"))
    applied = call("apply_sql_migrations", migrations=directory)
    assert applied.returncode == 0, applied.output
    assert "goals" in database.tables()
    assert call("rollback_sql_migrations", migrations=directory).returncode == 0
    assert "goals" not in database.tables()


def test_subprocess_writes_into_sql_migrations_dir(manage, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "SELECT 1;")})
    result = manage("new_sql_migration", "add_index", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert f"Created {migrations_dir / '002_add_index.sql'}" in result.stdout
    assert result.stderr == ""
