"""The one model of a SQL file (``statements.parse_script``), in-process: no database needed.

Offsets are characters of the text even though libpg_query counts UTF-8 bytes; the
wrapper is found and folded; stray transaction control and a wrapper around
statements PostgreSQL refuses in a transaction are refused with the exact message.
"""

from __future__ import annotations

import pytest

from dbmigrations.discovery import SqlSource, checksum
from dbmigrations.statements import Lines, ScriptError, parse_script

STRAY = (
    "inside the file: the runner puts each file in one transaction; only a BEGIN;…COMMIT; wrapper around the "
    "whole file is allowed"
)


def error_of(text: str) -> ScriptError:
    with pytest.raises(ScriptError) as caught:
        parse_script(text)
    return caught.value


# ---- byte offsets (libpg_query) vs character offsets (ours) ----


@pytest.mark.parametrize("char", ["é", "€", "😀"])  # 2, 3 and 4 bytes in UTF-8
def test_statement_offsets_are_characters_after_multibyte_text(char):
    text = f"-- {char * 5}\nSELECT '{char}{char}' AS a;\n  SELECT 2;\nCREATE TABLE {char} (x int)"
    script = parse_script(text)
    assert [s.sql for s in script.statements] == [
        f"SELECT '{char}{char}' AS a",
        "SELECT 2",
        f"CREATE TABLE {char} (x int)",
    ]
    for statement in script.statements:
        assert text[statement.start : statement.end] == statement.sql
    assert [script.position(s.start) for s in script.statements] == [(2, 1), (3, 3), (4, 1)]


def test_syntax_error_offset_is_a_character_offset():
    text = "SELECT '€€€ ééé 😀';\nSELEC 1;"
    error = error_of(text)
    assert error.message == 'syntax error at or near "SELEC"'
    assert text[error.offset :].startswith("SELEC 1") and Lines(text).position(error.offset) == (2, 1)


def test_refusal_offset_is_a_character_offset():
    text = "SELECT 'ééé';\nCOMMIT;"
    error = error_of(text)
    assert error.message == f"transaction control (COMMIT) {STRAY}"
    assert text[error.offset :] == "COMMIT;"


def test_do_body_offset_after_multibyte_text():
    text = "-- ünïcödé 😀\nDO $body$\nBEGIN\n  PERFORM 'é';\nEND $body$;"
    (do,) = parse_script(text).statements
    assert do.kind == "DoStmt" and text[do.do_body_offset() :].startswith("\nBEGIN\n  PERFORM")
    assert parse_script("SELECT 1;").statements[0].do_body_offset() is None


# ---- the wrapper ----


@pytest.mark.parametrize(
    "begin, commit",
    [
        ("BEGIN", "COMMIT"),
        ("BEGIN WORK", "COMMIT WORK"),
        ("START TRANSACTION", "END"),
        ("BEGIN ISOLATION LEVEL SERIALIZABLE", "COMMIT"),
        ("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", "END"),
    ],
)
def test_wrapper_is_folded_and_its_begin_kept(begin, commit):
    script = parse_script(f"-- header\n{begin};\n\nCREATE TABLE t (a int);\nSELECT 1;\n\n{commit};\n")
    assert script.wrapped and script.begin == begin
    assert [s.kind for s in script.statements] == ["CreateStmt", "SelectStmt"]


def test_unwrapped_file_runs_in_a_transaction_with_a_plain_begin():
    script = parse_script("CREATE TABLE t (a int);\nSELECT 1;")
    assert not script.wrapped and script.begin == "BEGIN" and script.runs_in_transaction


def test_savepoints_are_allowed_inside_the_wrapper():
    script = parse_script("BEGIN;\nSAVEPOINT a;\nSELECT 1;\nROLLBACK TO SAVEPOINT a;\nRELEASE SAVEPOINT a;\nCOMMIT;")
    assert [s.transaction_kind for s in script.statements] == [
        "TRANS_STMT_SAVEPOINT",
        None,
        "TRANS_STMT_ROLLBACK_TO",
        "TRANS_STMT_RELEASE",
    ]


