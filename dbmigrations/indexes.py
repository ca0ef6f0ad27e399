"""INVALID indexes around ``CREATE INDEX CONCURRENTLY`` and ``REINDEX … CONCURRENTLY``: never kept.

A concurrent build commits the index's catalog entry first and marks it valid only
at the very end, so a build that fails, or whose runner died, leaves an INVALID
index: useless to queries, still maintained by every write, and enough to make a
rerun's ``IF NOT EXISTS`` skip the build. The runner looks at the statement's table
(resolved as the statement resolves it: its schema if written, else the session's
search_path) before and after each concurrent build.

``REINDEX … CONCURRENTLY`` builds a copy of each index, ``<index>_ccnew`` (``_ccnew1``,
… when the name is taken; the index name clipped to fit), and swaps it in; the original,
renamed ``<index>_ccold``, is dropped last. A failure leaves the copy, or after the swap
the original, INVALID; a rerun would build ``_ccnew1`` beside the old ``_ccnew``, which
then stays forever. The runner drops such leftovers of the statement's indexes before
it runs, and those it left when it fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg import sql

from .session import Part, Session, run_batch
from .statements import IndexTarget, ReindexTarget

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
    """What :func:`lookup` found (the index the statement names, if any, and the table's INVALID indexes), or
    :func:`reindex_leftovers` (the leftovers)."""

    found: tuple[Index, ...]
    #: INVALID indexes another session is building right now (see :func:`reindex_leftovers`): not to drop.
    busy: tuple[Index, ...] = ()

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


# Every index of the tables a REINDEX … CONCURRENTLY rebuilds (an index's table, and its partitions'; a table,
# its partitions and their TOAST tables; a schema's tables and theirs), and whether the statement rebuilds it.
REINDEX_LOOKUP = """
WITH target AS (SELECT to_regclass(%(relation)s) AS oid WHERE %(kind)s <> 'SCHEMA'),
rebuilt_index AS (
  SELECT relid AS oid FROM target, pg_partition_tree(target.oid) WHERE %(kind)s = 'INDEX'
  UNION SELECT oid FROM target WHERE %(kind)s = 'INDEX'
),
tables AS (
  SELECT indrelid AS oid FROM pg_index WHERE indexrelid IN (SELECT oid FROM rebuilt_index)
  UNION SELECT relid FROM target, pg_partition_tree(target.oid) WHERE %(kind)s = 'TABLE'
  UNION SELECT oid FROM target WHERE %(kind)s = 'TABLE'
  UNION SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE %(kind)s = 'SCHEMA' AND n.nspname = %(schema)s AND c.relkind IN ('r', 'm', 'p')
),
with_toast AS (
  SELECT oid FROM tables
  UNION SELECT reltoastrelid FROM pg_class WHERE oid IN (SELECT oid FROM tables) AND reltoastrelid <> 0 AND %(kind)s <> 'INDEX'
),
busy AS (
  SELECT relation FROM pg_locks WHERE locktype = 'relation' AND mode = 'ShareUpdateExclusiveLock' AND granted
    AND pid <> pg_backend_pid() AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT c.oid::bigint, format('%%I.%%I', n.nspname, c.relname), i.indisvalid, c.relname, i.indrelid::bigint,
  CASE WHEN %(kind)s = 'INDEX' THEN c.oid IN (SELECT oid FROM rebuilt_index) ELSE i.indisvalid END,
  current_setting('max_identifier_length')::int, NOT i.indisvalid AND c.oid IN (SELECT relation FROM busy)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indrelid IN (SELECT oid FROM with_toast)
"""
# PostgreSQL names the copy <index>_ccnew and the original, once swapped out, <index>_ccold; a number follows
# when the name is taken (_ccnew1, _ccnew2, …).
_LEFTOVER = re.compile(r"(.*)_(cc(?:new|old)[0-9]*)", re.DOTALL)


def reindex_leftovers(session: Session, target: ReindexTarget) -> Indexes:
    """The INVALID ``_ccnew``/``_ccold`` indexes that ``REINDEX … CONCURRENTLY`` of ``target`` left on its
    tables, as the session sees them now (``target`` resolved as the statement resolves it).

    Those another session holds as a REINDEX in progress holds them (``busy``) are not
    leftovers yet: dropping one would wait for that REINDEX, then break it with a deadlock.
    """
    parts = (target.schema, target.name) if target.schema else (target.name,)
    relation = sql.Identifier(*parts).as_string(session.connection) if target.kind != "SCHEMA" else None
    rows = session.fetch(REINDEX_LOOKUP, {"kind": target.kind, "relation": relation, "schema": target.name})
    rebuilt = {(row[4], row[3]) for row in rows if row[5]}
    left, busy = [], []
    for oid, name, valid, relname, table, _, limit, held in rows:
        match = _LEFTOVER.fullmatch(relname)
        if valid or not match:
            continue
        prefix, label = match.groups()
        # PostgreSQL clips the index name (to whole characters) so that "_" + label still fits.
        if any(t == table and _clip(base, limit - len(label) - 1) == prefix for t, base in rebuilt):
            (busy if held else left).append(Index(oid, name, valid, True, False))
    return Indexes(tuple(left), tuple(busy))


def _clip(name: str, limit: int) -> str:
    data = name.encode()
    return name if len(data) <= limit else data[:limit].decode("utf-8", "ignore")
