"""Schema in migrations, data in seeds (spec: "Separation of Concerns"), and seeds that rerun cleanly."""

from __future__ import annotations

from . import nodes
from .registry import ERROR, MIGRATION_KINDS, WARNING, at, rule
from .source import SEED, LintFile


def describe(kind: str, fields: dict) -> str:
    """A short label of a statement for messages: ``CreateStmt`` → ``CREATE TABLE``."""
    labels = {
        "CreateStmt": "CREATE TABLE",
        "IndexStmt": "CREATE INDEX",
        "ViewStmt": "CREATE VIEW",
        "CreateFunctionStmt": "CREATE FUNCTION",
        "CreateTrigStmt": "CREATE TRIGGER",
        "CreateSeqStmt": "CREATE SEQUENCE",
        "AlterTableStmt": "ALTER TABLE",
        "CreateEnumStmt": "CREATE TYPE",
        "CommentStmt": "COMMENT",
        "GrantStmt": "GRANT",
        "RenameStmt": "ALTER … RENAME",
    }
    if kind == "DropStmt":
        return "DROP " + (fields.get("removeType") or "").removeprefix("OBJECT_").replace("_", " ")
    words = "".join(f" {c}" if c.isupper() and i else c for i, c in enumerate(kind.removesuffix("Stmt")))
    return labels.get(kind) or words.upper()


@rule(
    "L010",
    "data-change-in-migration",
    ERROR,
    "move data changes to a seed (seeds/development/); if this is a deliberate data migration, "
    "suppress it with a reason",
    kinds=MIGRATION_KINDS,
)
def data_change_in_migration(f: LintFile):
    for s in f.statements:
        change = nodes.data_change(s.kind, s.fields)
        if change:
            yield at(f, s, f"{change} in a migration: migrations change the schema, seeds change data")


@rule(
    "L011",
    "unguarded-seed-insert",
    WARNING,
    "add ON CONFLICT … DO NOTHING, or INSERT … SELECT … WHERE NOT EXISTS (…), "
    "or wrap it in DO $$ BEGIN IF NOT EXISTS (…) THEN … END IF; END $$",
    kinds={SEED},
)
def unguarded_seed_insert(f: LintFile):
    for s in f.statements:
        if s.kind != "InsertStmt" or s.guarded or s.fields.get("onConflictClause"):
            continue
        if not nodes.has_not_exists(s.fields.get("selectStmt")):
            table = (s.fields.get("relation") or {}).get("relname", "")
            yield at(f, s, f"INSERT INTO {table} without ON CONFLICT or NOT EXISTS: a second run adds rows again")


@rule("L012", "ddl-in-seed", ERROR, "move schema changes to a migration (migrations/NNN_name.sql)", kinds={SEED})
def ddl_in_seed(f: LintFile):
    for s in f.statements:
        if nodes.is_ddl(s.kind, s.fields):
            yield at(f, s, f"{describe(s.kind, s.fields)} in a seed: seeds change data, migrations change the schema")
