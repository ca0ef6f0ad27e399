"""verify_sql_migrations: idempotency, reversibility and seed idempotency proved on a scratch database."""

import dataclasses
import json
import re
import signal
import time
import uuid

import pytest
from psycopg import sql

from tests.conftest import (
    SHIPPED_MIGRATIONS,
    SHIPPED_SEEDS,
    clean_env,
    migration,
    spawn_manage,
    write_files,
)

BASE = migration("001_base", "CREATE TABLE IF NOT EXISTS base (id serial PRIMARY KEY, a int);")


def scratch_name(output: str) -> str:
    match = re.search(r"Scratch database: (verify_[0-9a-f]{12})\b", output)
    assert match, output
    return match.group(1)


def assert_dropped(pg_server, name: str) -> None:
    with pg_server.connect() as admin:
        left = [r[0] for r in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'verify\\_%'")]
    assert name not in left


def verify_json(call, pg_server, migrations, seeds=None, *extra):
    result = call(
        "verify_sql_migrations",
        "--json",
        *extra,
        migrations=migrations,
        seeds=seeds if seeds is not None else migrations.parent / "no-seeds",
    )
    report = json.loads(result.stdout)
    assert_dropped(pg_server, report["database"])
    assert scratch_name(result.stderr) == report["database"]
    return result, report


def by_name(report) -> dict:
    return {m["name"]: m for m in report["migrations"]}


def test_shipped_files_pass(manage, database, pg_server):
    result = manage("verify_sql_migrations", migrations=SHIPPED_MIGRATIONS, seeds=SHIPPED_SEEDS)
    assert result.returncode == 0, result.output
    for name in (
        "001_initial_schema",
        "002_add_workouts_table",
        "003_add_recommendation_jobs_table",
        "004_add_status_to_recommendations",
        "005_add_index_to_questionnaires",
    ):
        assert re.search(rf"{name}\s+idempotent: yes, reversible: yes\n", result.stdout), result.stdout
    assert re.search(r"001_seed_admin_users\s+rows changed: first run 2, second run 0\n", result.stdout)
    assert re.search(r"002_seed_sample_clients\s+rows changed: first run \d+, second run 0\n", result.stdout)
    assert "5 migration(s) and 2 seed(s) verified" in result.stdout
    assert_dropped(pg_server, scratch_name(result.stderr))
    assert database.tables() == set()  # the configured database itself is never touched


def test_shipped_files_json(call, pg_server):
    result, report = verify_json(call, pg_server, SHIPPED_MIGRATIONS, SHIPPED_SEEDS)
    assert result.returncode == 0, result.output
    assert report["ok"] is True and report["problems"] == 0 and report["stopped"] is None
    assert [(m["idempotent"], m["reversible"], m["findings"]) for m in report["migrations"]] == [(True, True, [])] * 5
    seeds = {s["name"]: s for s in report["seeds"]}
    assert seeds["001_seed_admin_users"]["rows_first"] == 2
    assert seeds["002_seed_sample_clients"]["rows_first"] > 0
    assert seeds["001_seed_admin_users"]["rows_second"] == 0


def test_create_table_without_if_not_exists_fails_second_run(call, pg_server, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_base.sql": BASE,
            "002_plain_create.sql": migration("002_plain_create", "CREATE TABLE plain (id int);"),
            "003_fine.sql": migration("003_fine", "CREATE INDEX IF NOT EXISTS idx_plain_id ON plain(id);"),
        },
    )
    result, report = verify_json(call, pg_server, migrations_dir)
    assert result.returncode == 1
    assert "verification failed: 1 problem(s)" in result.stderr
    bad = by_name(report)["002_plain_create"]
    assert bad["applied"] is True and bad["idempotent"] is False and bad["reversible"] is None
    [finding] = bad["findings"]
    assert finding["check"] == "second run failed"
    error = finding["failure"]
    assert error["path"].endswith("002_plain_create.sql") and error["line"] == 8 and error["sqlstate"] == "42P07"
    assert error["message"] == 'relation "plain" already exists'
    # The run went on: the next file was verified too.
    assert by_name(report)["003_fine"]["idempotent"] is True and report["stopped"] is None


