"""Row counts of the scratch database's tables, kept current by counting again only what a step wrote to.

A transaction changes a table's rows only under a ROW EXCLUSIVE lock or a stronger one (INSERT, UPDATE,
DELETE, MERGE, COPY; TRUNCATE and DROP take ACCESS EXCLUSIVE), held to its end, and that holds for rows
written by triggers, functions and ``DO`` blocks too. So the locks a step's transaction holds just
before its COMMIT (:data:`dbmigrations.measure.LOCKS_TAKEN`) name every table whose count it may have
changed; only those are counted again, in one query (no query at all when it wrote to none). A file that runs outside a transaction
(CONCURRENTLY) shows no such locks: every table is counted again, unless all its statements are of
kinds that change no rows.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable

from psycopg import sql

from . import snapshot
from .session import Session
from .statements import Script

# Statements that never change a table's row count (a dropped table is known from the schema tracker).
NO_ROW_CHANGES = frozenset({"IndexStmt", "ReindexStmt", "VacuumStmt", "VariableSetStmt", "CommentStmt", "DropStmt"})


def may_change_rows(script: Script) -> bool:
    """Whether a file outside a transaction (its locks unseen) may change some table's row count."""
    return any(statement.kind not in NO_ROW_CHANGES for statement in script.statements)


class RowCounts:
    """Rows per table of every user schema (the ledger excluded), as :func:`dbmigrations.snapshot.row_counts`.

    ``tables(oids)`` names the tables to count among ``oids`` (a partition standing for its partitioned
    table), or every table for None: ``{oid: (schema, table)}``; the schema tracker knows them.
    """

    def __init__(self, session: Session, tables: Callable[[Iterable[int] | None], dict[int, tuple[str, str]]]):
        self.session = session
        self.tables = tables
        self.counts: dict[int, tuple[str, int]] = {}  # table oid → (name, rows)
        self.marks: weakref.WeakSet[CountMark] = weakref.WeakSet()
        self.refresh(None)

    def as_dict(self) -> dict[str, int]:
        """``{"clients": 3, "app.x": 0}``, like :func:`dbmigrations.snapshot.row_counts`."""
        return dict(self.counts.values())

    def mark(self) -> CountMark:
        """Remember this point; :meth:`differences` tells what changed since. Dropped when no longer referenced."""
        mark = CountMark()
        self.marks.add(mark)
        return mark

    def refresh(self, written: Iterable[int] | None) -> None:
        """Count again the tables among ``written`` (oids), or every table (None); forget those gone."""
        written = None if written is None else set(written)
        tables = self.tables(written)
        fresh = dict(self._count(tables)) if tables else {}
        asked = set(self.counts) if written is None else written & self.counts.keys()
        for oid in asked | fresh.keys():
            old, new = self.counts.get(oid), fresh.get(oid)
            if old == new:
                continue
            for mark in self.marks:
                mark.old.setdefault(oid, old)
            if new is None:
                del self.counts[oid]
            else:
                self.counts[oid] = new

    def _count(self, tables: dict[int, tuple[str, str]]):
        """One query counts them all."""
        query = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {}::bigint, count(*) FROM {}.{}").format(
                sql.Literal(oid), sql.Identifier(schema), sql.Identifier(table)
            )
            for oid, (schema, table) in sorted(tables.items())
        )
        for oid, rows in self.session.fetch(query.as_string(self.session.connection)):
            schema, table = tables[oid]
            yield oid, (table if schema == "public" else f"{schema}.{table}", rows)

    def differences(self, mark: CountMark) -> list[str]:
        """:func:`dbmigrations.snapshot.count_differences` between the counts at ``mark`` and now."""
        before = dict(old for old in mark.old.values() if old is not None)
        after = dict(self.counts[oid] for oid in mark.old if oid in self.counts)
        return snapshot.count_differences(before, after)


class CountMark:
    """A point in time: the counts, at that point, of the tables whose count changed after it."""

    def __init__(self):
        self.old: dict[int, tuple[str, int] | None] = {}
