"""GitHub Actions annotations: escaping, and the apply command pointing at the failing line."""

from __future__ import annotations

import io

import pytest

from dbmigrations import annotations
from tests.conftest import migration, write_files


def test_message_and_property_escaping_follow_githubs_rules():
    assert annotations.escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert annotations.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    line = annotations.format_annotation("/nowhere/x.sql", 3, 7, 'bad "thing"\nHINT: 50%', title="Invalid: x, y")
    assert line == '::error file=/nowhere/x.sql,line=3,col=7,title=Invalid%3A x%2C y::bad "thing"%0AHINT: 50%25'


def test_annotation_without_position_or_file():
    assert annotations.format_annotation("/nowhere/a.sql", None, 4, "m") == "::error file=/nowhere/a.sql::m"
    assert annotations.format_annotation(None, None, None, "m", level="warning") == "::warning::m"
    with pytest.raises(ValueError):
        annotations.format_annotation(None, None, None, "m", level="fatal")


def test_annotate_writes_one_line_and_paths_are_relative_to_the_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    stream = io.StringIO()
    annotations.annotate(stream, tmp_path / "migrations" / "001_a.sql", 2, 1, "oops", level="notice", title="T")
    assert stream.getvalue() == "::notice file=migrations/001_a.sql,line=2,col=1,title=T::oops\n"


@pytest.mark.parametrize("value, expected", [("true", True), ("TRUE", True), ("", False), ("1", False), (None, False)])
def test_enabled_only_when_github_actions_is_true(value, expected):
    assert annotations.enabled({} if value is None else {"GITHUB_ACTIONS": value}) is expected


def test_failed_migration_is_annotated_on_its_line(call, database, tmp_path):
    write_files(
        tmp_path / "migrations",
        {
            "001_ok.sql": migration("001_ok", "CREATE TABLE ok_t (id int);"),
            "002_broken.sql": migration("002_broken", "CREATE TABLE broken_t (id int);\nSELECT * FROM no_such_table;"),
        },
    )
    env = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path)}
    result = call("apply_sql_migrations", migrations=tmp_path / "migrations", env=env)
    assert result.returncode == 1, result.output
    expected = (
        "::error file=migrations/002_broken.sql,line=9,col=15,title=SQL failed (002_broken.sql)"
        '::ERROR 42P01: relation "no_such_table" does not exist'
    )
    lines = result.stdout.splitlines()
    assert "Applying 002_broken … FAILED" in lines  # the open progress line is closed first
    assert expected in lines  # a workflow command must start its own line
    assert "002_broken.sql:9:15" in result.stderr  # the usual error is still there
    assert database.versions() == ["001"]


def test_invalid_files_are_annotated_one_line_each(call, database, tmp_path):
    write_files(
        tmp_path / "migrations",
        {
            "001_ok.sql": migration("001_ok", "CREATE TABLE ok_t (id int);"),
            "002_typo.sql": migration("002_typo", "CREATE TABLE t (id int);\nCREAT TABLE u (id int);"),
            "003_Bad.sql": migration("003_Bad", "CREATE TABLE v (id int);"),
        },
    )
    env = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path)}
    result = call("apply_sql_migrations", migrations=tmp_path / "migrations", env=env)
    assert result.returncode == 2, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    assert len(lines) == 2, result.stdout
    assert any(
        line.startswith("::error file=migrations/002_typo.sql,line=9,col=1,title=Invalid SQL file (002_typo.sql)::")
        for line in lines
    ), lines
    assert any(
        line.startswith("::error file=migrations/003_Bad.sql,title=Invalid SQL file (003_Bad.sql)::") for line in lines
    ), lines
    assert database.versions() == []


def test_no_annotations_outside_github_actions(call, tmp_path):
    write_files(tmp_path / "migrations", {"001_broken.sql": migration("001_broken", "SELECT * FROM nope;")})
    result = call("apply_sql_migrations", migrations=tmp_path / "migrations")
    assert result.returncode == 1
    assert "::error" not in result.output


def test_lint_findings_are_annotated_with_their_severity(call, tmp_path):
    write_files(tmp_path / "migrations", {"001_t.sql": "CREATE TABLE t (id int);\n"})
    env = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path)}
    result = call(
        "lint_sql_migrations", "--no-squawk", migrations=tmp_path / "migrations", seeds=tmp_path / "seeds", env=env
    )
    assert result.returncode == 1, result.output
    lines = result.stdout.splitlines()
    assert (
        "::error file=migrations/001_t.sql,line=1,col=1,title=L005 non-idempotent-create"
        "::CREATE TABLE t without IF NOT EXISTS"
    ) in lines
    assert sum(line.startswith("::error ") for line in lines) == 5  # one per finding, after its text line


def test_verify_findings_are_annotated_on_the_failing_line(call, tmp_path):
    write_files(tmp_path / "migrations", {"001_t.sql": migration("001_t", "CREATE TABLE t (id int);")})
    env = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path)}
    result = call("verify_sql_migrations", "--skip-seeds", migrations=tmp_path / "migrations", env=env)
    assert result.returncode == 1, result.output
    annotations_ = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    assert len(annotations_) == 1, result.stdout
    assert annotations_[0].startswith("::error file=migrations/001_t.sql,line=8,col=1,title=verify%3A ")
    assert annotations_[0].endswith('::second run failed: ERROR 42P07: relation "t" already exists')
