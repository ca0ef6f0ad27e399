"""lint_sql_migrations: our rules (failing and passing example each), squawk merged, suppression, output, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import (
    ROOT,
    SHIPPED_MIGRATIONS,
    SHIPPED_SEEDS,
    Result,
    clean_env,
    migration,
    write_files,
)

SEED_HEADER = "-- Seed: {name}\n-- Environment: development\n-- Description: test seed\n-- Created: 2024-01-01\n\n"


@pytest.fixture(autouse=True)
def lint_cache_dir(settings, tmp_path):
    """Each test gets its own result cache (in-process runs); subprocesses pass --no-cache."""
    settings.SQL_LINT_CACHE_DIR = tmp_path / "lint-cache"
    return settings.SQL_LINT_CACHE_DIR


def seed(name: str, body: str) -> str:
    return SEED_HEADER.format(name=name) + f"BEGIN;\n\n{body.strip()}\n\nCOMMIT;\n"


def lint(*args) -> Result:
    """Run the command in-process; a CommandError becomes its return code."""
    out, err = StringIO(), StringIO()
    try:
        call_command("lint_sql_migrations", *map(str, args), stdout=out, stderr=err, no_color=True)
        code = 0
    except CommandError as error:
        code, _ = error.returncode, err.write(str(error))
    return Result(code, out.getvalue(), err.getvalue())


def findings(tmp_path, files: dict[str, str], *, seeds: bool = False, squawk: bool = False) -> list[dict]:
    directory = write_files(tmp_path / ("seeds" if seeds else "migrations"), files)
    args = ["--seeds", directory] if seeds else [directory]
    result = lint(*args, "--format", "json", *([] if squawk else ["--no-squawk"]))
    assert result.returncode in (0, 1), result.output
    return json.loads(result.stdout)["findings"]


def rules(found: list[dict]) -> list[tuple[str, int]]:
    return [(f["rule"], f["line"]) for f in found]


# ---- our rules: (rule, failing migration body, passing migration body); the body starts on line 8 ----

DDL_CASES = [
    ("L005", "CREATE TABLE t (id int);", "CREATE TABLE IF NOT EXISTS t (id int);"),
    ("L005", "CREATE INDEX idx_t ON t (id);", "CREATE INDEX IF NOT EXISTS idx_t ON t (id);"),
    ("L005", "CREATE INDEX ON t (id);", "CREATE INDEX IF NOT EXISTS idx_t ON t (id);"),  # unnamed: never robust
    ("L005", "CREATE SEQUENCE s;", "CREATE SEQUENCE IF NOT EXISTS s;"),
    ("L005", "CREATE SCHEMA app;", "CREATE SCHEMA IF NOT EXISTS app;"),
    ("L005", "CREATE EXTENSION pgcrypto;", "CREATE EXTENSION IF NOT EXISTS pgcrypto;"),
    (
        "L005",
        "CREATE TYPE mood AS ENUM ('ok');",
        "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'mood') THEN\n"
        "    CREATE TYPE mood AS ENUM ('ok');\n  END IF;\nEND $$;",
    ),
    (
        "L005",
        "CREATE TYPE mood AS ENUM ('ok');",
        "DO $$\nBEGIN\n  CREATE TYPE mood AS ENUM ('ok');\nEXCEPTION WHEN duplicate_object THEN NULL;\nEND $$;",
    ),
    ("L006", "DROP TABLE t;", "DROP TABLE IF EXISTS t;"),
    ("L006", "ALTER TABLE t DROP COLUMN c;", "ALTER TABLE t DROP COLUMN IF EXISTS c;"),
    ("L006", "DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$;", "DO $$ BEGIN EXECUTE 'DROP TABLE IF EXISTS t'; END $$;"),
    (
        "L007",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
    ),
    ("L007", "CREATE VIEW v AS SELECT 1 AS one;", "CREATE OR REPLACE VIEW v AS SELECT 1 AS one;"),
    (
        "L008",
        "CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f();",
        "DROP TRIGGER IF EXISTS tr ON t;\nCREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f();",
    ),
    (
        "L008",
        "CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f();",
        "CREATE OR REPLACE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f();",
    ),
    ("L009", "ALTER TABLE t ADD COLUMN c int;", "ALTER TABLE t ADD COLUMN IF NOT EXISTS c int;"),
    (
        "L009",
        "ALTER TABLE t ADD COLUMN c int;",  # the spec's example 2
        "DO $$\nBEGIN\n  IF NOT EXISTS (\n    SELECT 1 FROM information_schema.columns\n"
        "    WHERE table_name = 't' AND column_name = 'c'\n  ) THEN\n    ALTER TABLE t ADD COLUMN c int;\n  END IF;\nEND $$;",
    ),
    (
        "L009",
        "ALTER TABLE t ADD CONSTRAINT c_positive CHECK (c > 0);",
        "ALTER TABLE t DROP CONSTRAINT IF EXISTS c_positive;\nALTER TABLE t ADD CONSTRAINT c_positive CHECK (c > 0);",
    ),
    ("L009", "ALTER TYPE mood ADD VALUE 'sad';", "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'sad';"),
    ("L010", "INSERT INTO t (id) VALUES (1);", "SELECT count(*) FROM t;"),
    ("L010", "UPDATE t SET id = 2;", "CREATE INDEX IF NOT EXISTS idx_t ON t (id);"),
    ("L010", "DELETE FROM t;", "SELECT 1;"),
    ("L010", "TRUNCATE t;", "SELECT 1;"),
    ("L010", "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id);", "SELECT 1;"),
    ("L010", "COPY t FROM '/tmp/t.csv';", "SELECT 1;"),
    (
        "L010",
        "WITH gone AS (DELETE FROM t RETURNING id) SELECT count(*) FROM gone;",
        "WITH x AS (SELECT 1) SELECT * FROM x;",
    ),
]


@pytest.mark.parametrize("rule,bad,good", DDL_CASES, ids=[f"{c[0]}-{c[1][:24]}" for c in DDL_CASES])
def test_migration_rule_fails_and_passes(tmp_path, rule, bad, good):
    assert (rule, 8) in rules(findings(tmp_path / "bad", {"001_x.sql": migration("001_x", bad)}))
    assert rule not in {r for r, _ in rules(findings(tmp_path / "good", {"001_x.sql": migration("001_x", good)}))}


def test_statement_in_an_unguarded_do_block_is_found_at_its_own_line(tmp_path):
    body = "DO $$\nBEGIN\n  RAISE NOTICE 'no guard here';\n  CREATE TABLE t (id int);\n  DELETE FROM t;\nEND $$;"
    found = rules(findings(tmp_path, {"001_x.sql": migration("001_x", body)}))
    assert ("L005", 11) in found and ("L010", 12) in found


def test_guarded_do_block_still_may_not_change_data(tmp_path):
    body = "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM t) THEN\n    INSERT INTO t VALUES (1);\n  END IF;\nEND $$;"
    assert rules(findings(tmp_path, {"001_x.sql": migration("001_x", body)})) == [("L010", 11)]


def test_invalid_file_is_l001_with_its_position(tmp_path):
    found = findings(
        tmp_path,
        {
            "001_x.sql": migration("001_x", "CREATE TABLE IF NOT EXISTS t (id int;"),
            "2_bad_name.sql": migration("2_bad_name", "SELECT 1;"),
        },
    )
    assert ("L001", 8) in rules(found)
    assert any(
        f["rule"] == "L001" and f["path"].endswith("2_bad_name.sql") and "invalid file name" in f["message"]
        for f in found
    )
    assert rules(findings(tmp_path / "ok", {"001_x.sql": migration("001_x", "SELECT 1;")})) == []


def test_file_that_is_not_utf8_is_l001_and_squawk_still_lints_the_others(tmp_path):
    found = findings(
        tmp_path,
        {
            "001_x.sql": migration("001_x", "CREATE INDEX IF NOT EXISTS i ON t (id);"),
            "002_y.sql": b"-- Migration: 002_y\nSELECT '\xe9';\n",
        },
        squawk=True,
    )
    assert any(f["rule"] == "L001" and "not valid UTF-8" in f["message"] and f["line"] == 2 for f in found)
    assert any(f["rule"] == "require-concurrent-index-creation" and f["path"].endswith("001_x.sql") for f in found)


def test_name_problems_are_l001(tmp_path):
    found = findings(
        tmp_path,
        {
            "001_a.sql": migration("001_a", "SELECT 1;"),
            "0001_b.sql": migration("0001_b", "SELECT 1;"),
            "002_c.down.sql": migration("002_c", "SELECT 1;").replace("002_c", "002_c (down)", 1),
        },
    )
    messages = {(f["path"].rsplit("/", 1)[-1], f["message"]) for f in found if f["rule"] == "L001"}
    assert messages == {
        ("001_a.sql", "duplicate version 1: 0001_b.sql, 001_a.sql"),
        ("0001_b.sql", "duplicate version 1: 0001_b.sql, 001_a.sql"),
        ("002_c.down.sql", "down file without its up file (002_c.sql)"),
    }


def test_do_block_that_is_not_plpgsql_is_l014(tmp_path):
    body = "DO $$\nBEGIN\n  IF true THEN\n    NULL;\nEND $$;"  # END IF missing
    found = findings(tmp_path, {"001_x.sql": migration("001_x", body)})
    assert rules(found) == [("L014", 8)] and found[0]["message"].startswith("DO block: ")
    good = "DO $$\nBEGIN\n  IF true THEN\n    NULL;\n  END IF;\nEND $$;"
    assert findings(tmp_path / "ok", {"001_x.sql": migration("001_x", good)}) == []


def test_header_rules(tmp_path):
    no_description = "-- Migration: 001_x\n-- Created: 2024-01-01\n\nBEGIN;\nSELECT 1;\nCOMMIT;\n"
    assert rules(findings(tmp_path / "a", {"001_x.sql": no_description})) == [("L002", 1)]
    mismatch = "-- Migration: 002_other\n-- Description: x\n-- Created: last week\n\nBEGIN;\nSELECT 1;\nCOMMIT;\n"
    assert rules(findings(tmp_path / "b", {"001_x.sql": mismatch})) == [("L003", 1), ("L003", 3)]
    assert rules(findings(tmp_path / "c", {"001_x.sql": migration("001_x", "SELECT 1;")})) == []
    down = "-- Migration: 001_x (down)\n-- Description: undo\n-- Created: 2024-01-01\n\nBEGIN;\nSELECT 1;\nCOMMIT;\n"
    both = {"001_x.sql": migration("001_x", "SELECT 1;"), "001_x.down.sql": down}
    assert rules(findings(tmp_path / "d", both)) == []
    assert rules(findings(tmp_path / "e", {"001_s.sql": migration("001_s", "SELECT 1;")}, seeds=True)) == [("L002", 1)]
    assert rules(findings(tmp_path / "f", {"001_s.sql": seed("001_s", "SELECT 1;")}, seeds=True)) == []


def test_transaction_wrapper_rule_knows_concurrently_runs_outside(tmp_path):
    unwrapped = migration("001_x", "CREATE TABLE IF NOT EXISTS t (id int);", wrap=False)
    assert rules(findings(tmp_path / "a", {"001_x.sql": unwrapped})) == [("L004", 6)]
    concurrent = migration("001_x", "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (id);", wrap=False)
    assert rules(findings(tmp_path / "b", {"001_x.sql": concurrent})) == []


SEED_CASES = [
    ("L011", "INSERT INTO t (id) VALUES (1);", "INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO NOTHING;"),
    (
        "L011",
        "INSERT INTO t (id) SELECT 1;",
        "INSERT INTO t (id) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM t WHERE id = 1);",
    ),
    (
        "L011",
        "INSERT INTO t (id) VALUES (1);",  # the spec's seed example
        "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM t LIMIT 1) THEN\n    INSERT INTO t (id) VALUES (1);\n  END IF;\nEND $$;",
    ),
    ("L012", "CREATE TABLE t (id int);", "CREATE TEMP TABLE scratch (id int);"),
    ("L012", "ALTER TABLE t ADD COLUMN IF NOT EXISTS c int;", "UPDATE t SET id = id;"),
]


@pytest.mark.parametrize("rule,bad,good", SEED_CASES, ids=[f"{c[0]}-{c[1][:24]}" for c in SEED_CASES])
def test_seed_rule_fails_and_passes(tmp_path, rule, bad, good):
    bad_found = findings(tmp_path / "bad", {"001_s.sql": seed("001_s", bad)}, seeds=True)
    assert (rule, 8) in rules(bad_found)
    severity = {f["rule"]: f["severity"] for f in bad_found}[rule]
    assert severity == ("warning" if rule == "L011" else "error")
    good_found = findings(tmp_path / "good", {"001_s.sql": seed("001_s", good)}, seeds=True)
    assert rule not in {r for r, _ in rules(good_found)}


def test_data_rules_do_not_apply_across_kinds(tmp_path):
    assert rules(findings(tmp_path / "a", {"001_s.sql": seed("001_s", "DELETE FROM t;")}, seeds=True)) == []
    ddl = "CREATE TABLE t (id int);"
    assert "L012" not in {r for r, _ in rules(findings(tmp_path / "b", {"001_x.sql": migration("001_x", ddl)}))}


# ---- squawk, merged ----


def test_squawk_finding_is_merged_with_its_rule_name_and_1_based_line(tmp_path):
    found = findings(
        tmp_path, {"001_x.sql": migration("001_x", "CREATE INDEX IF NOT EXISTS i ON t (id);")}, squawk=True
    )
    concurrent = [f for f in found if f["rule"] == "require-concurrent-index-creation"]
    assert [(f["line"], f["column"], f["severity"], f["source"]) for f in concurrent] == [(8, 1, "warning", "squawk")]
    assert not any(f["rule"] == "transaction-nesting" for f in found)  # the file's own BEGIN is not a nested one


def test_squawk_robust_stmts_replaces_our_duplicate_at_our_severity(tmp_path):
    body = "CREATE INDEX CONCURRENTLY i ON t (id);"  # runs outside a transaction: squawk sees it too
    found = findings(tmp_path, {"001_x.sql": migration("001_x", body, wrap=False)}, squawk=True)
    robust = [f for f in found if f["rule"] == "prefer-robust-stmts"]
    assert [(f["line"], f["severity"]) for f in robust] == [(6, "error")]
    assert not any(f["rule"] == "L005" for f in found)


def test_unwrapped_file_is_given_to_squawk_as_in_a_transaction(tmp_path):
    body = "CREATE TABLE t (id bigint);\nCREATE TABLE u (id bigint);"
    found = findings(tmp_path, {"001_x.sql": migration("001_x", body, wrap=False)}, squawk=True)
    assert ("L005", 6) in rules(found) and ("L005", 7) in rules(found)
    assert not any(f["rule"] == "prefer-robust-stmts" for f in found)  # the runner wraps it: squawk agrees


def test_hundreds_of_files_in_one_squawk_run_lose_no_finding(tmp_path):
    files = {
        f"{i:03d}_x{i}.sql": migration(f"{i:03d}_x{i}", f"CREATE INDEX IF NOT EXISTS i{i} ON t (id);")
        for i in range(1, 402)
    }
    found = findings(tmp_path, files, squawk=True)
    concurrent = {f["path"].rsplit("/", 1)[-1] for f in found if f["rule"] == "require-concurrent-index-creation"}
    assert concurrent == set(files)


def test_a_command_line_too_long_for_one_squawk_process_is_split_without_losing_a_finding(tmp_path, monkeypatch):
    from dbmigrations.lint import squawk

    files = {
        f"{i:03d}_x{i}.sql": migration(f"{i:03d}_x{i}", f"CREATE INDEX IF NOT EXISTS i{i} ON t (id);")
        for i in range(1, 8)
    }
    # not wrapped, but the runner runs it in a transaction: it goes to the second squawk run
    files["008_y.sql"] = migration("008_y", "CREATE INDEX IF NOT EXISTS i8 ON t (id);", wrap=False)
    one_path = len(str(tmp_path / "migrations" / "001_x1.sql")) + 1
    monkeypatch.setattr(squawk, "MAX_ARGUMENT_CHARS", 2 * one_path)  # two files per squawk process
    found = findings(tmp_path, files, squawk=True)
    concurrent = {
        (f["path"].rsplit("/", 1)[-1], f["line"]) for f in found if f["rule"] == "require-concurrent-index-creation"
    }
    assert concurrent == {(name, 6 if name == "008_y.sql" else 8) for name in files}
    assert ("L004", 6) in rules(found)


def test_squawk_that_cannot_start_is_exit_2_naming_it(tmp_path, monkeypatch):
    from dbmigrations.lint import squawk

    broken = tmp_path / "squawk"
    broken.write_bytes(b"\x00\x01 not a program")
    broken.chmod(0o755)
    monkeypatch.setattr(squawk, "binary", lambda: str(broken))
    directory = write_files(tmp_path / "m", {"001_x.sql": migration("001_x", "SELECT 1;")})
    result = lint(directory)
    assert result.returncode == 2 and "squawk could not start (Exec format error)" in result.stderr


def test_pg_version_comes_from_the_server_with_database(call, tmp_path):
    directory = write_files(
        tmp_path / "m", {"001_x.sql": migration("001_x", "ALTER TABLE t ADD COLUMN IF NOT EXISTS c bigint DEFAULT 0;")}
    )
    old = lint(directory, "--pg-version", "10", "--format", "json")
    assert "adding-field-with-default" in {f["rule"] for f in json.loads(old.stdout)["findings"]}
    current = call("lint_sql_migrations", directory, "--format", "json")  # call passes --database
    assert current.returncode == 0, current.output
    assert "adding-field-with-default" not in {f["rule"] for f in json.loads(current.stdout)["findings"]}


# ---- suppression ----


def test_line_suppression_on_the_line_or_the_line_before(tmp_path):
    body = (
        "CREATE TABLE a (id int); -- lint: ignore L005 -- scratch table, dropped below\n"
        "-- lint: ignore non-idempotent-create -- by name works too\n"
        "CREATE TABLE b (id int);\n"
        "-- lint: ignore L005 -- two lines above is too far\n\n"
        "CREATE TABLE c (id int);"
    )
    assert rules(findings(tmp_path, {"001_x.sql": migration("001_x", body)})) == [("L005", 13)]


def test_file_suppression_covers_ours_and_squawks(tmp_path):
    body = (
        "-- lint: ignore-file L005, require-concurrent-index-creation -- a throwaway schema\n"
        "CREATE TABLE a (id int);\nCREATE INDEX IF NOT EXISTS i ON a (id);\nDROP TABLE b;"
    )
    found = findings(tmp_path, {"001_x.sql": migration("001_x", body)}, squawk=True)
    assert not {"L005", "require-concurrent-index-creation"} & {f["rule"] for f in found}
    assert ("L006", 11) in rules(found)


def test_suppression_without_reason_still_suppresses_but_warns(tmp_path):
    body = "-- lint: ignore L005\nCREATE TABLE a (id int);\n-- lint: ignore L006 because reasons\nDROP TABLE b;"
    found = findings(tmp_path, {"001_x.sql": migration("001_x", body)})
    assert [(f["rule"], f["line"], f["severity"]) for f in found] == [("L013", 8, "warning"), ("L013", 10, "warning")]
    assert "gives no reason" in found[0]["message"] and "`because`, `reasons`: not a rule" in found[1]["message"]


def test_suppression_comment_inside_a_do_block(tmp_path):
    body = "DO $$\nBEGIN\n  -- lint: ignore L010 -- one-off backfill, reviewed\n  UPDATE t SET c = 0;\nEND $$;"
    assert rules(findings(tmp_path, {"001_x.sql": migration("001_x", body)})) == []


def test_results_are_cached_by_content_and_name(tmp_path, lint_cache_dir):
    directory = write_files(tmp_path / "m", {"001_x.sql": migration("001_x", "DROP TABLE t;")})
    assert "DROP TABLE t without IF EXISTS" in lint(directory, "--no-squawk").stdout
    (stored,) = lint_cache_dir.glob("lint-*.json")
    stored.write_text(stored.read_text().replace("DROP TABLE t without", "(from the cache) DROP TABLE t without"))
    assert "(from the cache) DROP TABLE t" in lint(directory, "--no-squawk").stdout
    assert "(from the cache)" not in lint(directory, "--no-squawk", "--no-cache").stdout
    write_files(directory, {"001_x.sql": migration("001_x", "DROP TABLE IF EXISTS t;")})
    assert json.loads(lint(directory, "--no-squawk", "--format", "json").stdout)["findings"] == []
    (directory / "001_x.sql").rename(directory / "002_x.sql")  # same content, another name: L003 now
    assert rules(json.loads(lint(directory, "--no-squawk", "--format", "json").stdout)["findings"]) == [("L003", 1)]


def test_a_file_name_that_is_not_utf8_is_linted_and_cached(tmp_path, lint_cache_dir):
    """A seed named in another encoding (an archive unpacked as Latin-1): linted, and the cache still written."""
    directory = tmp_path / "seeds"
    directory.mkdir()
    (directory / os.fsdecode(b"caf\xe9.sql")).write_text(seed("cafe", "SELECT 1;"))
    result = lint("--seeds", directory, "--no-squawk")
    assert result.returncode in (0, 1), result.output
    assert len(list(lint_cache_dir.glob("lint-*.json"))) == 1
    assert list(lint_cache_dir.glob("*.tmp")) == []
    assert lint("--seeds", directory, "--no-squawk").stdout == result.stdout  # from the cache


# ---- output, exit codes ----


def test_text_output_and_exit_code_1_on_errors(tmp_path):
    directory = write_files(tmp_path / "m", {"001_x.sql": migration("001_x", "DROP TABLE t;")})
    result = lint(directory, "--no-squawk")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{directory / '001_x.sql'}:8:1: L006 DROP TABLE t without IF EXISTS"
    assert lines[-1] == "1 file: 1 error, 0 warnings (0 suppressed), squawk not run"
    assert "lint found 1 error" in result.stderr


def test_warnings_only_exit_0_and_hints_with_verbosity_2(tmp_path):
    seeds = write_files(tmp_path / "s", {"001_s.sql": seed("001_s", "INSERT INTO t VALUES (1);")})
    result = lint("--seeds", seeds, "--no-squawk", "-v", "2")
    assert result.returncode == 0, result.output
    assert ":8:1: L011 INSERT INTO t without ON CONFLICT" in result.stdout
    assert "  help: add ON CONFLICT" in result.stdout


def test_json_shape(tmp_path):
    found = findings(tmp_path, {"001_x.sql": migration("001_x", "DROP TABLE t;")}, squawk=True)
    result = lint(tmp_path / "migrations", "--format", "json")
    data = json.loads(result.stdout)
    assert set(data) == {"findings", "summary"}
    assert set(data["summary"]) == {"files", "errors", "warnings", "suppressed", "squawk"}
    assert data["summary"]["files"] == 1 and data["summary"]["squawk"] is True
    ours = next(f for f in found if f["rule"] == "L006")
    assert ours == {
        "path": ours["path"],
        "line": 8,
        "column": 1,
        "end_line": 8,
        "rule": "L006",
        "name": "non-idempotent-drop",
        "severity": "error",
        "message": "DROP TABLE t without IF EXISTS",
        "hint": ours["hint"],
        "source": "dbmigrations",
    }
    assert ours["path"].endswith("001_x.sql") and ours["hint"]


def test_missing_path_exits_2_in_a_subprocess(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "lint_sql_migrations", "--no-cache", str(tmp_path / "nope")],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "nope: no such file or directory" in proc.stderr


def test_errors_exit_1_in_a_subprocess(tmp_path):
    directory = write_files(tmp_path / "m", {"001_x.sql": migration("001_x", "INSERT INTO t VALUES (1);")})
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "lint_sql_migrations", "--no-cache", str(directory)],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and ":8:1: L010 INSERT in a migration" in proc.stdout


def test_a_lint_over_unchanged_files_loads_neither_the_parser_nor_the_executor(tmp_path):
    """The lint never needs the executor; files whose results are cached are not parsed, so pglast stays unloaded."""
    directory = write_files(tmp_path / "m", {"001_x.sql": migration("001_x", "DO $$ BEGIN NULL; END $$;")})
    listing = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: sys.__stderr__.write('\\nMODULES ' + ' '.join(sorted(sys.modules)) + '\\n'))\n"
        "sys.argv = ['manage.py', *sys.argv[1:]]\n"
        "runpy.run_path('manage.py', run_name='__main__')\n"
    )
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    for run in ("cold", "warm"):
        proc = subprocess.run(
            [sys.executable, "-c", listing, "lint_sql_migrations", "--no-squawk", str(directory)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        modules = set(proc.stderr.splitlines()[-1].split()[1:])
        assert "dbmigrations.executor" not in modules, run
    assert "pglast" not in modules


# ---- the shipped files and the system check ----


def test_shipped_migrations_and_seeds_lint_clean():
    result = lint(SHIPPED_MIGRATIONS, "--seeds", SHIPPED_SEEDS, "--format", "json")
    data = json.loads(result.stdout)
    assert result.returncode == 0 and data["findings"] == [], data["findings"]
    assert data["summary"]["files"] == 12 and data["summary"]["suppressed"] > 0


def test_system_check_reports_lint_findings_as_warnings(settings, tmp_path):
    from dbmigrations.lint.checks import lint_check_warnings

    settings.SQL_MIGRATIONS_DIR, settings.SQL_SEEDS_DIR = SHIPPED_MIGRATIONS, SHIPPED_SEEDS
    assert lint_check_warnings() == []
    settings.SQL_MIGRATIONS_DIR = write_files(tmp_path / "m", {"001_x.sql": migration("001_x", "DROP TABLE t;")})
    warnings = lint_check_warnings()
    assert [(w.id, w.msg) for w in warnings] == [("dbmigrations.W106", "DROP TABLE t without IF EXISTS")]
    assert warnings[0].obj.endswith("001_x.sql:8:1") and warnings[0].hint
    err = StringIO()
    call_command("check", "--tag", "dbmigrations", stdout=StringIO(), stderr=err)  # a warning: no SystemCheckError
    assert "001_x.sql:8:1: (dbmigrations.W106) DROP TABLE t without IF EXISTS" in err.getvalue()


def test_a_migration_in_the_specs_own_style_lints_clean(manage, tmp_path):
    """SERIAL, INTEGER, VARCHAR, TIMESTAMP and no SET lock_timeout: the project's .squawk.toml says why."""
    write_files(
        tmp_path / "migrations",
        {
            "001_add_goals.sql": migration(
                "001_add_goals",
                """
CREATE TABLE IF NOT EXISTS goals (
  id SERIAL PRIMARY KEY,
  client_id INTEGER NOT NULL,
  title VARCHAR(255) NOT NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_goals_client_id ON goals(client_id);
""",
            )
        },
    )
    result = manage("lint_sql_migrations", migrations=tmp_path / "migrations", seeds=tmp_path / "seeds")
    assert result.returncode == 0, result.output
    assert "1 file: 0 errors, 0 warnings (0 suppressed)" in result.stdout