def test_text_report_names_file_line_and_error(call, pg_server, migrations_dir):
    write_files(migrations_dir, {"001_plain.sql": migration("001_plain", "CREATE TABLE plain (id int);")})
    result = call("verify_sql_migrations", "--skip-seeds", migrations=migrations_dir)
    assert result.returncode == 1, result.output
    assert re.search(r"001_plain\s+idempotent: NO, reversible: no down file", result.stdout), result.stdout
    assert re.search(
        r"second run failed: \S*001_plain\.sql:8:1: ERROR 42P07: relation \"plain\" already exists", result.stdout
    ), result.stdout
    assert "verification failed: 1 problem(s)" in result.stderr
    assert_dropped(pg_server, scratch_name(result.stderr))


RANDOM_INDEX = """
DO $$
BEGIN
  EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON base(a)', 'idx_base_a_' || md5(clock_timestamp()::text));
END $$;
"""


def test_second_run_that_changes_the_schema_is_named(call, pg_server, migrations_dir):
    write_files(
        migrations_dir, {"001_base.sql": BASE, "002_random_index.sql": migration("002_random_index", RANDOM_INDEX)}
    )
    result, report = verify_json(call, pg_server, migrations_dir)
    assert result.returncode == 1
    bad = by_name(report)["002_random_index"]
    assert bad["idempotent"] is False
    [finding] = bad["findings"]
    assert finding["check"] == "second run changed the schema" and finding["failure"] is None
    [difference] = finding["differences"]
    assert re.fullmatch(r"index idx_base_a_[0-9a-f]{32} added", difference), difference
    assert by_name(report)["001_base"]["findings"] == []


def test_down_file_that_does_not_fully_reverse(call, pg_server, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_base.sql": BASE,
            "002_index_and_column.sql": migration(
                "002_index_and_column",
                """
            CREATE INDEX IF NOT EXISTS idx_base_a ON base(a);
            ALTER TABLE base ADD COLUMN IF NOT EXISTS note text;""",
            ),
            "002_index_and_column.down.sql": migration(
                "002_index_and_column", "ALTER TABLE base DROP COLUMN IF EXISTS note;"
            ),
        },
    )
    result, report = verify_json(call, pg_server, migrations_dir)
    assert result.returncode == 1
    bad = by_name(report)["002_index_and_column"]
    assert bad["idempotent"] is True and bad["reversible"] is False
    [finding] = bad["findings"]
    assert finding["check"].startswith("down file does not fully reverse the migration")
    assert finding["differences"] == ["index idx_base_a added"]


def test_failing_down_file_reported_with_line(call, pg_server, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_base.sql": BASE,
            "001_base.down.sql": migration("001_base", "DROP TABLE basee;"),
        },
    )
    result, report = verify_json(call, pg_server, migrations_dir)
    assert result.returncode == 1
    [check] = report["migrations"]
    assert check["idempotent"] is True and check["reversible"] is False
    [finding] = check["findings"]
    assert finding["check"] == "down file failed"
    assert finding["failure"]["path"].endswith("001_base.down.sql")
    assert (finding["failure"]["line"], finding["failure"]["sqlstate"]) == (8, "42P01")


def test_failing_first_apply_stops_and_still_drops(call, pg_server, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_base.sql": BASE,
            "002_broken.sql": migration(
                "002_broken", "CREATE TABLE IF NOT EXISTS child (base_id int REFERENCES nope(id));"
            ),
            "003_later.sql": migration("003_later", "CREATE TABLE IF NOT EXISTS later (id int);"),
        },
    )
    result = call("verify_sql_migrations", migrations=migrations_dir, seeds=migrations_dir.parent / "none")
    assert result.returncode == 1, result.output
    assert re.search(r"002_broken\s+FAILED", result.stdout)
    assert re.search(
        r"first run failed: \S*002_broken\.sql:8:\d+: ERROR 42P01: relation \"nope\" does not exist", result.stdout
    ), result.stdout
    assert "003_later" not in result.stdout
    assert "Stopped: 002_broken could not be applied; the files after it were not verified." in result.stdout
    assert "stopped early" in result.stderr
    assert_dropped(pg_server, scratch_name(result.stderr))


