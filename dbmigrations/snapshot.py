"""A comparable picture of a schema, read from PostgreSQL's catalogs.

Used to prove idempotency (a second run changes nothing) and reversibility
(up → down → up gives the same schema). Names and definitions only: no OIDs,
no sizes, nothing that differs between two equal schemas.
"""

from __future__ import annotations

from psycopg import sql

from .session import Session

# What each object's definition is made of; shared with the tracker (dbmigrations/tracker.py), which reads
# the same definitions for the objects a step changed, so that both pictures compare equal.
COLUMN_DEFINITION = """format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
               || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')"""
FUNCTION_NAME = "p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'"
FUNCTION_DEFINITION = "md5(pg_get_functiondef(p.oid))"
TYPE_DEFINITION = """t.typtype::text || coalesce(':' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
               FROM pg_enum e WHERE e.enumtypid = t.oid), '')"""
# Standalone types: enums, domains and composite types of their own (not a table's row type).
TYPE_IS_STANDALONE = """t.typtype IN ('e', 'd', 'c')
          AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')"""
RELATION_KINDS = "('r', 'p', 'v', 'm', 'S', 'f')"
COLUMN_OWNER_KINDS = "('r', 'p', 'v', 'm', 'f')"

QUERIES = {
    "tables": f"""
        SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(schema)s AND c.relkind IN {RELATION_KINDS}""",
    "columns": f"""
        SELECT c.relname || '.' || a.attname,
               {COLUMN_DEFINITION}
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = %(schema)s AND c.relkind IN {COLUMN_OWNER_KINDS} AND a.attnum > 0
          AND NOT a.attisdropped""",
    "constraints": """
        SELECT c.relname || '.' || con.conname, pg_get_constraintdef(con.oid)
        FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(schema)s""",
    "indexes": """
        SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %(schema)s""",
    "triggers": """
        SELECT c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(schema)s AND NOT t.tgisinternal""",
    "functions": f"""
        SELECT {FUNCTION_NAME}, {FUNCTION_DEFINITION}
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = %(schema)s AND p.prokind IN ('f', 'p')""",
    "types": f"""
        SELECT t.typname, {TYPE_DEFINITION}
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = %(schema)s AND {TYPE_IS_STANDALONE}""",
}
LEDGER_TABLE = "schema_migrations"

Snapshot = dict[str, dict[str, str]]


def take(session: Session, schema: str = "public", *, include_ledger: bool = False) -> Snapshot:
    """Every object of ``schema`` by kind: ``{"indexes": {name: definition}, …}``."""
    snapshot: Snapshot = {}
    for kind, query in QUERIES.items():
        rows = session.fetch(query, {"schema": schema})
        snapshot[kind] = {name: definition for name, definition in rows if include_ledger or not is_ledger(name)}
    return snapshot


def is_ledger(name: str) -> bool:
    """The ledger's own objects (its tables, their columns, keys and indexes): never compared."""
    return LEDGER_TABLE in name


def differences(before: Snapshot, after: Snapshot) -> list[str]:
    """Human-readable differences: ``index idx_x added``, ``column t.c changed: … → …``."""
    out = []
    for kind in dict.fromkeys([*QUERIES, *before, *after]):  # QUERIES' order, then extra kinds (take_all)
        old, new = before.get(kind, {}), after.get(kind, {})
        label = kind.rstrip("s") if kind != "indexes" else "index"
        for name in sorted(new.keys() - old.keys()):
            out.append(f"{label} {name} added")
        for name in sorted(old.keys() - new.keys()):
            out.append(f"{label} {name} removed")
        for name in sorted(old.keys() & new.keys()):
            if old[name] != new[name]:
                out.append(f"{label} {name} changed: {old[name]} → {new[name]}")
    return out


USER_SCHEMAS = """
    SELECT nspname FROM pg_namespace
    WHERE nspname <> 'information_schema' AND NOT starts_with(nspname, 'pg_')
    ORDER BY nspname"""
USER_TABLES = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s)
    ORDER BY n.nspname, c.relname"""


def user_schemas(session: Session) -> list[str]:
    """Every schema of the database but PostgreSQL's own (``pg_*``, ``information_schema``)."""
    return [name for (name,) in session.fetch(USER_SCHEMAS)]


def take_all(session: Session) -> Snapshot:
    """:func:`take` over every user schema (names outside ``public`` schema-qualified), plus the
    schemas and extensions themselves."""
    schemas = user_schemas(session)
    merged: Snapshot = {kind: {} for kind in QUERIES}
    merged["schemas"] = {name: "" for name in schemas}
    merged["extensions"] = dict(session.fetch("SELECT extname, extversion FROM pg_extension"))
    for schema in schemas:
        prefix = "" if schema == "public" else schema + "."
        for kind, objects in take(session, schema).items():
            merged[kind].update({prefix + name: definition for name, definition in objects.items()})
    return merged


def row_counts(session: Session) -> dict[str, int]:
    """Rows per table of every user schema (the ledger excluded): ``{"clients": 3, "app.x": 0}``."""
    counts = {}
    for schema, table in session.fetch(USER_TABLES, (user_schemas(session),)):
        if table == LEDGER_TABLE:
            continue
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        name = table if schema == "public" else f"{schema}.{table}"
        counts[name] = session.fetch(query.as_string(session.connection))[0][0]
    return counts


def count_differences(before: dict[str, int], after: dict[str, int]) -> list[str]:
    """``clients: 3 → 6 rows`` for every table whose row count changed (or appeared/vanished)."""
    out = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old != new:
            out.append(f"{name}: {'no table' if old is None else old} → {'no table' if new is None else f'{new} rows'}")
    return out
