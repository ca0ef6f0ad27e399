"""Idempotent DDL: a migration must survive a second run (spec: "safe to run multiple times").

squawk's ``prefer-robust-stmts`` checks part of this, but only outside a
transaction; the runner puts every file it can in one, so these rules cover the
rest. Where squawk does report the same statement, the engine keeps squawk's
finding instead of ours (one finding per problem). A statement inside a DO block's
existence check counts as guarded.
"""

from __future__ import annotations

from .nodes import names, relation
from .registry import ERROR, MIGRATION_KINDS, at, rule
from .source import LintFile, Stmt

_IF_NOT_EXISTS = {
    "CreateStmt": "TABLE",
    "CreateForeignTableStmt": "FOREIGN TABLE",
    "IndexStmt": "INDEX",
    "CreateSeqStmt": "SEQUENCE",
    "CreateSchemaStmt": "SCHEMA",
    "CreateExtensionStmt": "EXTENSION",
    "CreateForeignServerStmt": "SERVER",
    "CreateStatsStmt": "STATISTICS",
}
_TYPES = {
    "CreateEnumStmt": "TYPE",
    "CreateRangeStmt": "TYPE",
    "CompositeTypeStmt": "TYPE",
    "CreateDomainStmt": "DOMAIN",
}
_DROPS = {
    "DropStmt": "",
    "DropRoleStmt": "ROLE",
    "DropdbStmt": "DATABASE",
    "DropTableSpaceStmt": "TABLESPACE",
    "DropSubscriptionStmt": "SUBSCRIPTION",
    "DropUserMappingStmt": "USER MAPPING",
}


_REPLACEABLE = frozenset({"CreateFunctionStmt", "ViewStmt", "RuleStmt"})
_DROPPED_FIRST = frozenset({"CreateTrigStmt", "CreatePolicyStmt"})


def _label(value: str | None) -> str:
    return (value or "").removeprefix("OBJECT_").replace("MATVIEW", "MATERIALIZED_VIEW").replace("_", " ")


def _relname(fields: dict) -> str:
    return (relation(fields) or fields.get("table") or fields.get("sequence") or {}).get("relname", "")


def _type_name(kind: str, fields: dict) -> str:
    if kind == "CompositeTypeStmt":
        return fields.get("typevar", {}).get("relname", "")
    return (names(fields.get("typeName") or fields.get("domainname") or fields.get("defnames")) or [""])[-1]


def _object_names(fields: dict) -> list[list[str]]:
    """``DROP … a.b, c`` → ``[["a", "b"], ["c"]]``."""
    out = []
    for obj in fields.get("objects") or ():
        if isinstance(obj, dict):
            inner = (
                obj.get("List", {}).get("items")
                or obj.get("TypeName", {}).get("names")
                or obj.get("ObjectWithArgs", {}).get("objname")
                or [obj]
            )
            out.append(names(inner))
    return out


def _dropped(earlier: list[Stmt], remove_type: str) -> list[list[str]]:
    """Name lists of objects of ``remove_type`` dropped by ``earlier`` statements."""
    return [
        n
        for s in earlier
        if s.kind == "DropStmt" and s.fields.get("removeType") == remove_type
        for n in _object_names(s.fields)
    ]


@rule(
    "L005",
    "non-idempotent-create",
    ERROR,
    "add IF NOT EXISTS; a TYPE or DOMAIN has none: create it in "
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = '…') THEN … END IF; END $$",
    kinds=MIGRATION_KINDS,
)
def non_idempotent_create(f: LintFile):
    for i, s in enumerate(f.statements):
        if s.guarded:
            continue
        fields = s.fields.get("base", s.fields) if s.kind == "CreateForeignTableStmt" else s.fields
        if s.kind in _IF_NOT_EXISTS or s.kind == "CreateTableAsStmt":
            if fields.get("if_not_exists") or relation(fields).get("relpersistence") == "t":
                continue
            if s.kind == "IndexStmt" and not fields.get("idxname"):
                yield at(f, s, "CREATE INDEX without a name: every run adds another index")
                continue
            what = _IF_NOT_EXISTS.get(s.kind) or _label(fields.get("objtype")).replace("TABLE", "TABLE AS", 1)
            name = (
                fields.get("idxname")
                or _relname(fields)
                or fields.get("schemaname")
                or fields.get("extname")
                or fields.get("servername")
                or ".".join(names(fields.get("defnames")))
            )
            yield at(f, s, " ".join(filter(None, ("CREATE", what, name, "without IF NOT EXISTS"))))
        elif s.kind in _TYPES or (s.kind == "DefineStmt" and s.fields.get("kind") == "OBJECT_TYPE"):
            what, name = _TYPES.get(s.kind, "TYPE"), _type_name(s.kind, s.fields)
            dropped = _dropped(f.statements[:i], f"OBJECT_{what}")
            if not any(d and d[-1] == name for d in dropped):
                yield at(f, s, f"CREATE {what} {name} has no IF NOT EXISTS: guard it with an existence check")


