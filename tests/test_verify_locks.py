"""verify_sql_migrations measures the locks each migration takes and the tables it rewrites."""

import json

from tests.conftest import migration, write_files


def test_verify_reports_locks_taken_rewrites_and_flags_access_exclusive_on_existing_tables(call, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_base.sql": migration(
                "001_base",
                "CREATE TABLE IF NOT EXISTS base (id int PRIMARY KEY, a int);\n"
                "CREATE TABLE IF NOT EXISTS other (id int PRIMARY KEY);",
            ),
            "002_note.sql": migration("002_note", "ALTER TABLE base ADD COLUMN IF NOT EXISTS note text;"),
            "003_retype.sql": migration("003_retype", "ALTER TABLE base ALTER COLUMN a TYPE bigint;"),
            "004_fk.sql": migration(
                "004_fk",
                "ALTER TABLE other ADD COLUMN IF NOT EXISTS base_id int;\n"
                "CREATE INDEX IF NOT EXISTS other_base_id ON other (base_id);",
            ),
            "005_idx.sql": migration(
                "005_idx", "CREATE INDEX CONCURRENTLY IF NOT EXISTS base_a ON base (a);", wrap=False
            ),
        },
    )
    seeds = migrations_dir.parent / "no-seeds"

    text = call("verify_sql_migrations", migrations=migrations_dir, seeds=seeds)
    report = json.loads(call("verify_sql_migrations", "--json", migrations=migrations_dir, seeds=seeds).stdout)

    assert text.returncode == 0, text.output
    checks = {m["name"]: m for m in report["migrations"]}
    new_tables = {(lock["relation"], lock["existed"]) for lock in checks["001_base"]["locks"]}
    assert ("public.base", False) in new_tables
    assert {"relation": "public.base", "mode": "AccessExclusiveLock", "existed": True, "kind": "r"} in checks[
        "002_note"
    ]["locks"]
    assert checks["002_note"]["rewritten"] == []
    assert "public.base" in checks["003_retype"]["rewritten"]
    assert {(lock["relation"], lock["mode"]) for lock in checks["004_fk"]["locks"]} >= {
        ("public.other", "AccessExclusiveLock"),
        ("public.other", "ShareLock"),
    }
    assert checks["005_idx"]["locks"] is None  # outside a transaction: not measured
    assert "locks: public.base ACCESS EXCLUSIVE" in text.stdout
    assert "public.base: ACCESS EXCLUSIVE on an existing table" in text.stdout
    assert "rewrote: public.base" in text.stdout


def test_access_exclusive_on_an_existing_partitioned_table_is_flagged(call, migrations_dir):
    """A partitioned table has no storage of its own; it existed all the same, and an ALTER blocks it."""
    write_files(
        migrations_dir,
        {
            "001_events.sql": migration(
                "001_events",
                "CREATE TABLE IF NOT EXISTS events (id int, at date) PARTITION BY RANGE (at);\n"
                "CREATE TABLE IF NOT EXISTS events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');",
            ),
            "002_note.sql": migration("002_note", "ALTER TABLE events ADD COLUMN IF NOT EXISTS note text;"),
        },
    )
    seeds = migrations_dir.parent / "no-seeds"
    report = json.loads(call("verify_sql_migrations", "--json", migrations=migrations_dir, seeds=seeds).stdout)
    note = {m["name"]: m for m in report["migrations"]}["002_note"]
    assert {"relation": "public.events", "mode": "AccessExclusiveLock", "existed": True, "kind": "p"} in note["locks"]
    text = call("verify_sql_migrations", migrations=migrations_dir, seeds=seeds)
    assert "public.events: ACCESS EXCLUSIVE on an existing table" in text.stdout, text.output
