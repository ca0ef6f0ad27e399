"""sql_migration_status in every state, as text, JSON and a CI gate."""

import json

from tests.conftest import migration, write_files


def setup_states(call, database, migrations_dir):
    write_files(
        migrations_dir, {f"00{i}_m{i}.sql": migration(f"00{i}_m{i}", f"CREATE TABLE t{i} (id int);") for i in (1, 2, 4)}
    )
    call("apply_sql_migrations", migrations=migrations_dir)
    write_files(
        migrations_dir,
        {
            "001_m1.sql": migration("001_m1", "CREATE TABLE t1 (id int);\n-- edited after applying"),
            "003_m3.sql": migration("003_m3", "CREATE TABLE t3 (id int);"),
            "005_m5.sql": migration("005_m5", "CREATE TABLE t5 (id int);"),
        },
    )
    (migrations_dir / "002_m2.sql").unlink()


def test_status_text_shows_every_state(call, database, migrations_dir):
    setup_states(call, database, migrations_dir)
    result = call("sql_migration_status", migrations=migrations_dir)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("MODIFIED  001_m1")
    assert lines[1].startswith("MISSING   002_m2")
    assert lines[2].startswith("PENDING   003_m3") and lines[2].endswith("(out of order)")
    assert lines[3].startswith("APPLIED   004_m4") and lines[3][-19:-15] == lines[3][-19:-15]
    assert lines[4].startswith("PENDING   005_m5") and "out of order" not in lines[4]
    assert lines[5] == "1 applied, 2 pending, 1 modified, 1 missing"


def test_status_json_and_check(call, database, migrations_dir):
    setup_states(call, database, migrations_dir)
    result = call("sql_migration_status", "--json", migrations=migrations_dir)
    data = json.loads(result.stdout)
    states = {m["version"]: m["state"] for m in data["migrations"]}
    assert states == {"001": "modified", "002": "missing", "003": "pending", "004": "applied", "005": "pending"}
    assert data["summary"] == {
        "applied": 1,
        "pending": 2,
        "modified": 1,
        "missing": 1,
        "replaced": 0,
        "invalid": 0,
        "partial": 0,
    }
    applied = next(m for m in data["migrations"] if m["version"] == "004")
    assert applied["applied_at"] and applied["checksum"] == applied["applied_checksum"]
    check = call("sql_migration_status", "--check", migrations=migrations_dir)
    assert check.returncode == 1
    assert "not up to date: 2 pending, 1 modified, 1 missing" in check.stderr


def test_check_passes_when_up_to_date_and_status_never_creates_the_ledger(call, database, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE a (id int);")})
    pending = call("sql_migration_status", "--check", migrations=migrations_dir)
    assert pending.returncode == 1 and "PENDING   001_a" in pending.stdout
    assert database.tables() == set()
    call("apply_sql_migrations", migrations=migrations_dir)
    assert call("sql_migration_status", "--check", migrations=migrations_dir).returncode == 0


def test_wrapper_forms_are_recognised(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_a.sql": "START TRANSACTION;\nCREATE TABLE a (id int);\nEND;\n",
            "002_b.sql": "begin;\nCREATE TABLE b (id int);\ncommit;\n",
            "003_c.sql": "CREATE TABLE c (id int);\n",
        },
    )
    plan = call("apply_sql_migrations", "--plan", migrations=migrations_dir)
    assert plan.stdout.count("(one transaction, 1 statement(s))") == 3
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    assert database.versions() == ["001", "002", "003"]
