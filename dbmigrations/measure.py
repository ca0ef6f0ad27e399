"""Locks, measured: which table locks a migration really takes, and which tables it rewrites.

Read on a real server instead of guessed from the SQL: the locks are those that the
migration's own backend holds in ``pg_locks`` at the end of its transaction, just
before ``COMMIT`` (a lock, once taken, is held to the end of the transaction); a
rewrite is a table or index whose ``relfilenode`` changed. ``verify_sql_migrations``
reports both; an ACCESS EXCLUSIVE lock on a table that existed before the migration
is flagged, since it blocks every read and write of that table while it is held.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .blockers import readable_mode
from .ledger import NAME as TABLE
from .runner import FileRun
from .session import Session

TAKEN = "dbmigrations.locks="
# Sent inside the migration's transaction, before COMMIT: its answer comes back as one JSON value.
LOCKS_TAKEN = f"""SELECT '{TAKEN}' || coalesce(json_agg(json_build_object(
    'relation', format('%I.%I', n.nspname, c.relname), 'oid', c.oid::bigint, 'kind', c.relkind, 'mode', l.mode)
    ORDER BY n.nspname, c.relname, l.mode), '[]')::text
  FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
   AND c.relname NOT IN ('{TABLE}', '{TABLE}_pkey', 'idx_{TABLE}_applied_at')"""
_STORAGE = """
SELECT c.oid::bigint, format('%I.%I', n.nspname, c.relname), c.relkind, c.relfilenode::bigint
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'm', 'i', 't') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
"""
TABLE_KINDS = ("r", "p", "m")


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


Storage = dict[int, tuple[str, str, int]]  # oid → (name, relkind, relfilenode)


def storage(session: Session) -> Storage:
    """Every user table's and index's file (``relfilenode``), by oid: compared before and after a migration."""
    return {oid: (name, kind, node) for oid, name, kind, node in session.fetch(_STORAGE)}


def rewritten(before: Storage, after: Storage) -> list[str]:
    """Tables and indexes that existed before and got a new file: rewritten (or rebuilt) by the migration."""
    return sorted(
        after[oid][0]
        for oid, (_, _, node) in before.items()
        if oid in after and after[oid][2] != node and after[oid][0].split(".")[-1] != TABLE
    )


def locks_taken(run: FileRun | None, before: Storage) -> list[TakenLock] | None:
    """The locks reported by :data:`LOCKS_TAKEN` in ``run`` (None: not measured, e.g. a file outside a transaction)."""
    value = next((v for v in (run.runner_values if run else ()) if v and v.startswith(TAKEN)), None)
    if value is None:
        return None
    return [
        TakenLock(row["relation"], row["mode"], row["oid"] in before, row["kind"])
        for row in json.loads(value[len(TAKEN) :])
    ]
