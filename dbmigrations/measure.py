"""Locks, measured: which table locks a migration really takes, and which tables it rewrites.

Read on a real server instead of guessed from the SQL: the locks are those that the
migration's own backend holds in ``pg_locks`` at the end of its transaction, just
before ``COMMIT`` (a lock, once taken, is held to the end of the transaction); a
rewrite is a table or index whose ``relfilenode`` changed (:mod:`dbmigrations.tracker`
sees it). ``verify_sql_migrations`` reports both; an ACCESS EXCLUSIVE lock on a table
that existed before the migration is flagged, since it blocks every read and write of
that table while it is held. The same locks tell which tables' rows the migration may
have changed (:func:`written`): only those are counted again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from .blockers import readable_mode
from .ledger import NAME as TABLE
from .runner import FileRun
from .tracker import Locked

# The catalogs of the objects whose locks are reported, and the tracker's name for each.
OBJECT_CLASSES = {"pg_proc": "func", "pg_type": "type", "pg_namespace": "schema", "pg_extension": "ext"}
TAKEN = "dbmigrations.locks="
# Sent inside the migration's transaction, before COMMIT: its answer comes back as one JSON value. A relation
# the transaction dropped has no pg_class row any more: it comes without a name. Locks on functions, types,
# schemas and extensions come too (with their catalog as "class"): the schema tracker reads those again.
LOCKS_TAKEN = f"""SELECT '{TAKEN}' || coalesce(json_agg(json_build_object(
    'relation', CASE WHEN c.oid IS NOT NULL THEN format('%I.%I', n.nspname, c.relname) END,
    'oid', coalesce(l.relation, l.objid)::bigint, 'kind', c.relkind, 'mode', l.mode,
    'class', CASE WHEN l.locktype = 'object' THEN l.classid::regclass::text END)
    ORDER BY n.nspname, c.relname, l.mode), '[]')::text
  FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE l.pid = pg_backend_pid() AND l.granted
   AND (l.locktype = 'relation' AND (c.oid IS NULL OR n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_toast%' AND c.relname NOT IN ('{TABLE}', '{TABLE}_pkey', 'idx_{TABLE}_applied_at'))
     OR l.locktype = 'object' AND l.classid IN ({", ".join(f"'{c}'::regclass" for c in OBJECT_CLASSES)}))"""
TABLE_KINDS = ("r", "p", "m")
# The modes a transaction holds on a table whose rows it may have changed (INSERT, UPDATE, DELETE, MERGE, COPY
# take ROW EXCLUSIVE; TRUNCATE and DROP take ACCESS EXCLUSIVE); reads and index builds take weaker ones.
WRITE_MODES = frozenset({"RowExclusiveLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"})
# The modes a transaction holds on a relation whose definition it may have changed: every DDL takes one of
# these (ALTER TABLE, CREATE INDEX or TRIGGER, RENAME, DROP…); reads and writes of rows take weaker ones.
DDL_MODES = frozenset(
    {"ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}
)


@dataclass(frozen=True)
class TakenLock:
    """One lock the migration held at its end: the relation, the mode, whether the relation existed before."""

    relation: str
    mode: str
    existed: bool
    kind: str

    @property
    def blocks_existing_table(self) -> bool:
        """ACCESS EXCLUSIVE on a table that existed before: it blocks that table's reads and writes."""
        return self.existed and self.kind in TABLE_KINDS and self.mode == "AccessExclusiveLock"

    def describe(self) -> str:
        return f"{self.relation} {readable_mode(self.mode)}"


def _reported(run: FileRun | None) -> list[dict] | None:
    value = next((v for v in (run.runner_values if run else ()) if v and v.startswith(TAKEN)), None)
    return None if value is None else json.loads(value[len(TAKEN) :])


def locks_taken(run: FileRun | None, existed: Callable[[int], bool]) -> list[TakenLock] | None:
    """The locks reported by :data:`LOCKS_TAKEN` in ``run`` on relations still there (None: not measured, e.g.
    a file outside a transaction); ``existed(oid)`` tells whether a relation existed before the run."""
    rows = _reported(run)
    if rows is None:
        return None
    return [
        TakenLock(row["relation"], row["mode"], existed(row["oid"]), row["kind"])
        for row in rows
        if row["relation"] is not None
    ]


def altered(run: FileRun | None) -> Locked | None:
    """What ``run``'s transaction may have changed the definition of, from its locks (None: not measured):
    relations locked in a DDL mode or dropped, and the functions, types, schemas and extensions it locked
    in a mode stronger than ACCESS SHARE (to drop, rename or alter them)."""
    rows = _reported(run)
    if rows is None:
        return None
    relations = {
        row["oid"] for row in rows if row["class"] is None and (row["mode"] in DDL_MODES or row["relation"] is None)
    }
    objects: dict[str, set[int]] = {}
    for row in rows:
        if row["class"] is not None and row["mode"] != "AccessShareLock":
            objects.setdefault(OBJECT_CLASSES[row["class"]], set()).add(row["oid"])
    return Locked(frozenset(relations), {kind: frozenset(oids) for kind, oids in objects.items()})


def written(run: FileRun | None) -> set[int] | None:
    """Oids of the relations ``run`` may have changed rows of, dropped ones included (None: not measured)."""
    rows = _reported(run)
    return None if rows is None else {row["oid"] for row in rows if row["class"] is None and row["mode"] in WRITE_MODES}
