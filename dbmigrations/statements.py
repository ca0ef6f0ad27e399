"""SQL text → statements, with PostgreSQL's own grammar (pglast / libpg_query).

Finds the file's ``BEGIN;``…``COMMIT;`` wrapper, refuses any other transaction
control, and tells which statements PostgreSQL refuses inside a transaction block.
pglast's ``parse_sql`` reports locations as ``str`` indexes (it converts libpg_query's
UTF-8 byte offsets itself), so offsets here index the decoded text directly.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property

from pglast import ast, parse_sql
from pglast.enums import TransactionStmtKind
from pglast.parser import ParseError
from pglast.visitors import referenced_relations

# Savepoints are harmless inside the one transaction we run a file in.
_SAVEPOINT_KINDS = {
    TransactionStmtKind.TRANS_STMT_SAVEPOINT,
    TransactionStmtKind.TRANS_STMT_RELEASE,
    TransactionStmtKind.TRANS_STMT_ROLLBACK_TO,
}
_BEGIN_KINDS = {TransactionStmtKind.TRANS_STMT_BEGIN, TransactionStmtKind.TRANS_STMT_START}


class ScriptError(Exception):
    """The text is not a runnable script; ``offset`` points into it when known."""

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Statement:
    """One top-level statement: its text and where it starts in the file."""

    sql: str
    start: int
    node: ast.Node

    @property
    def kind(self) -> str:
        return type(self.node).__name__

    @property
    def is_transaction_control(self) -> bool:
        return isinstance(self.node, ast.TransactionStmt)

    @cached_property
    def non_transactional_reason(self) -> str | None:
        return _non_transactional_reason(self.node)

    def do_body_offset(self) -> int | None:
        """Where a ``DO`` block's code starts in the file (its PL/pgSQL line 1), else None."""
        if not isinstance(self.node, ast.DoStmt):
            return None
        for arg in self.node.args or ():
            if isinstance(arg, ast.DefElem) and arg.defname == "as" and isinstance(arg.arg, ast.String):
                found = self.sql.find(arg.arg.sval)
                return self.start + found if found >= 0 else None
        return None

    @property
    def relations(self) -> list[str]:
        """The tables and views the statement names, as written (``public.accounts``), sorted."""
        return sorted(referenced_relations(self.node))