def test_non_idempotent_seed_reported(call, pg_server, migrations_dir, tmp_path):
    write_files(migrations_dir, {"001_base.sql": BASE})
    seeds = tmp_path / "seeds"
    write_files(
        seeds / "development",
        {
            "001_good.sql": "INSERT INTO base (id, a) VALUES (100, 1) ON CONFLICT (id) DO NOTHING;\n",
            "002_again.sql": "BEGIN;\nINSERT INTO base (a) VALUES (2), (3);\nCOMMIT;\n",
        },
    )
    result, report = verify_json(call, pg_server, migrations_dir, seeds)
    assert result.returncode == 1
    good, again = report["seeds"]
    assert (good["rows_first"], good["rows_second"], good["findings"]) == (1, 0, [])
    assert (again["rows_first"], again["rows_second"]) == (2, 2)
    assert again["findings"] == [
        {"check": "second run changed row counts", "differences": ["base: 3 → 5 rows"], "failure": None}
    ]


def test_non_transactional_migration_and_extra_schema(call, pg_server, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_base.sql": BASE,
            "002_concurrent_index.sql": migration(
                "002_concurrent_index", "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_base_a ON base(a);", wrap=False
            ),
            "002_concurrent_index.down.sql": migration(
                "002_concurrent_index", "DROP INDEX CONCURRENTLY IF EXISTS idx_base_a;", wrap=False
            ),
            "003_app_schema.sql": migration(
                "003_app_schema",
                """
            CREATE SCHEMA IF NOT EXISTS app;
            CREATE TABLE IF NOT EXISTS app.items (id int);""",
            ),
            "003_app_schema.down.sql": migration("003_app_schema", "DROP TABLE IF EXISTS app.items;"),
        },
    )
    result, report = verify_json(call, pg_server, migrations_dir)
    assert result.returncode == 1
    checks = by_name(report)
    assert checks["002_concurrent_index"]["findings"] == [] and checks["002_concurrent_index"]["reversible"] is True
    [finding] = checks["003_app_schema"]["findings"]
    assert finding["differences"] == ["schema app added"]


def test_invalid_files_refused_before_creating_anything(call, migrations_dir):
    write_files(migrations_dir, {"001_Bad.sql": BASE})
    result = call("verify_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2
    assert "001_Bad.sql: invalid file name" in result.stderr
    assert "Scratch database" not in result.output


def test_role_without_createdb_is_refused(call, database, pg_server, migrations_dir):
    write_files(migrations_dir, {"001_base.sql": BASE})
    role, password = f"nocreatedb_{uuid.uuid4().hex[:8]}", "s3cret-Pw"
    with pg_server.connect() as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )
    try:
        url = dataclasses.replace(pg_server, user=role, password=password).url(database.name)
        result = call("verify_sql_migrations", migrations=migrations_dir, database_url=url)
    finally:
        with pg_server.connect() as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert result.returncode == 2, result.output
    assert re.search(r"cannot create the scratch database verify_[0-9a-f]{12}: permission denied", result.stderr)
    assert "(the role needs CREATEDB)" in result.stderr
    assert password not in result.output


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_drops_scratch_database(database, pg_server, migrations_dir, signum):
    write_files(migrations_dir, {"001_sleep.sql": migration("001_sleep", "SELECT pg_sleep(60);")})
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    proc = spawn_manage("verify_sql_migrations", env=env)
    try:
        name = None
        for line in proc.stderr:
            if line.startswith("Scratch database:"):
                name = scratch_name(line)
                break
        assert name, proc.stderr.read()
        deadline = time.monotonic() + 30
        with pg_server.connect() as admin:
            while not admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND (query LIKE '%%pg_sleep%%' OR wait_event = 'PgSleep')",
                (name,),
            ).fetchone():
                assert time.monotonic() < deadline, "the migration never started"
                time.sleep(0.1)
        started = time.monotonic()
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - started < 20  # cancelled, not slept through
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted; the scratch database was dropped" in stderr
    assert_dropped(pg_server, name)


