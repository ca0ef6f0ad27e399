"""INVALID indexes around ``CREATE INDEX CONCURRENTLY``: never kept, never recorded as built.

A concurrent build commits the index's catalog entry first and marks it valid only
at the very end, so a build that fails, or whose runner died, leaves an INVALID
index: useless to queries, still maintained by every write, and enough to make a
rerun's ``IF NOT EXISTS`` skip the build. The runner looks at the statement's table
(resolved as the statement resolves it: its schema if written, else the session's
search_path) before and after each concurrent build.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from .session import Part, Session, run_batch
from .statements import IndexTarget

# Indexes in the table's schema with the statement's name, and INVALID indexes of the table.
LOOKUP = """
SELECT c.oid::bigint, format('%%I.%%I', n.nspname, c.relname), i.indisvalid, i.indrelid = t.oid, c.relname = %(name)s
FROM pg_class t
JOIN pg_class c ON c.relnamespace = t.relnamespace
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_index i ON i.indexrelid = c.oid
WHERE t.oid = to_regclass(%(table)s) AND (c.relname = %(name)s OR (i.indrelid = t.oid AND NOT i.indisvalid))
"""


@dataclass(frozen=True)
class Index:
    """An index found by :func:`lookup`; ``name`` is schema-qualified (and quoted where needed)."""

    oid: int
    name: str
    valid: bool
    on_table: bool
    named: bool


@dataclass(frozen=True)
class Indexes:
    """What :func:`lookup` found: the index the statement names (if any) and the table's INVALID indexes."""

    found: tuple[Index, ...]

    @property
    def named(self) -> Index | None:
        return next((i for i in self.found if i.named), None)

    def invalid(self) -> list[Index]:
        return [i for i in self.found if i.on_table and not i.valid]


def lookup(session: Session, target: IndexTarget) -> Indexes:
    """The index ``target`` names and the INVALID indexes of its table, as the session sees them now."""
    parts = (target.schema, target.table) if target.schema else (target.table,)
    table = sql.Identifier(*parts).as_string(session.connection)
    rows = session.fetch(LOOKUP, {"table": table, "name": target.name or ""})
    return Indexes(tuple(Index(*row) for row in rows))


def drop(session: Session, index: Index) -> str:
    """Drop an INVALID index concurrently; return the statement that did it."""
    statement = f"DROP INDEX CONCURRENTLY IF EXISTS {index.name}"
    run_batch(session, [Part((statement,))])
    return statement + ";"
