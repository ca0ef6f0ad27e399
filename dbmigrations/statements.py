"""SQL text → statements, with PostgreSQL's own grammar (libpg_query, through pglast).

The one model of a SQL file: the runner, discovery's validation, seeds, verify and
the lint all read a file through :func:`parse_script`, so each file is parsed once
and every part of the tool agrees on what it holds. The tree is libpg_query's JSON
read as plain dicts (``{"CreateStmt": {...fields}}``): building pglast's Python node
objects instead made parsing four times slower (0.15 s against 0.04 s per 1000 files).

Finds the file's ``BEGIN;``…``COMMIT;`` wrapper, refuses any other transaction
control, and tells which statements PostgreSQL refuses inside a transaction block.
libpg_query counts statement locations in UTF-8 *bytes*; every offset here is a
*character* offset (a ``str`` index into the text).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

_BEGINS = frozenset({"TRANS_STMT_BEGIN", "TRANS_STMT_START"})
_COMMIT = "TRANS_STMT_COMMIT"
# Savepoints are harmless inside the one transaction we run a file in.
_SAVEPOINTS = frozenset({"TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE", "TRANS_STMT_ROLLBACK_TO"})
# Statements PostgreSQL always refuses inside a transaction block; the others depend on their options.
_NEVER_IN_TRANSACTION = {
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "AlterSystemStmt": "ALTER SYSTEM",
    "CreateTableSpaceStmt": "CREATE TABLESPACE",
    "DropTableSpaceStmt": "DROP TABLESPACE",
    "CreateSubscriptionStmt": "CREATE SUBSCRIPTION",
    "DropSubscriptionStmt": "DROP SUBSCRIPTION",
}
# Parse-tree fields holding a name: a relation, index, constraint, trigger, schema or extension, a renamed
# object's new or old name, and each part of a dotted name (String nodes: functions, types, dropped objects).
_NAME_FIELDS = frozenset({"relname", "schemaname", "idxname", "conname", "trigname", "newname", "subname", "extname"})
# What REINDEX … CONCURRENTLY rebuilds that the runner checks for leftovers (not DATABASE, not SYSTEM).
_REINDEXED = frozenset({"INDEX", "TABLE", "SCHEMA"})
_MAYBE_OUTSIDE_TRANSACTION = frozenset(
    {*_NEVER_IN_TRANSACTION, "IndexStmt", "DropStmt", "ReindexStmt", "VacuumStmt", "ClusterStmt", "AlterTableStmt"}
)


class ScriptError(Exception):
    """The text is not a runnable script; ``offset`` (characters) points into it when known."""

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset


class Lines:
    """Where the lines of a text start: character offset ↔ 1-based line and column."""

    def __init__(self, text: str):
        self.text = text
        starts, at = [0], text.find("\n")
        while at >= 0:
            starts.append(at + 1)
            at = text.find("\n", at + 1)
        self.starts = starts

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1

    def offset(self, line: int) -> int:
        """Character offset where ``line`` starts (clamped to the first and last line)."""
        return self.starts[min(max(line, 1), len(self.starts)) - 1]

    def line_text(self, line: int) -> str:
        """The text of 1-based ``line``, without its newline; "" outside the text."""
        if not 0 < line <= len(self.starts):
            return ""
        end = self.starts[line] - 1 if line < len(self.starts) else len(self.text)
        return self.text[self.starts[line - 1] : end]


@dataclass(frozen=True)
class IndexTarget:
    """The index a ``CREATE INDEX`` names (``name`` None when PostgreSQL picks it) and its table."""

    name: str | None
    schema: str | None
    table: str
    concurrent: bool
    if_not_exists: bool


@dataclass(frozen=True)
class ReindexTarget:
    """What a ``REINDEX INDEX|TABLE|SCHEMA … CONCURRENTLY`` rebuilds: ``kind`` ``"INDEX"``, ``"TABLE"`` or
    ``"SCHEMA"``; ``schema`` as written (None: the session's search_path), ``name`` the relation or schema."""

    kind: str
    schema: str | None
    name: str


@dataclass(frozen=True)
class Statement:
    """One top-level statement: its text, where it starts in the file, and its parse-tree node.

    ``kind`` is the node type (``"IndexStmt"``), ``fields`` its fields as libpg_query's
    JSON has them: a field left at its default (false, 0, empty) is absent.
    """

    sql: str
    start: int
    kind: str
    fields: dict = field(repr=False, compare=False)

    @property
    def end(self) -> int:
        """Character offset just after the statement's last token (its ``;`` excluded)."""
        return self.start + len(self.sql)

    @property
    def is_transaction_control(self) -> bool:
        return self.kind == "TransactionStmt"

    @property
    def transaction_kind(self) -> str | None:
        """``TRANS_STMT_BEGIN``, ``TRANS_STMT_COMMIT``, … for transaction control, else None."""
        return self.fields.get("kind") if self.kind == "TransactionStmt" else None

    @property
    def non_transactional_reason(self) -> str | None:
        """Why PostgreSQL refuses the statement in a transaction block (``"CREATE INDEX CONCURRENTLY"``), or None."""
        return non_transactional_reason(self.kind, self.fields)

    @property
    def index_name(self) -> str | None:
        """The index a ``CREATE INDEX`` names (None for other statements, or when PostgreSQL picks the name)."""
        return self.fields.get("idxname") if self.kind == "IndexStmt" else None

    @property
    def relations(self) -> list[str]:
        """The tables and views the statement names, as written (``public.accounts``), sorted."""
        return sorted(
            {
                ".".join(p for p in (item.get("schemaname"), item["relname"]) if p)
                for item in _dicts(self.fields)
                if "relname" in item and "relpersistence" in item  # a RangeVar
            }
        )

    @property
    def names(self) -> set[str]:
        """Every name the statement mentions, as PostgreSQL stores it (relations, indexes, functions, types,
        schemas, extensions; string constants too), and for a ``DO`` block the identifiers of its body and of
        the string constants in it (dynamic SQL). A superset, for finding the objects a statement may drop."""
        names = {
            value
            for item in _dicts(self.fields)
            for key, value in item.items()
            if isinstance(value, str) and (key in _NAME_FIELDS or key == "sval")
        }
        if self.kind == "DoStmt":
            for arg in self.fields.get("args") or ():
                body = ((arg.get("DefElem") or {}).get("arg") or {}).get("String", {}).get("sval")
                names |= identifiers(body or "", depth=2)
        return names

    @property
    def is_copy_from_stdin(self) -> bool:
        """``COPY … FROM STDIN`` needs a client feeding data (psql's \\copy), not a SQL file."""
        return self.kind == "CopyStmt" and bool(self.fields.get("is_from")) and not self.fields.get("filename")

    @property
    def index(self) -> IndexTarget | None:
        """What a ``CREATE INDEX`` builds (None for other statements)."""
        if self.kind != "IndexStmt":
            return None
        relation = self.fields.get("relation") or {}
        return IndexTarget(
            self.fields.get("idxname"),
            relation.get("schemaname"),
            relation.get("relname", ""),
            bool(self.fields.get("concurrent")),
            bool(self.fields.get("if_not_exists")),
        )

    @property
    def reindex(self) -> ReindexTarget | None:
        """What a ``REINDEX INDEX|TABLE|SCHEMA … CONCURRENTLY`` rebuilds (None for other statements)."""
        kind = (self.fields.get("kind") or "").removeprefix("REINDEX_OBJECT_")
        if self.kind != "ReindexStmt" or not _reindex_concurrently(self.fields) or kind not in _REINDEXED:
            return None
        if kind == "SCHEMA":
            return ReindexTarget(kind, None, self.fields.get("name", ""))
        relation = self.fields.get("relation") or {}
        return ReindexTarget(kind, relation.get("schemaname"), relation.get("relname", ""))

    @property
    def sets_session_state(self) -> bool:
        """``SET``/``RESET`` (search_path, role, timeouts): it changes the session, not the database."""
        return self.kind == "VariableSetStmt"

    def do_body_offset(self) -> int | None:
        """Where a ``DO`` block's code starts in the file (its PL/pgSQL line 1), else None."""
        if self.kind != "DoStmt":
            return None
        for arg in self.fields.get("args") or ():
            option = arg.get("DefElem") or {}
            if option.get("defname") == "as" and "String" in (option.get("arg") or {}):
                found = self.sql.find(option["arg"]["String"].get("sval", ""))
                return self.start + found if found >= 0 else None
        return None


@dataclass(frozen=True)
class Script:
    """A parsed SQL file: its statements without the file's own transaction wrapper."""

    text: str
    statements: tuple[Statement, ...]
    wrapped: bool
    #: The wrapper's own BEGIN, so its options (ISOLATION LEVEL …, READ ONLY) still apply.
    begin: str = "BEGIN"

    @cached_property
    def lines(self) -> Lines:
        return Lines(self.text)

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset into the text."""
        return self.lines.position(offset)

    def line_text(self, line: int) -> str:
        """The text of 1-based ``line``; "" outside the text."""
        return self.lines.line_text(line)

    @cached_property
    def non_transactional(self) -> list[Statement]:
        """Statements PostgreSQL refuses inside a transaction block."""
        return [s for s in self.statements if s.non_transactional_reason]

    @property
    def runs_in_transaction(self) -> bool:
        return not self.non_transactional

    @cached_property
    def names(self) -> frozenset[str]:
        """Every name the file's statements mention (see :attr:`Statement.names`)."""
        return frozenset().union(*(s.names for s in self.statements))


def _dicts(tree) -> Iterator[dict]:
    """Every dict in a parse tree (JSON lists and dicts), without recursion: trees can nest thousands deep."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            yield item
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))


def parse_tree(text: str) -> list[dict]:
    """libpg_query's parse of ``text``: ``{"stmt": {Kind: fields}, "stmt_location", "stmt_len"}`` per statement.

    Locations are UTF-8 byte offsets (absent when 0). Raises :class:`ScriptError`
    (with a character offset) when PostgreSQL's grammar rejects the text.
    """
    parser, loads = libpg()
    try:
        return loads(parser.parse_sql_json(text)).get("stmts", [])
    except parser.ParseError as error:
        raise _script_error(error) from None


@functools.cache
def libpg():
    """(pglast's parser module, a JSON reader), imported by the first parse, not at start-up: a run that
    parses nothing never loads them. orjson turns libpg_query's JSON into dicts in half the json module's time."""
    from orjson import loads
    from pglast import parser

    def read(text: str):
        try:
            return loads(text)
        except ValueError:  # orjson stops at 1024 levels; PostgreSQL's grammar nests 2 a level ('a' || 'b' || …)
            return _read_deep(text)

    return parser, read


# libpg_query's trees stop at about 33 000 levels (its stack depth limit); the stdlib's reader recurses once a
# level, so Python's recursion limit is raised while it reads one (the C stack holds that, threads included).
_DEEP_TREES = 100_000


def _read_deep(text: str):
    import json
    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, _DEEP_TREES))
    try:
        return json.loads(text)
    except RecursionError:
        raise ScriptError("a statement is nested too deeply for the runner to read its parse tree") from None
    finally:
        sys.setrecursionlimit(limit)


def tokens(text: str) -> list[tuple[int, int, str]]:
    """PostgreSQL's lexical tokens of ``text``: (first, last character offset, token name such as
    ``SQL_COMMENT``, ``C_COMMENT`` or ``SCONST``). Raises :class:`ScriptError` if the text cannot be scanned.
    """
    parser, _ = libpg()
    try:
        return [(token.start, token.end, token.name) for token in parser.scan(text)]
    except parser.ParseError as error:
        raise _script_error(error) from None


def identifiers(text: str, *, depth: int = 1) -> set[str]:
    """The identifiers and non-reserved keywords of ``text`` as PostgreSQL folds them (``Users`` → ``users``,
    ``"Users"`` kept); with ``depth`` > 1, also those inside its string constants. Empty if it cannot be scanned."""
    parser, _ = libpg()
    try:
        found = parser.scan(text)
    except parser.ParseError:
        return set()
    names = set()
    for token in found:
        word = text[token.start : token.end + 1]
        if token.name == "IDENT" or token.kind in ("UNRESERVED_KEYWORD", "COL_NAME_KEYWORD"):
            names.add(word[1:-1].replace('""', '"') if word.startswith('"') else word.lower())
        elif token.name == "SCONST" and depth > 1:
            quote = word.find("'") if not word.startswith("$") else -1
            inner = word[quote + 1 : -1] if quote >= 0 else word[word.find("$", 1) + 1 : word.rfind("$", 0, -1)]
            names |= identifiers(inner.replace("''", "'"), depth=depth - 1)
    return names


def _script_error(error) -> ScriptError:
    """pglast reports the error position as a character offset already (PostgreSQL's cursor position)."""
    return ScriptError(error.args[0], error.args[1] if len(error.args) > 1 else None)


def parse_script(text: str) -> Script:
    """Split ``text`` into statements and strip a top-level ``BEGIN``/``COMMIT`` wrapper.

    Raises :class:`ScriptError` for syntax errors, stray transaction control,
    and a wrapper around statements that cannot run in a transaction.
    """
    statements = _statements(text, parse_tree(text))
    first = statements[0].transaction_kind if statements else None
    wrapped = len(statements) >= 2 and first in _BEGINS and statements[-1].transaction_kind == _COMMIT
    if first in _BEGINS and not wrapped:
        for statement in statements[1:]:
            if statement.transaction_kind == _COMMIT:
                raise ScriptError(
                    "transaction control (COMMIT) before the end of the file: the BEGIN;…COMMIT; wrapper must "
                    "enclose the whole file (split it into two migrations instead)",
                    statement.start,
                )
        raise ScriptError("BEGIN without a COMMIT at the end of the file", statements[0].start)
    body = statements[1:-1] if wrapped else statements
    for statement in body:
        if statement.is_transaction_control and statement.transaction_kind not in _SAVEPOINTS:
            raise ScriptError(
                f"transaction control ({_keyword(statement.transaction_kind)}) inside the file: the runner puts "
                "each file in one transaction; only a BEGIN;…COMMIT; wrapper around the whole file is allowed",
                statement.start,
            )
    script = Script(text, tuple(body), wrapped, statements[0].sql if wrapped else "BEGIN")
    if wrapped and script.non_transactional:
        refused = script.non_transactional[0]
        raise ScriptError(
            f"{refused.non_transactional_reason} cannot run inside a transaction block, but the file is wrapped "
            "in BEGIN;…COMMIT;: remove the wrapper (the file then runs statement by statement, not atomically) "
            "or move this statement to a migration of its own",
            refused.start,
        )
    return script


def _statements(text: str, tree: list[dict]) -> list[Statement]:
    chars = None if text.isascii() else _CharOffsets(text)  # ASCII: bytes and characters are the same
    statements = []
    for raw in tree:
        begin = raw.get("stmt_location", 0)
        length = raw.get("stmt_len")
        if chars is None:
            start, end = begin, begin + length if length else len(text)
        else:
            start, end = chars(begin), chars(begin + length) if length else len(text)
        sql = text[start:end]
        # Leading blanks belong to no statement; the start is where the first token is.
        stripped = sql.lstrip()
        ((kind, fields),) = raw["stmt"].items()
        statements.append(Statement(stripped.rstrip(), start + len(sql) - len(stripped), kind, fields))
    return statements


class _CharOffsets:
    """UTF-8 byte offset → character offset, for offsets met in increasing order (statements are)."""

    def __init__(self, text: str):
        self.data = text.encode("utf-8")
        self.byte = self.char = 0

    def __call__(self, offset: int) -> int:
        if offset < self.byte:
            self.byte = self.char = 0
        # libpg_query's locations fall between characters, so each slice decodes whole.
        self.char += len(self.data[self.byte : offset].decode("utf-8", "ignore"))
        self.byte = offset
        return self.char


def _keyword(kind: str) -> str:
    """``COMMIT`` for TRANS_STMT_COMMIT, ``PREPARE TRANSACTION`` for TRANS_STMT_PREPARE, …"""
    words = kind.removeprefix("TRANS_STMT_").replace("_", " ")
    return "PREPARE TRANSACTION" if words == "PREPARE" else words


def non_transactional_reason(kind: str, fields: dict) -> str | None:
    """Why PostgreSQL refuses a statement (node type ``kind``, JSON ``fields``) in a transaction block, or None."""
    if kind not in _MAYBE_OUTSIDE_TRANSACTION:
        return None
    if kind in _NEVER_IN_TRANSACTION:
        return _NEVER_IN_TRANSACTION[kind]
    if kind == "IndexStmt" and fields.get("concurrent"):
        return "CREATE INDEX CONCURRENTLY"
    if kind == "DropStmt" and fields.get("concurrent"):
        return "DROP INDEX CONCURRENTLY"
    if kind == "ReindexStmt":
        if _reindex_concurrently(fields):
            return "REINDEX CONCURRENTLY"
        if fields.get("kind") in ("REINDEX_OBJECT_SYSTEM", "REINDEX_OBJECT_DATABASE"):
            return "REINDEX SYSTEM/DATABASE"
    if kind == "VacuumStmt" and fields.get("is_vacuumcmd"):
        return "VACUUM"
    if kind == "ClusterStmt" and not fields.get("relation"):
        return "CLUSTER (all tables)"
    if kind == "AlterTableStmt":
        for cmd in fields.get("cmds") or ():
            if (((cmd.get("AlterTableCmd") or {}).get("def") or {}).get("PartitionCmd") or {}).get("concurrent"):
                return "ALTER TABLE … DETACH PARTITION … CONCURRENTLY"
    return None


def _reindex_concurrently(fields: dict) -> bool:
    for param in fields.get("params") or ():
        option = param.get("DefElem") or {}
        if option.get("defname") == "concurrently":
            # A boolean option as PostgreSQL reads it: no value is true; (CONCURRENTLY false|off|0) turns it off.
            arg = option.get("arg") or {}
            if "Integer" in arg:
                return bool(arg["Integer"].get("ival"))
            return (arg.get("String") or {}).get("sval", "true").lower() not in ("false", "off")
    return False


def copy_from_stdin_before(text: str, offset: int | None) -> int | None:
    """Where a ``COPY … FROM STDIN`` starts when it is the last statement before the line of ``offset``.

    A parse error on the lines after such a COPY is its data (psql's format), not a
    typo: the caller then names the COPY instead of the first data line.
    """
    if offset is None:
        return None
    head = text[: text.rfind("\n", 0, offset) + 1]
    try:
        statements = _statements(head, parse_tree(head))
    except ScriptError:
        return None
    return statements[-1].start if statements and statements[-1].is_copy_from_stdin else None