def test_failing_reapply_after_down_stops(call, pg_server, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_base.sql": BASE,
            "002_items.sql": migration(
                "002_items",
                """
            CREATE TABLE IF NOT EXISTS items (id int);
            CREATE INDEX IF NOT EXISTS idx_items_id ON items(id);""",
            ),
            "002_items.down.sql": migration("002_items", "DROP TABLE items;\nCREATE VIEW items AS SELECT 1 AS id;"),
            "003_later.sql": migration("003_later", "CREATE TABLE IF NOT EXISTS later (id int);"),
        },
    )
    result, report = verify_json(call, pg_server, migrations_dir)
    assert result.returncode == 1
    [_, items] = report["migrations"]  # 003 was not verified: the schema lacks 002
    assert items["idempotent"] is True and items["reversible"] is False
    down, reapply = items["findings"]
    assert down["differences"] == ["table items added", "column items.id added"]  # a view, where nothing was
    assert reapply["check"] == "re-applying after the down file failed"
    assert reapply["failure"]["path"].endswith("002_items.sql") and reapply["failure"]["line"] == 9
    assert report["stopped"] == "002_items could not be applied; the files after it were not verified"


def test_seed_failing_on_second_run(call, pg_server, migrations_dir, tmp_path):
    write_files(migrations_dir, {"001_base.sql": BASE})
    seeds = write_files(
        tmp_path / "seeds" / "development",
        {
            "001_plain_insert.sql": "-- Seed: 001_plain_insert\nINSERT INTO base (id, a) VALUES (7, 7);\n",
        },
    ).parent
    result, report = verify_json(call, pg_server, migrations_dir, seeds)
    assert result.returncode == 1
    [seed] = report["seeds"]
    assert (seed["rows_first"], seed["rows_second"]) == (1, None)
    [finding] = seed["findings"]
    assert finding["check"] == "second run failed"
    assert (finding["failure"]["line"], finding["failure"]["sqlstate"]) == (2, "23505")
    assert finding["failure"]["path"].endswith("001_plain_insert.sql")


def test_seed_failing_on_first_run_stops_the_seeds(call, pg_server, migrations_dir, tmp_path):
    write_files(migrations_dir, {"001_base.sql": BASE})
    seeds = write_files(
        tmp_path / "seeds" / "development",
        {
            "001_ok.sql": "INSERT INTO base (id, a) VALUES (1, 1) ON CONFLICT (id) DO NOTHING;\n",
            "002_typo.sql": "-- Seed: 002_typo\n\nINSERT INTO bsae (a) VALUES (2);\n",
            "003_never.sql": "INSERT INTO base (id, a) VALUES (3, 3) ON CONFLICT (id) DO NOTHING;\n",
        },
    ).parent
    result = call("verify_sql_migrations", migrations=migrations_dir, seeds=seeds)
    assert result.returncode == 1, result.output
    assert re.search(r"001_ok\s+rows changed: first run 1, second run -\n", result.stdout), result.stdout
    assert re.search(
        r"002_typo\s+rows changed: first run -, second run -\n\s+first run failed: \S*002_typo\.sql:3:13: "
        r"ERROR 42P01: relation \"bsae\" does not exist",
        result.stdout,
    ), result.stdout
    assert "003_never" not in result.stdout
    assert "Stopped: seed 002_typo failed on its first run; the seeds after it were not verified." in result.stdout
    assert_dropped(pg_server, scratch_name(result.stderr))


def test_migration_inserting_rows_again_is_not_idempotent(call, pg_server, migrations_dir):
    write_files(
        migrations_dir,
        {"001_base.sql": BASE, "002_data.sql": migration("002_data", "INSERT INTO base (a) VALUES (42);")},
    )
    result, report = verify_json(call, pg_server, migrations_dir)
    assert result.returncode == 1
    data = by_name(report)["002_data"]
    assert data["idempotent"] is False
    assert data["findings"] == [
        {"check": "second run changed row counts", "differences": ["base: 1 → 2 rows"], "failure": None}
    ]


