"""Rules about the file as a whole: runnable at all, header, transaction wrapper."""

from __future__ import annotations

from datetime import date

from ..discovery import HEADER_LINES
from .registry import ERROR, Hit, at, rule
from .source import DOWN, SEED, LintFile

HEADER_KEYS = ("Description", "Created")


@rule(
    "L001",
    "invalid-file",
    ERROR,
    "apply_sql_migrations refuses this file: fix it before anything else",
    needs_statements=False,
)  # the same problems as the file checks E001…E009 of dbmigrations.checks
def invalid_file(f: LintFile):
    for problem in f.problems:
        yield Hit(problem.line or 1, problem.column or 1, problem.message)


@rule(
    "L014", "invalid-do-block", ERROR, "fix the PL/pgSQL of the DO block: the server would refuse it when the file runs"
)
def invalid_do_block(f: LintFile):
    for problem in f.do_problems:
        yield Hit(problem.line or 1, problem.column or 1, problem.message)


def _name_key(f: LintFile) -> str:
    return "Seed" if f.kind == SEED else "Migration"


def _headers(f: LintFile) -> dict[str, tuple[int, str]]:
    """Lower-cased key → (line, value) of the ``-- Key: value`` comments near the top, the first of each
    (as ``SqlSource.header`` reads them); computed once per file."""
    headers = f.__dict__.get("_headers")
    if headers is None:
        headers = f.__dict__["_headers"] = {}
        lines = f.text.split("\n", HEADER_LINES)[:HEADER_LINES]
        for number, line in [(n, line) for n, line in enumerate(lines, 1) if "--" in line]:
            stripped = line.strip()
            if stripped.startswith("--") and ":" in stripped:
                name, _, value = stripped[2:].partition(":")
                if name[1:] == name.strip() and name[1:]:  # exactly "-- Key:"
                    headers.setdefault(name[1:].lower(), (number, value.strip()))
    return headers


def _stem(f: LintFile) -> str:
    return f.path.name.removesuffix(".sql").removesuffix(".down")


@rule(
    "L002",
    "missing-header",
    ERROR,
    "start the file with `-- Migration: NNN_name` (`-- Seed:` in seeds), `-- Description: …` and "
    "`-- Created: YYYY-MM-DD` comments",
    needs_statements=False,
)
def missing_header(f: LintFile):
    if f.source is None:
        return
    headers = _headers(f)
    for key in (_name_key(f), *HEADER_KEYS):
        found = headers.get(key.lower())
        if not found:
            yield Hit(1, 1, f"header comment `-- {key}: …` is missing")
        elif not found[1]:
            yield Hit(found[0], 1, f"header comment `-- {key}:` has no value")


@rule(
    "L003",
    "header-mismatch",
    ERROR,
    "make `-- Migration:`/`-- Seed:` repeat the file name (without .sql) and write `-- Created:` as YYYY-MM-DD",
    needs_statements=False,
)
def header_mismatch(f: LintFile):
    if f.source is None:
        return
    key, headers = _name_key(f), _headers(f)
    found = headers.get(key.lower())
    stem = _stem(f)
    allowed = {stem, f"{stem}.sql"} | ({f"{stem} (down)", f"{stem}.down"} if f.kind == DOWN else set())
    if found and found[1] and found[1] not in allowed:
        yield Hit(found[0], 1, f"`-- {key}: {found[1]}` does not match the file name ({stem})")
    created = headers.get("created")
    if created and created[1]:
        try:
            date.fromisoformat(created[1])
        except ValueError:
            yield Hit(created[0], 1, f"`-- Created: {created[1]}` is not a YYYY-MM-DD date")


@rule(
    "L004",
    "missing-transaction-wrapper",
    ERROR,
    "put `BEGIN;` after the header and `COMMIT;` at the end (a file with CONCURRENTLY must stay unwrapped)",
)
def missing_transaction_wrapper(f: LintFile):
    if f.runs_in_transaction and not f.wrapped and f.statements:
        yield at(f, f.statements[0], "the file is not wrapped in BEGIN; … COMMIT;")
