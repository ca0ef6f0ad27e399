"""apply_sql_migrations end to end against a real PostgreSQL."""

import pytest

from tests.conftest import SHIPPED_MIGRATIONS, migration, write_files


def table(name, extra=""):
    return f"CREATE TABLE {name} (id int{extra});"


def test_numeric_order_and_version_as_written(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "1000_d.sql": migration("1000_d", "INSERT INTO log (v) VALUES ('1000');"),
            "100_c.sql": migration("100_c", "INSERT INTO log (v) VALUES ('100');"),
            "010_b.sql": migration("010_b", "INSERT INTO log (v) VALUES ('010');"),
            "002_a.sql": migration("002_a", "CREATE TABLE log (n serial, v text);"),
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert [r[0] for r in database.query("SELECT v FROM log ORDER BY n")] == ["010", "100", "1000"]
    assert database.versions() == ["002", "010", "100", "1000"]
    lines = [line for line in result.stdout.splitlines() if line.startswith("Applying")]
    assert [line.split()[1] for line in lines] == ["002_a", "010_b", "100_c", "1000_d"]
    assert all(" OK (" in line and " ms)" in line for line in lines)


def test_shipped_migrations_apply_then_second_run_skips(call, database):
    first = call("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS)
    assert first.returncode == 0, first.output
    assert "Applied 5, skipped 0 already applied, 0 pending." in first.stdout
    rows = database.query(
        "SELECT version, description, checksum, execution_ms, filename FROM schema_migrations ORDER BY version"
    )
    assert rows[1][0] == "002"
    assert rows[1][1] == "Creates the workouts table for storing individual workout sessions"
    assert len(rows[1][2]) == 64 and rows[1][3] >= 0 and rows[1][4] == "002_add_workouts_table.sql"
    second = call("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS)
    assert second.returncode == 0
    assert "Applying" not in second.stdout
    assert "Applied 0, skipped 5 already applied, 0 pending." in second.stdout


def test_failure_in_third_of_five_rolls_back_that_file_and_stops(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", table("a")),
            "002_b.sql": migration("002_b", table("b")),
            "003_c.sql": migration(
                "003_c", "CREATE TABLE c (id int);\nINSERT INTO c VALUES (1);\nINSERT INTO c VALUES ('not a number');"
            ),
            "004_d.sql": migration("004_d", table("d")),
            "005_e.sql": migration("005_e", table("e")),
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1, result.output
    assert database.versions() == ["001", "002"]
    assert database.tables() == {"a", "b", "schema_migrations"}
    path = migrations_dir / "003_c.sql"
    # header (5 lines) + BEGIN + blank: the failing INSERT is on line 10, its bad literal at column 23.
    assert f"{path}:10:23: ERROR 22P02: invalid input syntax for type integer" in result.stderr
    assert "INSERT INTO c VALUES ('not a number');" in result.stderr
    assert "Applying 004_d" not in result.stdout
    # Fixed, the rerun applies the rest.
    write_files(
        migrations_dir, {"003_c.sql": migration("003_c", "CREATE TABLE c (id int);\nINSERT INTO c VALUES (1);")}
    )
    rerun = call("apply_sql_migrations", migrations=migrations_dir)
    assert rerun.returncode == 0, rerun.output
    assert database.versions() == ["001", "002", "003", "004", "005"]


def test_error_reports_detail_hint_and_position_after_multibyte_text(call, database, migrations_dir):
    body = (
        "-- Créé pour l'équipe: ünïcödé ☃\nCREATE TABLE p (id int PRIMARY KEY, note text DEFAULT 'ça');\n"
        "INSERT INTO p VALUES (1, '☃☃');\nINSERT INTO p VALUES (1, 'dup');\nSELECT nosuchcolumn FROM p;"
    )
    write_files(migrations_dir, {"001_x.sql": migration("001_x", body)})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1
    assert (
        f"{migrations_dir / '001_x.sql'}:11:1: ERROR 23505: duplicate key value violates unique constraint"
        in result.stderr
    )
    assert "DETAIL: Key (id)=(1) already exists." in result.stderr
    assert database.tables() == {"schema_migrations"}

    body = body.replace("INSERT INTO p VALUES (1, 'dup');\n", "")
    write_files(migrations_dir, {"001_x.sql": migration("001_x", body)})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1
    # column 8 of line 11 in characters, although the file has multibyte text before it
    assert f'{migrations_dir / "001_x.sql"}:11:8: ERROR 42703: column "nosuchcolumn" does not exist' in result.stderr
    assert "HINT:" not in result.stderr  # PostgreSQL gives none for an unknown column of a single table


def test_syntax_newer_than_the_server_is_placed_in_the_file(call, database, migrations_dir):
    # The parser knows PostgreSQL 17's grammar; an older server rejects the whole message before
    # running any of it. The error is the file's, at its line and column (characters, after multibyte text).
    if int(database.query("SHOW server_version_num")[0][0]) >= 170000:
        pytest.skip("JSON_TABLE is known to this server's grammar (PostgreSQL 17+)")
    body = "CREATE TABLE a (note text DEFAULT 'ça ☃');\nSELECT 'é☃', * FROM JSON_TABLE('[]', '$[*]' COLUMNS (x int PATH '$')) j;"
    write_files(migrations_dir, {"001_json.sql": migration("001_json", body)})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1, result.output
    assert f'{migrations_dir / "001_json.sql"}:9:45: ERROR 42601: syntax error at or near "COLUMNS"' in result.stderr
    assert "runner's own statement" not in result.stderr
    assert database.tables() == {"schema_migrations"}


def test_error_inside_do_block_names_the_line_in_the_block(call, database, migrations_dir):
    body = "CREATE TABLE ok (id int);\nDO $$\nBEGIN\n  RAISE EXCEPTION 'dependency missing' USING HINT = 'apply 001';\nEND $$;"
    write_files(migrations_dir, {"002_y.sql": migration("002_y", body)})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1
    # the RAISE inside the DO block: line 11, where its text starts
    assert f"{migrations_dir / '002_y.sql'}:11:3: ERROR P0001: dependency missing" in result.stderr
    assert "RAISE EXCEPTION 'dependency missing'" in result.stderr
    assert "HINT: apply 001" in result.stderr
    assert "CONTEXT: PL/pgSQL function inline_code_block line 3" in result.stderr
    assert "ok" not in database.tables()


TRICKY = """
CREATE FUNCTION tricky() RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
  -- a comment with COMMIT; inside
  PERFORM 1; RETURN $inner$semi;colons; and 'quotes' COMMIT;$inner$;
END;
$body$;
/* block comment: BEGIN; ROLLBACK; */
CREATE TABLE tricky_t (s text);
INSERT INTO tricky_t VALUES ('COMMIT;'), (E'tab\\there; it''s'), ('ünïcödé ☃'), ($$dollar; quoted$$);
"""


def test_tricky_sql_dollar_quotes_comments_strings_unicode(call, database, migrations_dir):
    write_files(migrations_dir, {"001_tricky.sql": migration("001_tricky", TRICKY)})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert database.query("SELECT tricky()") == [("semi;colons; and 'quotes' COMMIT;",)]
    assert [r[0] for r in database.query("SELECT s FROM tricky_t")] == [
        "COMMIT;",
        "tab\there; it's",
        "ünïcödé ☃",
        "dollar; quoted",
    ]


def test_bom_and_crlf_files_apply_and_match_their_lf_checksum(call, database, migrations_dir):
    text = migration("001_win", "CREATE TABLE win (id int);\nSELECT 'é';")
    write_files(migrations_dir, {"001_win.sql": ("\ufeff" + text.replace("\n", "\r\n")).encode("utf-8")})
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    # The same file checked out with LF and no BOM is not "modified".
    write_files(migrations_dir, {"001_win.sql": text})
    status = call("sql_migration_status", "--check", migrations=migrations_dir)
    assert status.returncode == 0, status.output
    assert "APPLIED" in status.stdout


def test_no_transaction_migration_runs_concurrently_and_says_not_atomic(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration(
                "001_t",
                "CREATE TABLE big (id int, v int);\nINSERT INTO big SELECT g, g FROM generate_series(1, 100) g;",
            ),
            "002_idx.sql": migration(
                "002_idx", "CREATE INDEX CONCURRENTLY IF NOT EXISTS big_v ON big (v);", wrap=False
            ),
        },
    )
    plan = call("apply_sql_migrations", "--plan", migrations=migrations_dir)
    assert "002_idx  (NO transaction (not atomic), 1 statement(s))" in plan.stdout
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert "not atomic" in result.stdout
    assert database.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'big_v'::regclass") == [(True,)]
    assert database.versions() == ["001", "002"]


def test_failed_concurrent_index_names_the_invalid_index_and_cleanup(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration("001_t", "CREATE TABLE dup (v int);\nINSERT INTO dup VALUES (1), (1);"),
            "002_idx.sql": migration(
                "002_idx",
                "CREATE UNIQUE INDEX CONCURRENTLY dup_v ON dup (v);\nCREATE TABLE after_idx (id int);",
                wrap=False,
            ),
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1
    assert "statement 1 of 2 failed; 1 did not run" in result.stderr
    assert "INVALID index public.dup_v" in result.stderr
    assert "DROP INDEX CONCURRENTLY IF EXISTS public.dup_v;" in result.stderr
    assert database.versions() == ["001"]
    assert "after_idx" not in database.tables()


def test_wrapped_file_with_concurrently_is_refused(call, database, migrations_dir):
    write_files(migrations_dir, {"001_idx.sql": migration("001_idx", "CREATE INDEX CONCURRENTLY i ON t (x);")})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2
    assert "CREATE INDEX CONCURRENTLY cannot run inside a transaction block" in result.stderr
    assert "001_idx.sql:8:1" in result.stderr
    assert database.tables() == set()


@pytest.mark.parametrize(
    "files, message",
    [
        ({"4_x.sql": "SELECT 1;"}, "4_x.sql: invalid file name"),
        ({"004-x.sql": "SELECT 1;"}, "004-x.sql: invalid file name"),
        ({"004_X.sql": "SELECT 1;"}, "004_X.sql: invalid file name"),
        ({"001_AddUsers.sql": "SELECT 1;"}, "001_AddUsers.sql: invalid file name"),
        ({"001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"}, "duplicate version 1"),
        ({"001_a.sql": "SELECT 1;", "002_b.down.sql": "SELECT 1;"}, "down file without its up file"),
        ({"001_a.sql": b"SELECT '\xff';"}, "001_a.sql:1: not valid UTF-8"),
        ({"001_a.sql": "SELECT 1;\nSELEC 2;"}, '001_a.sql:2:1: syntax error at or near "SELEC"'),
        ({"001_a.sql": "BEGIN;\nSELECT 1;\nCOMMIT;\nSELECT 2;"}, "001_a.sql:3:1: transaction control (COMMIT)"),
        ({"001_a.sql": "SELECT 1;\nROLLBACK;"}, "001_a.sql:2:1: transaction control (ROLLBACK)"),
        ({"001_a.sql": "BEGIN;\nBEGIN;\nSELECT 1;\nCOMMIT;"}, "001_a.sql:2:1: transaction control (BEGIN)"),
        ({"001_a.sql": "-- Migration: 001_a\nBEGIN;\n-- nothing yet\nCOMMIT;\n"}, "001_a.sql: empty file"),
        ({"001_a.sql": "COPY t FROM STDIN;"}, "COPY … FROM STDIN needs psql"),
    ],
)
def test_invalid_files_are_refused_before_touching_the_database(call, database, migrations_dir, files, message):
    write_files(migrations_dir, {"000_ok.sql": migration("000_ok", table("should_not_exist")), **files})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2, result.output
    assert message in result.stderr
    assert database.tables() == set()  # not even the ledger


def test_all_problems_are_listed_at_once(call, migrations_dir):
    write_files(
        migrations_dir,
        {
            "4_x.sql": "SELECT 1;",
            "002_b.sql": "SELEC 1;",
            "003_c.down.sql": "SELECT 1;",
            "README.md": "not sql",
            ".gitkeep": "",
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2
    assert "3 invalid SQL file problems" in result.stderr
    for name in ("4_x.sql", "002_b.sql", "003_c.down.sql"):
        assert name in result.stderr
    assert "README.md" not in result.stderr


def test_drift_is_refused_and_repair_records_new_checksum(call, manage, database, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", table("a"))})
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    write_files(
        migrations_dir,
        {"001_a.sql": migration("001_a", table("a") + "\n-- edited"), "002_b.sql": migration("002_b", table("b"))},
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2
    assert "001_a.sql" in result.stderr and "never edit an applied migration: add a new one" in result.stderr.lower()
    assert "b" not in database.tables()
    status = call("sql_migration_status", "--check", migrations=migrations_dir)
    assert status.returncode == 1 and "MODIFIED" in status.stdout
    repair = manage("repair_sql_migrations", migrations=migrations_dir)  # its real entry point, once
    assert repair.returncode == 0 and "Recorded new checksum of 001_a" in repair.stdout
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    assert database.versions() == ["001", "002"]


def test_repair_forget_missing(call, database, migrations_dir):
    write_files(
        migrations_dir, {"001_a.sql": migration("001_a", table("a")), "002_b.sql": migration("002_b", table("b"))}
    )
    call("apply_sql_migrations", migrations=migrations_dir)
    (migrations_dir / "002_b.sql").unlink()
    assert "MISSING" in call("sql_migration_status", migrations=migrations_dir).stdout
    kept = call("repair_sql_migrations", migrations=migrations_dir)
    assert "--forget-missing" in kept.stderr and database.versions() == ["001", "002"]
    call("repair_sql_migrations", "--forget-missing", migrations=migrations_dir)
    assert database.versions() == ["001"]


def test_plan_changes_nothing_not_even_the_ledger(call, database, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", table("a") + "\n" + table("a2"))})
    result = call("apply_sql_migrations", "--plan", migrations=migrations_dir)
    assert result.returncode == 0
    assert "Would apply 1 migration(s):" in result.stdout
    assert "001_a  (one transaction, 2 statement(s))" in result.stdout
    assert database.tables() == set()


def test_fake_records_without_running_and_target_stops(call, database, migrations_dir):
    write_files(migrations_dir, {f"00{i}_m{i}.sql": migration(f"00{i}_m{i}", table(f"t{i}")) for i in range(1, 5)})
    result = call("apply_sql_migrations", "--target", "2", migrations=migrations_dir)
    assert result.returncode == 0
    assert database.versions() == ["001", "002"]
    assert "2 pending" in result.stdout
    faked = call("apply_sql_migrations", "--fake", "--target", "003", migrations=migrations_dir)
    assert "FAKED" in faked.stdout
    assert database.versions() == ["001", "002", "003"]
    assert "t3" not in database.tables()
    call("apply_sql_migrations", migrations=migrations_dir)
    assert database.versions() == ["001", "002", "003", "004"] and "t4" in database.tables()


def test_merged_branch_migration_applies_with_warning_or_is_refused_when_strict(call, database, migrations_dir):
    write_files(
        migrations_dir, {"001_a.sql": migration("001_a", table("a")), "003_c.sql": migration("003_c", table("c"))}
    )
    call("apply_sql_migrations", migrations=migrations_dir)
    write_files(migrations_dir, {"002_b.sql": migration("002_b", table("b"))})
    strict = call("apply_sql_migrations", "--strict-order", migrations=migrations_dir)
    assert strict.returncode == 2 and "002_b" in strict.stderr
    assert "b" not in database.tables()
    status = call("sql_migration_status", migrations=migrations_dir)
    assert "PENDING" in status.stdout and "(out of order)" in status.stdout
    relaxed = call("apply_sql_migrations", migrations=migrations_dir)
    assert relaxed.returncode == 0
    assert "older than the newest applied migration" in relaxed.stderr
    assert database.versions() == ["001", "002", "003"]
    assert "(out of order)" in call("sql_migration_status", migrations=migrations_dir).stdout


def test_a_ledger_created_by_the_specs_ddl_keeps_working(call, database, migrations_dir):
    database.query(
        "CREATE TABLE schema_migrations (version VARCHAR(255) PRIMARY KEY, applied_at TIMESTAMP "
        "DEFAULT CURRENT_TIMESTAMP, checksum VARCHAR(64), description TEXT)"
    )
    database.query("INSERT INTO schema_migrations (version, description) VALUES ('001', 'old runner')")
    write_files(
        migrations_dir, {"001_a.sql": migration("001_a", table("a")), "002_b.sql": migration("002_b", table("b"))}
    )
    status = call("sql_migration_status", "--json", migrations=migrations_dir)
    assert '"state": "applied"' in status.stdout and '"state": "pending"' in status.stdout
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert database.versions() == ["001", "002"]
    assert "a" not in database.tables()  # 001 was already applied by the old runner


def test_lock_timeout_while_another_runner_holds_the_lock(call, database, migrations_dir):
    from dbmigrations.executor import LOCK_KEY

    write_files(migrations_dir, {"001_a.sql": migration("001_a", table("a"))})
    with database.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        result = call("apply_sql_migrations", "--lock-timeout", "1", migrations=migrations_dir)
    assert result.returncode == 2, result.output
    assert "gave up waiting for the migration lock after 1 s" in result.stderr
    assert "a" not in database.tables()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--target", "abc"), "'abc' is not a migration version"),
        (("--lock-timeout", "-3"), "'-3' is not a positive number of seconds"),
    ],
)
def test_bad_option_values_are_one_line_errors(manage, database, migrations_dir, args, message):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", table("a"))})
    result = manage("apply_sql_migrations", *args, migrations=migrations_dir)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert database.tables() == set()


def test_duplicate_version_with_a_down_file_is_one_problem_not_an_orphan(call, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;", "001_a.down.sql": "SELECT 3;"})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 2
    assert "duplicate version 1" in result.stderr and "without its up file" not in result.stderr