@dataclass(frozen=True)
class Script:
    """A parsed SQL file: its statements without the file's own transaction wrapper."""

    text: str
    statements: tuple[Statement, ...]
    wrapped: bool
    #: The wrapper's own BEGIN, so its options (ISOLATION LEVEL …, READ ONLY) still apply.
    begin: str = "BEGIN"

    @cached_property
    def _line_starts(self) -> list[int]:
        starts = [0]
        starts.extend(i + 1 for i, ch in enumerate(self.text) if ch == "\n")
        return starts

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset into the text."""
        line = bisect.bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def line_text(self, line: int) -> str:
        return self.text.splitlines()[line - 1] if 0 < line <= len(self.text.splitlines()) else ""

    @property
    def non_transactional(self) -> list[Statement]:
        """Statements PostgreSQL refuses inside a transaction block."""
        return [s for s in self.statements if s.non_transactional_reason]

    @property
    def runs_in_transaction(self) -> bool:
        return not self.non_transactional


def parse_script(text: str) -> Script:
    """Split ``text`` into statements and strip a top-level ``BEGIN``/``COMMIT`` wrapper.

    Raises :class:`ScriptError` for syntax errors, stray transaction control,
    and a wrapper around statements that cannot run in a transaction.
    """
    try:
        raw = parse_sql(text)
    except ParseError as error:
        message, index = error.args[0], error.args[1] if len(error.args) > 1 else None
        raise ScriptError(message, index) from None
    statements = [_statement(text, r) for r in raw]
    wrapped = (
        len(statements) >= 2
        and _is_kind(statements[0], _BEGIN_KINDS)
        and _is_kind(statements[-1], {TransactionStmtKind.TRANS_STMT_COMMIT})
    )
    if statements and _is_kind(statements[0], _BEGIN_KINDS) and not wrapped:
        for statement in statements[1:]:
            if _is_kind(statement, {TransactionStmtKind.TRANS_STMT_COMMIT}):
                raise ScriptError(
                    "transaction control (COMMIT) before the end of the file: the BEGIN;…COMMIT; wrapper must "
                    "enclose the whole file (split it into two migrations instead)",
                    statement.start,
                )
        raise ScriptError("BEGIN without a COMMIT at the end of the file", statements[0].start)
    body = statements[1:-1] if wrapped else statements
    for statement in body:
        if statement.is_transaction_control and statement.node.kind not in _SAVEPOINT_KINDS:
            raise ScriptError(
                f"transaction control ({_keyword(statement.node)}) inside the file: the runner puts "
                "each file in one transaction; only a BEGIN;…COMMIT; wrapper around the whole file is allowed",
                statement.start,
            )
    script = Script(text, tuple(body), wrapped, statements[0].sql if wrapped else "BEGIN")
    if wrapped and script.non_transactional:
        first = script.non_transactional[0]
        raise ScriptError(
            f"{first.non_transactional_reason} cannot run inside a transaction block, but the file is wrapped "
            "in BEGIN;…COMMIT;: remove the wrapper (the file then runs statement by statement, not atomically) "
            "or move this statement to a migration of its own",
            first.start,
        )
    return script


def _statement(text: str, raw: ast.RawStmt) -> Statement:
    start = raw.stmt_location or 0
    length = raw.stmt_len or (len(text) - start)
    sql = text[start : start + length]
    # Leading blanks belong to no statement; the start is where the first token is.
    stripped = sql.lstrip()
    start += len(sql) - len(stripped)
    return Statement(stripped.rstrip(), start, raw.stmt)


def _keyword(node: ast.TransactionStmt) -> str:
    """``COMMIT`` for TRANS_STMT_COMMIT, ``PREPARE TRANSACTION`` for TRANS_STMT_PREPARE, …"""
    words = node.kind.name.removeprefix("TRANS_STMT_").replace("_", " ")
    return "PREPARE TRANSACTION" if words == "PREPARE" else words


def _is_kind(statement: Statement, kinds) -> bool:
    return statement.is_transaction_control and statement.node.kind in kinds


def _has_concurrently(params) -> bool:
    return any(isinstance(p, ast.DefElem) and p.defname == "concurrently" for p in params or ())


def _non_transactional_reason(node: ast.Node) -> str | None:
    """Why PostgreSQL refuses ``node`` inside a transaction block, or None."""
    match node:
        case ast.IndexStmt(concurrent=True):
            return "CREATE INDEX CONCURRENTLY"
        case ast.DropStmt(concurrent=True):
            return "DROP INDEX CONCURRENTLY"
        case ast.ReindexStmt() if _has_concurrently(node.params):
            return "REINDEX CONCURRENTLY"
        case ast.ReindexStmt() if node.kind and node.kind.name in ("REINDEX_OBJECT_SYSTEM", "REINDEX_OBJECT_DATABASE"):
            return "REINDEX SYSTEM/DATABASE"
        case ast.VacuumStmt(is_vacuumcmd=True):
            return "VACUUM"
        case ast.CreatedbStmt():
            return "CREATE DATABASE"
        case ast.DropdbStmt():
            return "DROP DATABASE"
        case ast.AlterSystemStmt():
            return "ALTER SYSTEM"
        case ast.CreateTableSpaceStmt():
            return "CREATE TABLESPACE"
        case ast.DropTableSpaceStmt():
            return "DROP TABLESPACE"
        case ast.CreateSubscriptionStmt():
            return "CREATE SUBSCRIPTION"
        case ast.DropSubscriptionStmt():
            return "DROP SUBSCRIPTION"
        case ast.ClusterStmt(relation=None):
            return "CLUSTER (all tables)"
        case ast.AlterTableStmt():
            for cmd in node.cmds or ():
                if isinstance(cmd, ast.AlterTableCmd) and isinstance(cmd.def_, ast.PartitionCmd) and cmd.def_.concurrent:
                    return "ALTER TABLE … DETACH PARTITION … CONCURRENTLY"
    return None


def is_copy_from_stdin(node: ast.Node) -> bool:
    """``COPY … FROM STDIN`` needs a client feeding data (psql's \\copy), not a SQL file."""
    return isinstance(node, ast.CopyStmt) and node.is_from and not node.filename


def copy_from_stdin_before(text: str, offset: int | None) -> int | None:
    """Where a ``COPY … FROM STDIN`` starts when it is the last statement before the line of ``offset``.

    A parse error on the lines after such a COPY is its data (psql's format), not a
    typo: the caller then names the COPY instead of the first data line.
    """
    if offset is None:
        return None
    cut = text.rfind("\n", 0, offset) + 1
    try:
        raw = parse_sql(text[:cut])
    except ParseError:
        return None
    if raw and is_copy_from_stdin(raw[-1].stmt):
        return _statement(text, raw[-1]).start
    return None