@pytest.mark.parametrize("text", ["", "-- nothing yet\n", "/* a */\n", "BEGIN;\nCOMMIT;\n"])
def test_empty_and_bare_wrapper_have_no_statements(text):
    assert parse_script(text).statements == ()


# ---- stray transaction control ----


@pytest.mark.parametrize(
    "text, keyword",
    [
        ("SELECT 1;\nCOMMIT;", "COMMIT"),
        ("SELECT 1;\nROLLBACK;", "ROLLBACK"),
        ("SELECT 1;\nABORT;", "ROLLBACK"),
        ("SELECT 1;\nBEGIN;", "BEGIN"),
        ("SELECT 1;\nEND;", "COMMIT"),
        ("BEGIN;\nBEGIN;\nSELECT 1;\nCOMMIT;", "BEGIN"),
        ("SELECT 1;\nPREPARE TRANSACTION 'x';", "PREPARE TRANSACTION"),
        ("SELECT 1;\nCOMMIT PREPARED 'x';", "COMMIT PREPARED"),
        ("SELECT 1;\nROLLBACK PREPARED 'x';", "ROLLBACK PREPARED"),
    ],
)
def test_stray_transaction_control_is_refused_where_it_is(text, keyword):
    error = error_of(text)
    assert error.message == f"transaction control ({keyword}) {STRAY}"
    assert Lines(text).position(error.offset)[1] == 1 and error.offset > 0


def test_commit_before_the_end_of_a_wrapped_file():
    text = "BEGIN;\nSELECT 1;\nCOMMIT;\nSELECT 2;"
    error = error_of(text)
    assert error.message.startswith(
        "transaction control (COMMIT) before the end of the file: the BEGIN;…COMMIT; "
        "wrapper must enclose the whole file"
    )
    assert text[error.offset :].startswith("COMMIT;\nSELECT 2")


def test_begin_without_commit():
    error = error_of("-- x\nBEGIN;\nSELECT 1;\n")
    assert (error.message, error.offset) == ("BEGIN without a COMMIT at the end of the file", 5)


# ---- what PostgreSQL refuses inside a transaction block ----


@pytest.mark.parametrize(
    "sql, reason",
    [
        ("CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX CONCURRENTLY"),
        ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)", "CREATE INDEX CONCURRENTLY"),
        ("DROP INDEX CONCURRENTLY IF EXISTS i", "DROP INDEX CONCURRENTLY"),
        ("REINDEX (CONCURRENTLY) TABLE t", "REINDEX CONCURRENTLY"),
        ("REINDEX TABLE CONCURRENTLY t", "REINDEX CONCURRENTLY"),
        ("REINDEX (VERBOSE) TABLE CONCURRENTLY t", "REINDEX CONCURRENTLY"),
        ("REINDEX (CONCURRENTLY true, VERBOSE) INDEX i", "REINDEX CONCURRENTLY"),
        ("REINDEX (CONCURRENTLY on) SCHEMA s", "REINDEX CONCURRENTLY"),
        ("REINDEX (CONCURRENTLY 1) TABLE t", "REINDEX CONCURRENTLY"),
        ("REINDEX (CONCURRENTLY false) TABLE t", None),  # the option switched off: an ordinary REINDEX
        ("REINDEX (CONCURRENTLY OFF) INDEX i", None),
        ("REINDEX (CONCURRENTLY 0, VERBOSE) TABLE t", None),
        ("REINDEX DATABASE d", "REINDEX SYSTEM/DATABASE"),
        ("REINDEX SYSTEM d", "REINDEX SYSTEM/DATABASE"),
        ("VACUUM t", "VACUUM"),
        ("VACUUM (ANALYZE) t", "VACUUM"),
        ("CREATE DATABASE d", "CREATE DATABASE"),
        ("DROP DATABASE d", "DROP DATABASE"),
        ("ALTER SYSTEM SET work_mem = '1MB'", "ALTER SYSTEM"),
        ("CLUSTER", "CLUSTER (all tables)"),
        ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY", "ALTER TABLE … DETACH PARTITION … CONCURRENTLY"),
        ("CREATE TABLESPACE s LOCATION '/x'", "CREATE TABLESPACE"),
        ("DROP TABLESPACE s", "DROP TABLESPACE"),
        ("CREATE SUBSCRIPTION s CONNECTION 'x' PUBLICATION p", "CREATE SUBSCRIPTION"),
        ("DROP SUBSCRIPTION s", "DROP SUBSCRIPTION"),
        ("CREATE INDEX i ON t (a)", None),
        ("DROP INDEX i", None),
        ("REINDEX TABLE t", None),
        ("ANALYZE t", None),
        ("CLUSTER t USING i", None),
        ("CLUSTER t", None),
        ("ALTER TABLE p DETACH PARTITION c", None),
        ("SELECT 1", None),
    ],
)
def test_non_transactional_detection(sql, reason):
    script = parse_script(f"SELECT 1;\n{sql};")
    assert script.statements[1].non_transactional_reason == reason
    assert script.runs_in_transaction is (reason is None)
    assert script.non_transactional == ([script.statements[1]] if reason else [])


