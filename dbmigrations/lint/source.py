"""One SQL file as the lint sees it: text, statements (DO blocks opened up), positions.

Each file is read with the runner's own reader (``discovery.read_source``: UTF-8,
no BOM, LF) and parsed once. A file the runner would refuse gets its problems
from ``discovery.validate_source``, word for word what ``apply`` would say.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pglast import parser

from ..discovery import SqlSource, read_source, validate_source
from ..exceptions import InvalidFiles, Problem
from . import nodes, plpgsql
from .nodes import Stmt

MIGRATION, DOWN, SEED = "migration", "down", "seed"
_SAVEPOINTS = {"TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE", "TRANS_STMT_ROLLBACK_TO"}


@dataclass
class LintFile:
    """A parsed file: ``statements`` in file order, DO-block statements included."""

    path: Path
    kind: str
    text: str = ""
    source: SqlSource | None = None
    statements: list[Stmt] = field(default_factory=list)
    wrapped: bool = False
    non_transactional: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # the runner refuses the file
    do_problems: list[Problem] = field(default_factory=list)  # a DO block's PL/pgSQL does not parse
    parsed: bool = False  # parsed and runnable: the rules about content apply

    @property
    def runs_in_transaction(self) -> bool:
        return not self.non_transactional

    @cached_property
    def _line_starts(self) -> list[int]:
        starts, at = [0], self.text.find("\n")
        while at >= 0:
            starts.append(at + 1)
            at = self.text.find("\n", at + 1)
        return starts

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        line = bisect.bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def line_offset(self, line: int) -> int:
        return self._line_starts[min(max(line, 1), len(self._line_starts)) - 1]


def load(path: Path, kind: str, source: SqlSource | None = None) -> LintFile:
    """Parse ``path`` (read it unless ``source`` is given); what the runner would refuse goes to ``.problems``."""
    lint_file = LintFile(path if isinstance(path, Path) else Path(path), kind)
    if source is None:
        try:
            source = read_source(lint_file.path)
        except InvalidFiles as error:
            lint_file.problems.extend(error.problems)
            return lint_file
    lint_file.text, lint_file.source = source.text, source
    try:
        raw = nodes.parse(source.text)
    except parser.ParseError:
        lint_file.problems.extend(validate_source(source))
        return lint_file
    chars = _char_offsets(source.text)
    top = [_top_statement(source.text, r, chars) for r in raw]
    lint_file.wrapped = (len(top) >= 2 and _transaction_kind(top[0]) in ("TRANS_STMT_BEGIN", "TRANS_STMT_START")
                         and _transaction_kind(top[-1]) == "TRANS_STMT_COMMIT")
    body = top[1:-1] if lint_file.wrapped else top
    lint_file.non_transactional = [r for s in body if (r := nodes.non_transactional_reason(s.kind, s.fields))]
    if _refused(body, lint_file):
        lint_file.problems.extend(validate_source(source))
        if lint_file.problems:
            return lint_file
    lint_file.parsed = True
    for statement in body:
        lint_file.statements.append(statement)
        if statement.kind == "DoStmt":
            try:
                lint_file.statements.extend(plpgsql.expand(lint_file, statement))
            except plpgsql.BodyError as error:
                line, column = lint_file.position(statement.start)
                lint_file.do_problems.append(Problem(str(path), f"DO block: {error}", line, column))
    return lint_file


def _refused(body: list[Stmt], lint_file: LintFile) -> bool:
    """Would ``discovery.validate_source`` refuse the file? (cheap test on the tree)."""
    if not body or (lint_file.wrapped and lint_file.non_transactional):
        return True
    for statement in body:
        if statement.kind == "TransactionStmt" and statement.fields.get("kind") not in _SAVEPOINTS:
            return True
        if statement.kind == "CopyStmt" and statement.fields.get("is_from") and not statement.fields.get("filename"):
            return True
    return False


def _transaction_kind(statement: Stmt) -> str | None:
    return statement.fields.get("kind") if statement.kind == "TransactionStmt" else None


def _char_offsets(text: str):
    """libpg_query counts bytes; map a byte offset to a character offset."""
    if text.isascii():
        return lambda offset: offset
    data = text.encode("utf-8")
    return lambda offset: len(data[:offset].decode("utf-8", errors="ignore"))


def _top_statement(text: str, raw: dict, chars) -> Stmt:
    begin = raw.get("stmt_location", 0)
    start = chars(begin)
    end = chars(begin + raw["stmt_len"]) if raw.get("stmt_len") else len(text)
    kind, fields = nodes.kind_of(raw["stmt"])
    return Stmt(kind, fields, start, max(start, end))
