"""Helpers over libpg_query's JSON parse tree (pglast ``parse_sql_json``).

The lint reads the tree as plain dicts: ``{"CreateStmt": {...fields}}``. Building
pglast's Python node objects costs ten times more than the parse itself, and the
lint must stay close to squawk's speed on a thousand files.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import NamedTuple

from pglast import parser


class Stmt(NamedTuple):
    """A statement: its node, where it is in the file, and what encloses it."""

    kind: str
    fields: dict
    start: int
    end: int
    guarded: bool = False  # inside a DO block's existence check or duplicate_* handler
    in_do: bool = False


DATA_CHANGES = {"InsertStmt": "INSERT", "UpdateStmt": "UPDATE", "DeleteStmt": "DELETE",
                "TruncateStmt": "TRUNCATE", "CopyStmt": "COPY", "MergeStmt": "MERGE"}
_DDL_PREFIXES = ("Create", "Alter", "Drop", "Define", "Rename", "Comment", "Grant", "Import", "SecLabel")
_DDL_EXTRA = {"IndexStmt", "ViewStmt", "RuleStmt", "CompositeTypeStmt"}


def parse(sql: str) -> list[dict]:
    """Top-level statements of ``sql``: ``{"stmt": {...}, "stmt_location": bytes, "stmt_len": bytes}``."""
    return json.loads(parser.parse_sql_json(sql)).get("stmts", [])


def kind_of(node: dict) -> tuple[str, dict]:
    """``{"CreateStmt": {...}}`` → ``("CreateStmt", {...})``."""
    (kind, fields), = node.items()
    return kind, fields


def walk(value) -> Iterator[tuple[str, dict]]:
    """Every node below ``value`` (itself included), as ``(kind, fields)``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if len(item) == 1:
                (key, inner), = item.items()
                if key[:1].isupper() and isinstance(inner, dict):
                    yield key, inner
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))


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
    try:
        tree = parse("SELECT " + condition)
    except parser.ParseError:
        return False
    for kind, fields in walk(tree):
        if kind == "SubLink" and fields.get("subLinkType") == "EXISTS_SUBLINK":
            return True
        if kind == "FuncCall" and (names(fields.get("funcname")) or [""])[-1].startswith("to_reg"):
            return True
        if kind == "RangeVar" and (fields.get("schemaname") in ("pg_catalog", "information_schema")
                                   or fields.get("relname", "").startswith("pg_")):
            return True
    return False


def non_transactional_reason(kind: str, fields: dict) -> str | None:
    """Why PostgreSQL refuses the statement inside a transaction block, or None.

    Mirrors ``statements._non_transactional_reason`` (the runner's view) on the
    JSON tree; tests/test_lint.py checks both agree.
    """
    simple = {"CreatedbStmt": "CREATE DATABASE", "DropdbStmt": "DROP DATABASE", "AlterSystemStmt": "ALTER SYSTEM",
              "CreateTableSpaceStmt": "CREATE TABLESPACE", "DropTableSpaceStmt": "DROP TABLESPACE",
              "CreateSubscriptionStmt": "CREATE SUBSCRIPTION", "DropSubscriptionStmt": "DROP SUBSCRIPTION"}
    if kind in simple:
        return simple[kind]
    if kind == "IndexStmt" and fields.get("concurrent"):
        return "CREATE INDEX CONCURRENTLY"
    if kind == "DropStmt" and fields.get("concurrent"):
        return "DROP INDEX CONCURRENTLY"
    if kind == "ReindexStmt":
        if any(p.get("DefElem", {}).get("defname") == "concurrently" for p in fields.get("params") or ()):
            return "REINDEX CONCURRENTLY"
        if fields.get("kind") in ("REINDEX_OBJECT_SYSTEM", "REINDEX_OBJECT_DATABASE"):
            return "REINDEX SYSTEM/DATABASE"
    if kind == "VacuumStmt" and fields.get("is_vacuumcmd"):
        return "VACUUM"
    if kind == "ClusterStmt" and not fields.get("relation"):
        return "CLUSTER (all tables)"
    if kind == "AlterTableStmt":
        for cmd in fields.get("cmds") or ():
            if cmd.get("AlterTableCmd", {}).get("def", {}).get("PartitionCmd", {}).get("concurrent"):
                return "ALTER TABLE … DETACH PARTITION … CONCURRENTLY"
    return None