FORGETFUL_UP = """
CREATE INDEX IF NOT EXISTS idx_base_a ON base (a);
CREATE OR REPLACE FUNCTION base_total() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM base';
DO $$ BEGIN CREATE TYPE base_state AS ENUM ('new', 'done'); EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE SEQUENCE IF NOT EXISTS base_numbers;
DO $$ BEGIN EXECUTE 'CREATE INDEX IF NOT EXISTS ' || 'idx_base_id_a' || ' ON base (id, a)'; END $$;
ALTER TABLE base ADD COLUMN IF NOT EXISTS note text;"""
OUTSIDE_A_TRANSACTION = "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_base_id ON base (id);\n"


@pytest.mark.parametrize("outside", [False, True], ids=["in a transaction", "outside a transaction"])
def test_down_file_that_forgets_an_index_a_function_a_type_and_a_sequence(call, pg_server, migrations_dir, outside):
    """What the down file does not name is found too: verify does not look only at what the files name."""
    prefix = OUTSIDE_A_TRANSACTION if outside else ""
    write_files(
        migrations_dir,
        {
            "001_base.sql": BASE,
            "002_extras.sql": migration("002_extras", prefix + FORGETFUL_UP, wrap=not outside),
            "002_extras.down.sql": migration(
                "002_extras", prefix + "ALTER TABLE base DROP COLUMN IF EXISTS note;", wrap=not outside
            ),
        },
    )
    result, report = verify_json(call, pg_server, migrations_dir)
    assert result.returncode == 1, result.output
    extras = by_name(report)["002_extras"]
    assert extras["idempotent"] is True and extras["reversible"] is False
    [finding] = extras["findings"]
    assert finding["check"].startswith("down file does not fully reverse the migration")
    assert finding["differences"] == [
        "table base_numbers added",
        "index idx_base_a added",
        *(["index idx_base_id added"] if outside else []),
        "index idx_base_id_a added",
        "function base_total() added",
        "type base_state added",
    ]


@pytest.mark.parametrize("outside", [False, True], ids=["in a transaction", "outside a transaction"])
def test_down_file_dropping_with_cascade_reverses_fully(call, pg_server, migrations_dir, outside):
    """The view goes with the column (CASCADE) although no statement of either file names it (dynamic SQL
    made it): nothing is left behind, and nothing is reported."""
    prefix = "DROP INDEX CONCURRENTLY IF EXISTS idx_none;\n" if outside else ""
    write_files(
        migrations_dir,
        {
            "001_base.sql": BASE,
            "002_notes.sql": migration(
                "002_notes",
                "ALTER TABLE base ADD COLUMN IF NOT EXISTS note text;\n"
                "DO $$ BEGIN EXECUTE 'CREATE OR REPLACE VIEW ' || 'base_' || 'notes AS SELECT note FROM base'; END $$;",
            ),
            "002_notes.down.sql": migration(
                "002_notes", prefix + "ALTER TABLE base DROP COLUMN IF EXISTS note CASCADE;", wrap=not outside
            ),
        },
    )
    result, report = verify_json(call, pg_server, migrations_dir)
    assert result.returncode == 0, result.output
    notes = by_name(report)["002_notes"]
    assert (notes["idempotent"], notes["reversible"], notes["findings"]) == (True, True, [])


@pytest.mark.parametrize("outside", [False, True], ids=["in a transaction", "outside a transaction"])
def test_down_file_that_forgets_a_column_change_made_by_dynamic_sql(call, pg_server, migrations_dir, outside):
    """No statement names the table whose column the DO block changes (only the column's catalog row
    changes, not the table's): the change is found all the same."""
    prefix = "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_other_id ON other (id);\n" if outside else ""
    write_files(
        migrations_dir,
        {
            "001_base.sql": migration(
                "001_base",
                "CREATE TABLE IF NOT EXISTS base (id int PRIMARY KEY, a int);\n"
                "CREATE TABLE IF NOT EXISTS other (id int);",
            ),
            "002_not_null.sql": migration(
                "002_not_null",
                prefix + "DO $$ BEGIN EXECUTE 'ALTER TABLE ' || 'ba' || 'se ALTER COLUMN a SET NOT NULL'; END $$;",
                wrap=not outside,
            ),
            "002_not_null.down.sql": migration("002_not_null", prefix + "SELECT 1;", wrap=not outside),
        },
    )
    result, report = verify_json(call, pg_server, migrations_dir)
    assert result.returncode == 1, result.output
    [finding] = by_name(report)["002_not_null"]["findings"]
    assert finding["check"].startswith("down file does not fully reverse the migration")
    assert finding["differences"] == [
        "column base.a changed: integer → integer NOT NULL",
        *(["index idx_other_id added"] if outside else []),
    ]