@rule(
    "L006",
    "non-idempotent-drop",
    ERROR,
    "write DROP … IF EXISTS (ALTER TABLE … DROP COLUMN/CONSTRAINT IF EXISTS)",
    kinds=MIGRATION_KINDS,
)
def non_idempotent_drop(f: LintFile):
    for s in f.statements:
        if s.guarded:
            continue
        if s.kind in _DROPS:
            if not s.fields.get("missing_ok"):
                what = _label(s.fields.get("removeType")) or _DROPS[s.kind]
                objects = ", ".join(".".join(n) for n in _object_names(s.fields))
                yield at(f, s, " ".join(filter(None, ("DROP", what, objects, "without IF EXISTS"))))
        elif s.kind == "AlterTableStmt":
            for cmd in _cmds(s):
                if cmd.get("subtype") in ("AT_DropColumn", "AT_DropConstraint") and not cmd.get("missing_ok"):
                    word = "COLUMN" if cmd["subtype"] == "AT_DropColumn" else "CONSTRAINT"
                    yield at(
                        f, s, f"ALTER TABLE {_relname(s.fields)} DROP {word} {cmd.get('name', '')} without IF EXISTS"
                    )


def _cmds(s: Stmt) -> list[dict]:
    return [c["AlterTableCmd"] for c in s.fields.get("cmds") or () if "AlterTableCmd" in c]


@rule("L007", "missing-or-replace", ERROR, "write CREATE OR REPLACE FUNCTION / PROCEDURE / VIEW", kinds=MIGRATION_KINDS)
def missing_or_replace(f: LintFile):
    for s in f.statements:
        if s.kind not in _REPLACEABLE or s.guarded or s.fields.get("replace"):
            continue
        if s.kind == "CreateFunctionStmt":
            what = "PROCEDURE" if s.fields.get("is_procedure") else "FUNCTION"
            yield at(f, s, f"CREATE {what} {(names(s.fields.get('funcname')) or [''])[-1]} without OR REPLACE")
        elif s.kind == "ViewStmt":
            yield at(f, s, f"CREATE VIEW {s.fields.get('view', {}).get('relname', '')} without OR REPLACE")
        elif s.kind == "RuleStmt":
            yield at(f, s, f"CREATE RULE {s.fields.get('rulename', '')} without OR REPLACE")


@rule(
    "L008",
    "create-without-drop",
    ERROR,
    "put `DROP TRIGGER IF EXISTS name ON table;` (or DROP POLICY) right before it; "
    "CREATE OR REPLACE TRIGGER works on PostgreSQL 14+",
    kinds=MIGRATION_KINDS,
)
def create_without_drop(f: LintFile):
    for i, s in enumerate(f.statements):
        if s.kind not in _DROPPED_FIRST or s.guarded or s.fields.get("replace"):
            continue
        if s.kind == "CreateTrigStmt":
            what, name = "TRIGGER", s.fields.get("trigname", "")
        else:
            what, name = "POLICY", s.fields.get("policy_name", "")
        table = _relname(s.fields)
        if not any(d[-2:] == [table, name] for d in _dropped(f.statements[:i], f"OBJECT_{what}")):
            yield at(f, s, f"CREATE {what} {name} without a DROP {what} IF EXISTS {name} ON {table} before it")


@rule(
    "L009",
    "non-idempotent-alter",
    ERROR,
    "write ADD COLUMN IF NOT EXISTS / ADD VALUE IF NOT EXISTS; a constraint has no IF NOT EXISTS: drop it "
    "IF EXISTS first, or add it in a DO block that checks pg_constraint",
    kinds=MIGRATION_KINDS,
)
def non_idempotent_alter(f: LintFile):
    for i, s in enumerate(f.statements):
        if s.guarded:
            continue
        if s.kind == "AlterEnumStmt" and s.fields.get("newVal") and not s.fields.get("oldVal"):
            if not s.fields.get("skipIfNewValExists"):
                yield at(f, s, f"ALTER TYPE … ADD VALUE '{s.fields['newVal']}' without IF NOT EXISTS")
        if s.kind != "AlterTableStmt":
            continue
        table = _relname(s.fields)
        dropped = {
            (_relname(e.fields), c.get("name"))
            for e in f.statements[: i + 1]
            if e.kind == "AlterTableStmt"
            for c in _cmds(e)
            if c.get("subtype") == "AT_DropConstraint"
        }
        for cmd in _cmds(s):
            if cmd.get("subtype") == "AT_AddColumn" and not cmd.get("missing_ok"):
                column = cmd.get("def", {}).get("ColumnDef", {}).get("colname", "")
                yield at(f, s, f"ALTER TABLE {table} ADD COLUMN {column} without IF NOT EXISTS")
            elif cmd.get("subtype") == "AT_AddConstraint":
                name = cmd.get("def", {}).get("Constraint", {}).get("conname")
                if not name:
                    yield at(f, s, f"ALTER TABLE {table} ADD of an unnamed constraint: every run adds another")
                elif (table, name) not in dropped:
                    yield at(f, s, f"ALTER TABLE {table} ADD CONSTRAINT {name} without an existence check")
