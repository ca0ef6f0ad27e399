"""The loader: one folder rule for every command, and rollbacks that parse only what they run."""

import pytest

from tests.conftest import migration, write_files


@pytest.mark.parametrize(
    "command",
    [
        ("lint_sql_migrations", "--no-squawk"),
        ("verify_sql_migrations", "--skip-seeds"),
        ("rollback_sql_migrations",),
        ("repair_sql_migrations",),
        ("sql_migration_status", "--check"),
        ("apply_sql_migrations",),
    ],
)
def test_a_mistyped_migrations_folder_fails_every_command(call, database, tmp_path, command):
    typo = tmp_path / "migratoins"
    result = call(*command, migrations=typo)
    assert result.returncode == 2, result.output
    assert f"the migrations folder {typo} does not exist (SQL_MIGRATIONS_DIR)" in result.stderr
    assert "Traceback" not in result.output
    assert database.tables() == set()  # nothing created, not even the ledger


def test_a_mistyped_migrations_folder_is_a_system_check_error(call, tmp_path):
    typo = tmp_path / "migratoins"
    result = call("check", migrations=typo)
    assert result.returncode == 1, result.output
    assert "dbmigrations.E010" in result.stderr and str(typo) in result.stderr


def test_a_relative_folder_is_reported_with_the_absolute_path_tried(manage, tmp_path):
    result = manage("apply_sql_migrations", migrations="no_such_folder")
    assert result.returncode == 2, result.output
    # The message names an absolute path, whatever the folder was resolved against.
    assert "the migrations folder /" in result.stderr and "no_such_folder does not exist" in result.stderr


@pytest.mark.parametrize(
    "old_down",
    [
        "",  # empty
        "-- Not reversible\n",  # comment-only
        "DROP TABLE a CASCAD;\n",  # does not parse
    ],
)
def test_rollback_of_the_newest_ignores_an_unrelated_old_down_file(call, database, migrations_dir, old_down):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE a (id int);"),
            "001_a.down.sql": old_down,
            "002_b.sql": migration("002_b", "CREATE TABLE b (id int);"),
            "002_b.down.sql": "DROP TABLE b;\n",
        },
    )
    # The broken old down file must not even block applying: it is not run.
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    result = call("rollback_sql_migrations", "--steps", "1", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert "Rolled back 1" in result.stdout
    assert database.versions() == ["001"]
    assert "b" not in database.tables() and "a" in database.tables()


def test_rollback_still_refuses_the_down_file_it_would_run(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE a (id int);"),
            "001_a.down.sql": "-- Not reversible\n",
        },
    )
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    result = call("rollback_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2, result.output
    assert "001_a.down.sql" in result.stderr and "empty file" in result.stderr
    assert database.versions() == ["001"] and "a" in database.tables()


def test_rollback_checks_every_up_file_name(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE a (id int);"),
            "001_a.down.sql": "DROP TABLE a;\n",
        },
    )
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    write_files(migrations_dir, {"2_Bad.sql": "SELECT 1;\n"})
    result = call("rollback_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2 and "2_Bad.sql" in result.stderr and "invalid file name" in result.stderr
    assert database.versions() == ["001"]
