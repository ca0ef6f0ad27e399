"""Helpers over libpg_query's JSON parse tree, the plain dicts the runner's ``Script`` holds.

A node is ``{"CreateStmt": {...fields}}``; a statement's ``fields`` are the very dicts
of :class:`dbmigrations.statements.Statement`, so a file is parsed once for the runner
and the lint alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from ..statements import ScriptError, parse_tree


class Stmt(NamedTuple):
    """A statement: its node, where it is in the file, and what encloses it."""

    kind: str
    fields: dict
    start: int
    end: int
    guarded: bool = False  # inside a DO block's existence check or duplicate_* handler
    in_do: bool = False


DATA_CHANGES = {
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "TruncateStmt": "TRUNCATE",
    "CopyStmt": "COPY",
    "MergeStmt": "MERGE",
}
_DDL_PREFIXES = ("Create", "Alter", "Drop", "Define", "Rename", "Comment", "Grant", "Import", "SecLabel")
_DDL_EXTRA = {"IndexStmt", "ViewStmt", "RuleStmt", "CompositeTypeStmt"}


def parse(sql: str) -> list[dict]:
    """Top-level statements of ``sql`` (a fragment, e.g. of a DO block), or [] if it does not parse."""
    try:
        return parse_tree(sql)
    except ScriptError:
        return []


def kind_of(node: dict) -> tuple[str, dict]:
    """``{"CreateStmt": {...}}`` → ``("CreateStmt", {...})``."""
    ((kind, fields),) = node.items()
    return kind, fields


def walk(value) -> Iterator[tuple[str, dict]]:
    """Every node below ``value`` (itself included), as ``(kind, fields)``."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        if type(item) is list:  # the JSON's own types: type() is cheaper than isinstance() here
            extend(item)
        elif type(item) is dict:
            if len(item) == 1:
                for key, inner in item.items():
                    if type(inner) is dict and key[:1].isupper():
                        yield key, inner
            extend([v for v in item.values() if type(v) is dict or type(v) is list])


def names(items) -> list[str]:
    """``[{"String": {"sval": "a"}}, …]`` → ``["a", …]``."""
    return [i["String"]["sval"] for i in items or () if "String" in i]


def is_ddl(kind: str, fields: dict) -> bool:
    """Does the statement change the schema (CREATE/ALTER/DROP/COMMENT/GRANT …)?"""
    if kind in ("CreateStmt", "CreateTableAsStmt") and relation(fields).get("relpersistence") == "t":
        return False  # a temporary table is scratch space, not schema
    return kind in _DDL_EXTRA or kind.startswith(_DDL_PREFIXES)


def relation(fields: dict) -> dict:
    """The table a statement is about (``relation``, or the new table of CREATE TABLE AS)."""
    return fields.get("relation") or (fields.get("into") or {}).get("rel") or {}


def data_change(kind: str, fields: dict) -> str | None:
    """INSERT/UPDATE/…, also hidden in a ``WITH … AS (DELETE …) SELECT``; else None."""
    if kind in DATA_CHANGES:
        return DATA_CHANGES[kind]
    if kind == "SelectStmt" and fields.get("withClause"):
        for inner, _ in walk(fields["withClause"]):
            if inner in DATA_CHANGES:
                return DATA_CHANGES[inner]
    return None


def has_not_exists(value) -> bool:
    """Is there a ``NOT EXISTS (subquery)`` anywhere below ``value``?"""
    for kind, fields in walk(value):
        if kind == "BoolExpr" and fields.get("boolop") == "NOT_EXPR":
            if any(k == "SubLink" and f.get("subLinkType") == "EXISTS_SUBLINK" for k, f in walk(fields.get("args"))):
                return True
    return False


def is_existence_check(condition: str) -> bool:
    """Does a PL/pgSQL ``IF`` condition look the object up: EXISTS, to_reg*(), the catalogs?"""
    for kind, fields in walk(parse("SELECT " + condition)):
        if kind == "SubLink" and fields.get("subLinkType") == "EXISTS_SUBLINK":
            return True
        if kind == "FuncCall" and (names(fields.get("funcname")) or [""])[-1].startswith("to_reg"):
            return True
        if kind == "RangeVar" and (
            fields.get("schemaname") in ("pg_catalog", "information_schema")
            or fields.get("relname", "").startswith("pg_")
        ):
            return True
    return False
