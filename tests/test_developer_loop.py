"""Editing one's own just-applied migration: a way back that never records SQL that did not run.

``rollback_sql_migrations --allow-modified`` rolls back the newest migration with its
current down file although its up file changed (outside production only); every
refusal (drift, missing, replaced) names the ways out.
"""

from __future__ import annotations

import pytest

from tests.conftest import migration, write_files

A = migration("001_a", "CREATE TABLE a (id int);")
MINE = migration("002_mine", "CREATE TABLE mine (id int);")
MINE_EDITED = migration("002_mine", "CREATE TABLE mine (id int, label text);")
MINE_DOWN = "DROP TABLE IF EXISTS mine;\n"


def columns(database, table):
    return [
        r[0]
        for r in database.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        )
    ]


@pytest.fixture
def edited(call, database, migrations_dir):
    """002_mine applied, then edited by its author (not merged anywhere)."""
    write_files(migrations_dir, {"001_a.sql": A, "002_mine.sql": MINE, "002_mine.down.sql": MINE_DOWN})
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    write_files(migrations_dir, {"002_mine.sql": MINE_EDITED})
    return migrations_dir


def test_refusals_name_the_ways_out(call, database, edited):
    apply = call("apply_sql_migrations", migrations=edited)
    assert apply.returncode == 2
    assert "rollback_sql_migrations --allow-modified" in apply.stderr and "repair_sql_migrations" in apply.stderr
    rollback = call("rollback_sql_migrations", migrations=edited)
    assert rollback.returncode == 2
    assert "--allow-modified" in rollback.stderr and "git" in rollback.stderr
    assert database.versions() == ["001", "002"]


def test_allow_modified_rolls_back_the_newest_then_apply_runs_the_edited_file(call, database, edited):
    result = call("rollback_sql_migrations", "--allow-modified", migrations=edited)
    assert result.returncode == 0, result.output
    assert database.versions() == ["001"] and "mine" not in database.tables()
    assert call("apply_sql_migrations", migrations=edited).returncode == 0
    assert columns(database, "mine") == ["id", "label"]
    assert call("sql_migration_status", "--check", migrations=edited).returncode == 0


def test_allow_modified_never_rolls_back_an_older_modified_migration(call, database, edited):
    write_files(
        edited, {"003_b.sql": migration("003_b", "CREATE TABLE b (id int);"), "003_b.down.sql": "DROP TABLE b;\n"}
    )
    call("apply_sql_migrations", "--fake", migrations=edited)  # 002 drifted: refused, nothing applied
    assert database.versions() == ["001", "002"]
    write_files(edited, {"002_mine.sql": MINE})
    assert call("apply_sql_migrations", migrations=edited).returncode == 0
    write_files(edited, {"002_mine.sql": MINE_EDITED})
    result = call("rollback_sql_migrations", "--steps", "2", "--allow-modified", migrations=edited)
    assert result.returncode == 2
    assert "002_mine.sql" in result.stderr and "newest" in result.stderr
    assert database.versions() == ["001", "002", "003"]


def test_allow_modified_is_refused_in_production(manage, call, database, edited):
    result = manage(
        "rollback_sql_migrations",
        "--allow-modified",
        "--allow-production",
        migrations=edited,
        env={"VERCEL_ENV": "Production"},
    )
    assert result.returncode == 2
    assert "--allow-modified refused in production (VERCEL_ENV=Production)" in result.stderr
    assert database.versions() == ["001", "002"] and "mine" in database.tables()


def test_missing_file_refusal_names_the_ways_out(call, database, edited):
    write_files(edited, {"002_mine.sql": MINE})
    (edited / "002_mine.sql").unlink()
    (edited / "002_mine.down.sql").unlink()
    result = call("rollback_sql_migrations", migrations=edited)
    assert result.returncode == 2
    assert "restore" in result.stderr.lower() and "--forget-missing" in result.stderr