def test_down_file_that_leaves_a_rename_names_what_depends_on_it(call, pg_server, migrations_dir):
    """A renamed table changes the definitions of the key, index and foreign key that print its name."""
    write_files(
        migrations_dir,
        {
            "001_tables.sql": migration(
                "001_tables",
                "CREATE TABLE IF NOT EXISTS a (id int PRIMARY KEY);\n"
                "CREATE TABLE IF NOT EXISTS c (a_id int REFERENCES a (id));",
            ),
            "002_rename.sql": migration(
                "002_rename",
                "DO $$ BEGIN IF to_regclass('a') IS NOT NULL THEN ALTER TABLE a RENAME TO b; END IF; END $$;",
            ),
            "002_rename.down.sql": migration("002_rename", "COMMENT ON TABLE b IS NULL;"),
        },
    )
    result, report = verify_json(call, pg_server, migrations_dir)
    assert result.returncode == 1, result.output
    [finding] = by_name(report)["002_rename"]["findings"]
    assert finding["check"].startswith("down file does not fully reverse the migration")
    assert finding["differences"] == [
        "table b added",
        "table a removed",
        "column b.id added",
        "column a.id removed",
        "constraint b.a_pkey added",
        "constraint a.a_pkey removed",
        "constraint c.c_a_id_fkey changed: FOREIGN KEY (a_id) REFERENCES a(id) → FOREIGN KEY (a_id) REFERENCES b(id)",
        "index a_pkey changed: CREATE UNIQUE INDEX a_pkey ON public.a USING btree (id) → "
        "CREATE UNIQUE INDEX a_pkey ON public.b USING btree (id)",
    ]


AUDITED = migration(
    "001_audited",
    """
CREATE TABLE IF NOT EXISTS base (id int PRIMARY KEY, a int);
CREATE TABLE IF NOT EXISTS audit (id serial PRIMARY KEY, note text);
CREATE OR REPLACE FUNCTION audit_base() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO audit (note) VALUES ('base ' || NEW.id); RETURN NEW; END $$;
DROP TRIGGER IF EXISTS audited ON base;
CREATE TRIGGER audited BEFORE INSERT ON base FOR EACH ROW EXECUTE FUNCTION audit_base();""",
)


def test_second_run_writing_through_a_trigger_is_not_idempotent(call, pg_server, migrations_dir):
    """The file names only base; its second run adds a row to audit, through base's trigger."""
    write_files(
        migrations_dir,
        {
            "001_audited.sql": AUDITED,
            "002_row.sql": migration("002_row", "INSERT INTO base (id, a) VALUES (1, 1) ON CONFLICT (id) DO NOTHING;"),
        },
    )
    result, report = verify_json(call, pg_server, migrations_dir)
    assert result.returncode == 1, result.output
    assert by_name(report)["002_row"]["findings"] == [
        {"check": "second run changed row counts", "differences": ["audit: 1 → 2 rows"], "failure": None}
    ]


def test_seed_writing_through_a_trigger_is_not_idempotent(call, pg_server, migrations_dir, tmp_path):
    write_files(migrations_dir, {"001_audited.sql": AUDITED})
    seeds = write_files(
        tmp_path / "seeds" / "development",
        {"001_rows.sql": "INSERT INTO base (id, a) VALUES (1, 1), (2, 2) ON CONFLICT (id) DO NOTHING;\n"},
    ).parent
    result, report = verify_json(call, pg_server, migrations_dir, seeds)
    assert result.returncode == 1, result.output
    [seed] = report["seeds"]
    assert (seed["rows_first"], seed["rows_second"]) == (2, 0)
    assert seed["findings"] == [
        {"check": "second run changed row counts", "differences": ["audit: 2 → 4 rows"], "failure": None}
    ]
