"""Files the runner cannot run faithfully are refused before anything runs, naming file and line;
``sql_migration_status`` shows them as INVALID beside the other rows instead of failing wholesale."""

from __future__ import annotations

import json

import pytest

from tests.conftest import migration, write_files

A = migration("001_a", "CREATE TABLE a (id int);")


@pytest.mark.parametrize(
    "content, where, words",
    [
        # PostgreSQL reads a query string up to its first NUL: the rest would silently never run.
        (b"CREATE TABLE b1 (id int);\n\x00\nCREATE TABLE b2 (id int);\n", "002_b.sql:2:1", "NUL byte"),
        (b"-- header\rCREATE TABLE b1 (id int);\rCREATE TABLE b2 (id int);\r", "002_b.sql:1:10", "carriage return"),
        (
            b"CREATE TABLE b1 (id int, name text);\nCOPY b1 (id, name) FROM stdin;\n1\tfoo\n2\tbar\n\\.\n",
            "002_b.sql:2:1",
            "COPY",
        ),
    ],
)
def test_content_the_runner_cannot_send_faithfully_is_refused(call, database, migrations_dir, content, where, words):
    write_files(migrations_dir, {"001_a.sql": A, "002_b.sql": content})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2, result.output
    assert where in result.stderr and words in result.stderr
    assert database.tables() == set()


def test_copy_from_stdin_with_data_says_it_needs_psql(call, database, migrations_dir):
    write_files(
        migrations_dir, {"001_a.sql": "BEGIN;\nCREATE TABLE b (id int);\nCOPY b FROM STDIN;\n7\n\\.\nCOMMIT;\n"}
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2
    assert "001_a.sql:3:1: COPY … FROM STDIN needs psql" in result.stderr and "INSERT" in result.stderr


def test_an_upper_case_extension_is_an_invalid_name_not_ignored(call, database, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": A, "002_b.SQL": migration("002_b", "CREATE TABLE b (id int);")})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2
    assert "002_b.SQL: invalid file name" in result.stderr and ".sql" in result.stderr
    assert database.tables() == set()


def test_status_shows_invalid_files_beside_the_other_rows(call, database, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": A, "002_b.sql": migration("002_b", "CREATE TABLE b (id int);")})
    call("apply_sql_migrations", migrations=migrations_dir)
    write_files(
        migrations_dir,
        {
            "002_b.sql": b"-- caf\xe9\nCREATE TABLE b (id int);\n",  # applied, then saved as Latin-1
            "003_broken.sql": "-- header\nCREATE TABLE (;\n",
            "004_c.sql": migration("004_c", "CREATE TABLE c (id int);"),
            "005_AddUsers.sql": "CREATE TABLE u (id int);\n",
        },
    )
    result = call("sql_migration_status", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("APPLIED   001_a")
    assert lines[1].startswith("INVALID   002_b") and "002_b.sql:1: not valid UTF-8" in lines[1]
    assert lines[2].startswith("INVALID   003_broken") and "003_broken.sql:2:14: syntax error" in lines[2]
    assert lines[3].startswith("PENDING   004_c")
    assert lines[4].startswith("INVALID   005_AddUsers") and "invalid file name" in lines[4]
    assert lines[5] == "1 applied, 1 pending, 0 modified, 0 missing, 3 invalid"

    data = json.loads(call("sql_migration_status", "--json", migrations=migrations_dir).stdout)
    broken = next(m for m in data["migrations"] if m["name"] == "003_broken")
    assert broken["state"] == "invalid"
    assert broken["problems"] == [
        {
            "file": str(migrations_dir / "003_broken.sql"),
            "line": 2,
            "column": 14,
            "message": broken["problems"][0]["message"],
        }
    ]
    assert "syntax error" in broken["problems"][0]["message"]
    applied_then_broken = next(m for m in data["migrations"] if m["version"] == "002")
    assert applied_then_broken["state"] == "invalid" and applied_then_broken["applied_at"]
    assert data["summary"]["invalid"] == 3

    check = call("sql_migration_status", "--check", migrations=migrations_dir)
    assert check.returncode == 1 and "3 invalid" in check.stderr


def test_a_deeply_nested_expression_psql_runs_is_applied_and_linted(call, database, migrations_dir):
    """700 concatenations nest libpg_query's tree 1400 levels deep, past orjson's 1024: it was a traceback."""
    concatenated = " || ".join(["'a'"] * 700)
    body = f"CREATE TABLE deep (v text);\nINSERT INTO deep VALUES ({concatenated});"
    write_files(migrations_dir, {"001_deep.sql": migration("001_deep", body)})

    applied = call("apply_sql_migrations", migrations=migrations_dir)
    linted = call("lint_sql_migrations", str(migrations_dir / "001_deep.sql"), "--no-cache", "--format", "json")

    assert applied.returncode == 0, applied.output
    assert database.versions() == ["001"]
    assert database.query("SELECT length(v) FROM deep") == [(700,)]
    assert "Traceback" not in linted.output
    assert json.loads(linted.stdout)["summary"]["files"] == 1
