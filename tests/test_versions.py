"""Files and versions: the ledger never says a file ran when its SQL did not.

A version reused after a branch switch ("replaced"), the scaffold's numbering
against the ledger, ``--target`` naming nothing, and rows recorded by ``--fake``.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import migration, write_files

TMP = migration("002_tmp_table", "CREATE TABLE tmp (id int);")
TAGS = migration("002_add_client_tags", "CREATE TABLE client_tags (id int);")


def ledger(database, version):
    return database.query("SELECT filename, checksum FROM schema_migrations WHERE version = %s", (version,))


@pytest.fixture
def branch_switched(call, database, migrations_dir):
    """002 applied from 002_tmp_table.sql on a branch; back on main that file is gone."""
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE a (id int);"),
            "002_tmp_table.sql": TMP,
            "002_tmp_table.down.sql": "DROP TABLE tmp;\n",
        },
    )
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    (migrations_dir / "002_tmp_table.sql").unlink()
    (migrations_dir / "002_tmp_table.down.sql").unlink()
    return migrations_dir


def test_new_migration_skips_versions_the_ledger_knows(call, branch_switched):
    result = call("new_sql_migration", "add_client_tags", migrations=branch_switched)
    assert result.returncode == 0, result.output
    assert (branch_switched / "003_add_client_tags.sql").is_file()
    assert not (branch_switched / "002_add_client_tags.sql").exists()


def test_new_migration_numbers_from_disk_when_the_database_is_unreachable_and_says_so(manage, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE a (id int);")})
    result = manage(
        "new_sql_migration",
        "add_b",
        migrations=migrations_dir,
        database_url="postgresql://alice:s3cret-pw@127.0.0.1:1/nowhere",
    )
    assert result.returncode == 0, result.output
    assert (migrations_dir / "002_add_b.sql").is_file()
    assert "numbered from the files on disk only" in result.stderr
    assert "s3cret-pw" not in result.output


def test_new_migration_does_not_start_the_embedded_server(manage, migrations_dir, tmp_path):
    result = manage("new_sql_migration", "add_b", migrations=migrations_dir, database_url=None)
    assert result.returncode == 0, result.output
    assert (migrations_dir / "001_add_b.sql").is_file()
    assert "numbered from the files on disk only" in result.stderr and "not running" in result.stderr
    assert not (tmp_path / "embedded-pgdata").exists()


def test_a_different_file_under_an_applied_version_is_replaced_never_recorded(call, database, branch_switched):
    write_files(branch_switched, {"002_add_client_tags.sql": TAGS})
    recorded = ledger(database, "002")

    status = call("sql_migration_status", migrations=branch_switched)
    line = next(line for line in status.stdout.splitlines() if "002" in line)
    assert line.startswith("REPLACED  002_add_client_tags") and "002_tmp_table.sql" in line, status.stdout
    data = json.loads(call("sql_migration_status", "--json", migrations=branch_switched).stdout)
    entry = next(m for m in data["migrations"] if m["version"] == "002")
    assert entry["state"] == "replaced" and entry["applied_filename"] == "002_tmp_table.sql"
    assert entry["file"].endswith("002_add_client_tags.sql")
    assert data["summary"]["replaced"] == 1
    check = call("sql_migration_status", "--check", migrations=branch_switched)
    assert check.returncode == 1 and "1 replaced" in check.stderr

    apply = call("apply_sql_migrations", migrations=branch_switched)
    assert apply.returncode == 2
    assert "002_add_client_tags.sql" in apply.stderr and "002_tmp_table.sql" in apply.stderr
    assert "003_add_client_tags.sql" in apply.stderr  # the free version to renumber to
    assert "--adopt-replaced 002" in apply.stderr
    assert "client_tags" not in database.tables()

    repair = call("repair_sql_migrations", migrations=branch_switched)
    assert repair.returncode == 0
    assert "--adopt-replaced 002" in repair.stderr and "Nothing to repair." in repair.stdout
    assert ledger(database, "002") == recorded
    assert call("sql_migration_status", "--check", migrations=branch_switched).returncode == 1

    adopt = call("repair_sql_migrations", "--adopt-replaced", "002", migrations=branch_switched)
    assert adopt.returncode == 0, adopt.output
    assert "without running its SQL" in adopt.stdout
    assert database.query("SELECT filename, fake FROM schema_migrations WHERE version = '002'") == [
        ("002_add_client_tags.sql", True)
    ]
    assert "client_tags" not in database.tables()
    status = call("sql_migration_status", "--check", migrations=branch_switched)
    assert status.returncode == 0, status.output
    assert "(fake)" in next(line for line in status.stdout.splitlines() if "002" in line)


def test_adopt_replaced_refuses_a_version_that_is_not_replaced(call, database, branch_switched):
    write_files(branch_switched, {"002_add_client_tags.sql": TAGS})
    result = call("repair_sql_migrations", "--adopt-replaced", "001", migrations=branch_switched)
    assert result.returncode == 2 and "001" in result.stderr and "not replaced" in result.stderr
    assert ledger(database, "002")[0][0] == "002_tmp_table.sql"


def test_a_renamed_file_with_the_same_sql_is_still_applied(call, database, branch_switched):
    write_files(branch_switched, {"002_temp_table.sql": TMP})
    status = call("sql_migration_status", "--check", migrations=branch_switched)
    assert status.returncode == 0, status.output


def test_rollback_of_a_replaced_version_is_refused(call, database, branch_switched):
    write_files(
        branch_switched, {"002_add_client_tags.sql": TAGS, "002_add_client_tags.down.sql": "DROP TABLE client_tags;\n"}
    )
    result = call("rollback_sql_migrations", migrations=branch_switched)
    assert result.returncode == 2
    assert "002_add_client_tags.sql" in result.stderr and "002_tmp_table.sql" in result.stderr
    assert "tmp" in database.tables() and database.versions() == ["001", "002"]


def test_replaced_is_a_system_check_warning(call, database, tmp_path):
    migrations = write_files(
        tmp_path / "m",
        {
            "001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);"),
            "002_tmp_table.sql": migration("002_tmp_table", "CREATE TABLE IF NOT EXISTS tmp (id int);"),
        },
    )
    assert call("apply_sql_migrations", migrations=migrations).returncode == 0
    (migrations / "002_tmp_table.sql").unlink()
    write_files(
        migrations,
        {
            "002_add_client_tags.sql": migration(
                "002_add_client_tags", "CREATE TABLE IF NOT EXISTS client_tags (id int);"
            )
        },
    )
    result = call("check", "--database", "default", migrations=migrations, seeds=tmp_path / "seeds")
    assert result.returncode == 0, result.output
    assert "002_add_client_tags.sql: (dbmigrations.W005)" in result.stderr
    assert (
        "002_tmp_table.sql" in result.stderr
        and "repair_sql_migrations" not in result.stderr.split("W005")[1].split("HINT")[0]
    )


def test_target_that_names_no_version_is_refused(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE a (id int);"),
            "010_b.sql": migration("010_b", "CREATE TABLE b (id int);"),
        },
    )
    result = call("apply_sql_migrations", "--target", "5", migrations=migrations_dir)
    assert result.returncode == 2
    assert "--target 5: no migration file or ledger row has that version" in result.stderr
    assert database.tables() == set()
    plan = call("apply_sql_migrations", "--plan", "--target", "5", migrations=migrations_dir)
    assert plan.returncode == 2
    assert call("apply_sql_migrations", "--target", "1", migrations=migrations_dir).returncode == 0
    assert call("apply_sql_migrations", "--target", "001", migrations=migrations_dir).returncode == 0
    assert database.versions() == ["001"]


def test_fake_rows_are_marked_in_the_ledger_and_status(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE a (id int);"),
            "002_b.sql": migration("002_b", "CREATE TABLE b (id int);"),
        },
    )
    call("apply_sql_migrations", "--target", "1", migrations=migrations_dir)
    assert call("apply_sql_migrations", "--fake", migrations=migrations_dir).returncode == 0
    assert database.query("SELECT version, fake FROM schema_migrations ORDER BY version") == [
        ("001", False),
        ("002", True),
    ]
    lines = call("sql_migration_status", migrations=migrations_dir).stdout.splitlines()
    assert "(fake)" not in lines[0] and lines[1].startswith("APPLIED") and "(fake)" in lines[1]
    data = json.loads(call("sql_migration_status", "--json", migrations=migrations_dir).stdout)
    assert [m["fake"] for m in data["migrations"]] == [False, True]


def test_a_ledger_from_before_the_fake_column_is_read_and_upgraded(call, database, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE a (id int);")})
    call("apply_sql_migrations", migrations=migrations_dir)
    database.query("ALTER TABLE schema_migrations DROP COLUMN fake")
    (migrations_dir / "001_a.sql").unlink()
    write_files(migrations_dir, {"001_b.sql": migration("001_b", "CREATE TABLE b (id int);")})
    status = call("sql_migration_status", migrations=migrations_dir)
    assert status.stdout.startswith("REPLACED"), status.output  # the file name is still read
    (migrations_dir / "001_b.sql").unlink()
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE a (id int);"),
            "002_c.sql": migration("002_c", "CREATE TABLE c (id int);"),
        },
    )
    assert call("apply_sql_migrations", "--fake", migrations=migrations_dir).returncode == 0
    assert database.query("SELECT version, fake FROM schema_migrations ORDER BY version") == [
        ("001", False),
        ("002", True),
    ]


def test_schema_check_refuses_to_build_from_a_file_that_never_ran(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);"),
            "002_tmp_table.sql": migration("002_tmp_table", "CREATE TABLE IF NOT EXISTS tmp (id int);"),
        },
    )
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    (migrations_dir / "002_tmp_table.sql").unlink()
    write_files(migrations_dir, {"002_add_client_tags.sql": TAGS})
    result = call("check_sql_schema", migrations=migrations_dir)
    assert result.returncode == 2, result.output
    assert "002_tmp_table.sql" in result.stderr and "002_add_client_tags.sql" in result.stderr