def test_wrapper_around_a_non_transactional_statement_is_refused():
    text = "-- ä\nBEGIN;\nSELECT 1;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;"
    error = error_of(text)
    assert error.message == (
        "CREATE INDEX CONCURRENTLY cannot run inside a transaction block, but the file is wrapped in BEGIN;…COMMIT;: "
        "remove the wrapper (the file then runs statement by statement, not atomically) or move this statement "
        "to a migration of its own"
    )
    assert text[error.offset :].startswith("CREATE INDEX CONCURRENTLY")


# ---- what callers read from a statement ----


def test_statement_kind_fields_index_name_and_copy():
    script = parse_script(
        "CREATE INDEX CONCURRENTLY idx_a ON t (a);\nCREATE INDEX ON t (b);\nCOPY t FROM STDIN;\n"
        "COPY t FROM '/tmp/x';\nCOPY t TO STDOUT;"
    )
    kinds = [s.kind for s in script.statements]
    assert kinds == ["IndexStmt", "IndexStmt", "CopyStmt", "CopyStmt", "CopyStmt"]
    assert [s.index_name for s in script.statements] == ["idx_a", None, None, None, None]
    assert [s.is_copy_from_stdin for s in script.statements] == [False, False, True, False, False]
    assert script.statements[0].fields["relation"]["relname"] == "t" and script.statements[0].fields["concurrent"]


def test_line_text_counts_only_newlines_as_line_ends():
    # A form feed or U+2028 inside a comment is not a line end for PostgreSQL's positions (nor ours).
    text = "-- page\x0cbreak \u2028 here\nSELECT 1;\nSELEC 2;"
    script = parse_script(text.replace("SELEC 2;", ""))
    assert script.line_text(2) == "SELECT 1;" and script.line_text(1) == "-- page\x0cbreak \u2028 here"
    assert script.line_text(0) == "" and script.line_text(9) == ""
    error = error_of(text)
    assert Lines(text).position(error.offset) == (3, 1) and Lines(text).line_text(3) == "SELEC 2;"


def test_the_lint_reads_the_runners_parse_of_the_file(tmp_path):
    from dbmigrations.lint.source import MIGRATION, load

    text = "-- é\nBEGIN;\nCREATE TABLE t (a int);\nDO $$ BEGIN CREATE TABLE u (b int); END $$;\nCOMMIT;\n"
    source = SqlSource(tmp_path / "001_x.sql", text, checksum(text))
    lint_file = load(source.path, MIGRATION, source)
    assert lint_file.script is source.script and lint_file.wrapped and lint_file.runs_in_transaction
    top = [s for s in lint_file.statements if not s.in_do]
    assert [s.fields for s in top] == [s.fields for s in source.script.statements]
    assert all(a.fields is b.fields for a, b in zip(top, source.script.statements))
    assert [(s.kind, s.in_do, lint_file.position(s.start)) for s in lint_file.statements] == [
        ("CreateStmt", False, (3, 1)),
        ("DoStmt", False, (4, 1)),
        ("CreateStmt", True, (4, 13)),
    ]
