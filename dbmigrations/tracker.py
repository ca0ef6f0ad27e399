"""The scratch database's schema, kept current by re-reading only what each step changed.

``verify_sql_migrations`` compares the schema before and after every step (a migration's first run,
its second run, its down file, its re-run). Reading every object each time made a history of N
migrations cost O(N²). The tracker holds one picture, the same objects and definitions as
:func:`dbmigrations.snapshot.take_all`, and after a step sends one query that re-reads only what the
step may have changed:

* the relations its transaction locked in a mode that allows DDL (every change to a table, a column,
  an index, a constraint or a trigger locks the relation; a drop, even by CASCADE, locks what it
  drops), read just before its COMMIT (:func:`dbmigrations.measure.altered`), with the functions,
  types, schemas and extensions it locked to drop, rename or alter them;
* the functions, types, enum values, schemas and extensions whose catalog rows it wrote (an ``xmin``
  newer than the tracker's last look: creating one takes no lock). These catalogs hold little beyond
  the user's own objects; the catalogs of relations, the largest, are not scanned;
* after a rename, the objects that depend on the renamed one (``pg_depend``): their definitions print
  its name.

A step whose locks are not known (a file run outside a transaction) is found by scanning every catalog
for rows written since the last look, plus the objects its files name (a ``DROP`` leaves no row to
find). The same query counts each kind of object; when the counts do not match the picture, something
disappeared that no file named (a ``DROP … CASCADE`` or a ``DROP`` in dynamic SQL), and the whole
schema is read again, so the picture stays exact.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import snapshot
from .session import Session
from .tracker_query import COUNTED, READ_ALL, READ_GIVEN, READ_SCANNING

# The unit an object is read again with: a relation (with its columns, constraints and triggers), a
# function, a type, a schema or an extension.
UNIT_OF = {
    "_rel": "rel",
    "tables": "rel",
    "columns": "rel",
    "constraints": "rel",
    "indexes": "rel",
    "triggers": "rel",
    "functions": "func",
    "types": "type",
    "schemas": "schema",
    "extensions": "ext",
}
UNQUALIFIED = ("schemas", "extensions")
REWRITABLE = ("r", "m", "i")  # relations with storage of their own (as measure.storage has them)
MAX_ROUNDS = 8

Key = tuple[str, str]  # (kind, name) as a snapshot has them: ("indexes", "idx_x"), ("columns", "app.items.id")
UnitId = tuple[str, int]  # ("rel" | "func" | "type" | "schema" | "ext", oid)


@dataclass
class Unit:
    """One relation, function, type, schema or extension as last read: its snapshot entries and more."""

    label: str = ""  # the name a file uses for it: relname, proname, typname, nspname, extname
    schema: str | None = None
    keys: dict[Key, str] = field(default_factory=dict)  # entries, without the ledger's
    objects: Counter = field(default_factory=Counter)  # constraints and triggers (the ledger's too)
    relkind: str | None = None
    relfilenode: int | None = None
    parent: int | None = None  # an index's table, an owned sequence's table, a partition's partitioned table
    qualified: str = ""  # "public.items", quoted where needed


@dataclass(frozen=True)
class Locked:
    """What a step's one transaction locked, read before its COMMIT (:func:`dbmigrations.measure.altered`)."""

    #: Relations it locked in a mode that allows changing their definition, and those it dropped.
    relations: frozenset[int]
    #: Functions, types, schemas and extensions it locked (to drop, rename or alter them): "func" → oids, …
    objects: dict[str, frozenset[int]]


@dataclass
class Change:
    """What one :meth:`SchemaTracker.refresh` found."""

    #: Tables and indexes that existed before and got a new file (relfilenode): rewritten.
    rewritten: list[str] = field(default_factory=list)
    #: Tables (oids) created, dropped or renamed: their row counts must be read again.
    tables: set[int] = field(default_factory=set)
    #: The whole schema was read again (something disappeared that no file named).
    full: bool = False


class Mark:
    """A point in time: the tracker records here the value, at that point, of each entry that changes after it."""

    def __init__(self):
        self.old: dict[Key, str | None] = {}


class SchemaTracker:
    """The schema of a session's database, by snapshot kind, kept current by :meth:`refresh` after each step."""

    def __init__(self, session: Session):
        self.session = session
        self.values: snapshot.Snapshot = {kind: {} for kind in [*snapshot.QUERIES, *UNQUALIFIED]}
        self.units: dict[UnitId, Unit] = {}
        self.by_label: dict[str, set[UnitId]] = {}
        self.children: dict[int, set[int]] = {}  # table oid → its indexes, owned sequences and partitions
        self.counts: Counter = Counter()
        self.marks: weakref.WeakSet[Mark] = weakref.WeakSet()
        self.horizon: int | None = None
        self.full_reads = 0
        self._read_all(Change())

    def knows(self, label: str) -> bool:
        """Whether an object of this name (a relation, function, type, schema or extension) exists."""
        return bool(self.by_label.get(label))

    def knows_relation(self, oid: int) -> bool:
        """Whether a relation of this oid existed at the last refresh."""
        return ("rel", oid) in self.units

    def tables(self, oids: Iterable[int] | None) -> dict[int, tuple[str, str]]:
        """The tables whose rows are counted (ordinary and partitioned ones, the ledger left out) among ``oids``,
        a partition standing for its partitioned table, or all of them (None): ``{oid: (schema, table)}``."""
        found = {}
        for oid in (uid[1] for uid in self.units if uid[0] == "rel") if oids is None else oids:
            unit = self.units.get(("rel", oid))
            if unit is not None and unit.relkind in ("r", "p", "f") and unit.parent:  # a partition
                oid, unit = unit.parent, self.units.get(("rel", unit.parent))
            if unit is not None and unit.relkind in ("r", "p") and unit.label != snapshot.LEDGER_TABLE:
                found[oid] = (unit.schema, unit.label)
        return found

    def snapshot(self) -> snapshot.Snapshot:
        """The whole picture, shaped like :func:`dbmigrations.snapshot.take_all` (a copy)."""
        return {kind: dict(entries) for kind, entries in self.values.items()}

    def mark(self) -> Mark:
        """Remember this point; :meth:`differences` tells what changed since. Dropped when no longer referenced."""
        mark = Mark()
        self.marks.add(mark)
        return mark

    def differences(self, mark: Mark) -> list[str]:
        """:func:`dbmigrations.snapshot.differences` between the schema at ``mark`` and now."""
        before: snapshot.Snapshot = {kind: {} for kind in self.values}
        after: snapshot.Snapshot = {kind: {} for kind in self.values}
        for (kind, name), old in mark.old.items():
            if old is not None:
                before[kind][name] = old
            if name in self.values[kind]:
                after[kind][name] = self.values[kind][name]
        return snapshot.differences(before, after)

    def refresh(self, names: Iterable[str] = (), locked: Locked | None = None) -> Change:
        """Bring the picture up to date after a step.

        ``locked``: what the step's one transaction locked (:func:`dbmigrations.measure.altered`): the
        relations it may have changed are those, and the catalogs of relations are not scanned. Without it,
        every catalog is scanned for rows written since the last refresh, ``names`` (what the step's files
        mention: ``Script.names``) point at what it may have dropped, and counting each kind of object tells
        whether anything else disappeared (then the whole schema is read again).
        """
        change = Change()
        if locked is not None:
            asked = {kind: set(oids) for kind, oids in locked.objects.items()}
            asked["rel"] = set(locked.relations)
        else:
            asked = self._named(names)
        renamed: dict[str, set[int]] = {}
        counts, settled = None, False
        for round_ in range(MAX_ROUNDS):
            query = READ_GIVEN if locked is not None or round_ else READ_SCANNING
            asked, renamed, read = self._read(query, asked, renamed, first=round_ == 0, change=change)
            counts = counts or read
            if not asked and not renamed:
                settled = True
                break
        if not settled or (locked is None and counts != {kind: self.counts[kind] for kind in COUNTED}):
            change.full = True
            self._read_all(change)
        change.rewritten.sort()
        return change

    def _named(self, names: Iterable[str]) -> dict[str, set[int]]:
        """Units the names may refer to, with the indexes, owned sequences and partitions of the tables among them."""
        asked: dict[str, set[int]] = {}
        for name in names:
            for kind, oid in self.by_label.get(name, ()):
                asked.setdefault(kind, set()).add(oid)
        for oid in list(asked.get("rel", ())):
            asked["rel"] |= self.children.get(oid, set())
        return asked

    def _read(self, query: str, asked: dict[str, set[int]], renamed: dict[str, set[int]], *, first: bool, change):
        """One query: what changed since the horizon (``first`` round only), the units ``asked`` for, and
        the dependents of the units ``renamed``. Returns the units to ask for next (indexes, sequences and
        partitions gone from under a table), the units renamed in this round, and the objects counted."""
        params = {
            "horizon": str(self.horizon % 2**32) if first else None,
            **{key: sorted(asked.get(key, ())) for key in ("rel", "func", "type", "schema", "ext")},
            **{f"dep_{key}": sorted(renamed.get(key, ())) for key in ("rel", "func", "type", "schema")},
        }
        counts, fresh = self._fetch(params, query)
        reread = {(kind, oid) for kind, oids in asked.items() for oid in oids} | set(fresh)
        gone_children = {
            child
            for kind, oid in reread
            if kind == "rel" and ("rel", oid) in fresh
            for child in self.children.get(oid, ())
            if ("rel", child) not in fresh and ("rel", child) not in reread
        }
        now_renamed = self._replace(reread, fresh, change)
        return ({"rel": gone_children} if gone_children else {}), now_renamed, counts

    def _read_all(self, change: Change) -> None:
        params = {"horizon": None, **{key: [] for key in ("rel", "func", "type", "schema", "ext")}}
        params.update({f"dep_{key}": [] for key in ("rel", "func", "type", "schema")})
        _, fresh = self._fetch(params, READ_ALL)
        self._replace(set(self.units) | set(fresh), fresh, change)
        self.full_reads += 1

    def _fetch(self, params: dict, query: str) -> tuple[dict[str, int], dict[UnitId, Unit]]:
        fresh: dict[UnitId, Unit] = {}
        counts: dict[str, int] = {}
        rows = self.session.fetch(self._sized(query), params)
        for kind, unit_oid, schema, name, definition, label, relkind, relfilenode, parent in rows:
            if kind == "_head":
                self.horizon = int(name)
                counts = dict(zip(COUNTED, map(int, definition.split(","))))
                continue
            unit = fresh.setdefault((UNIT_OF[kind], unit_oid), Unit())
            if label is not None:
                unit.label, unit.schema = label, schema
            if kind == "_rel":
                unit.relkind, unit.relfilenode, unit.parent, unit.qualified = relkind, relfilenode, parent, name
            elif kind in UNQUALIFIED:
                unit.keys[kind, name] = definition
            else:
                if kind in ("constraints", "triggers"):
                    unit.objects[kind] += 1
                if not snapshot.is_ledger(name):
                    unit.keys[kind, name if schema == "public" else f"{schema}.{name}"] = definition
        return counts, fresh

    def _sized(self, query: str) -> str:
        """The query, its text naming the schema's size class: a new class is a new text, which psycopg
        prepares and the server plans anew. A plan made while the scratch database was nearly empty scans
        catalogs where an index lookup is wanted once they have grown (measured: twice the time at 400
        migrations); a few sizes, each twice the last, keep the plans fitting."""
        size = 64
        while size < len(self.units):
            size *= 2
        return f"{query}-- planned for up to {size} objects\n"

    def _replace(self, reread: set[UnitId], fresh: dict[UnitId, Unit], change: Change) -> dict[str, set[int]]:
        """Put the units read again in place of their old selves; record what changed in every mark.
        Returns the units renamed (an entry of theirs vanished and another appeared), by kind."""
        old_values: dict[Key, str] = {}
        previous: dict[UnitId, Unit] = {}
        for uid in reread:
            unit = self.units.pop(uid, None)
            if unit is not None:
                previous[uid] = unit
                self._index(uid, unit, -1)
                for (kind, name), value in unit.keys.items():
                    old_values[kind, name] = value
                    self.values[kind].pop(name, None)
        for uid, unit in fresh.items():
            self.units[uid] = unit
            self._index(uid, unit, +1)
            for (kind, name), value in unit.keys.items():
                self.values[kind][name] = value
        changed = [
            (key, old_values.get(key))
            for key in old_values.keys() | {k for unit in fresh.values() for k in unit.keys}
            if old_values.get(key) != self.values[key[0]].get(key[1])
        ]
        for mark in self.marks:
            for key, old in changed:
                mark.old.setdefault(key, old)
        renamed: dict[str, set[int]] = {}
        for uid in reread:
            old, new = previous.get(uid), fresh.get(uid)
            if old is not None and new is not None and old.keys.keys() - new.keys.keys():
                if new.keys.keys() - old.keys.keys() or (old.label, old.schema) != (new.label, new.schema):
                    renamed.setdefault(uid[0], set()).add(uid[1])
            self._note(uid, old, new, change)
        return renamed

    def _note(self, uid: UnitId, old: Unit | None, new: Unit | None, change: Change) -> None:
        """Rewrites, and tables created, dropped or renamed."""
        if uid[0] != "rel" or (old is None and new is None):
            return
        if old and new and old.relkind in REWRITABLE and old.relfilenode != new.relfilenode:
            if new.qualified.split(".")[-1] != snapshot.LEDGER_TABLE:
                change.rewritten.append(new.qualified)
        if (old or new).relkind in ("r", "p") and (old is None or new is None or old.qualified != new.qualified):
            change.tables.add(uid[1])

    def _index(self, uid: UnitId, unit: Unit, sign: int) -> None:
        """Add (+1) or remove (-1) a unit from the lookups and the counts."""
        self.counts[uid[0]] += sign
        for kind in ("constraints", "triggers"):
            self.counts[kind] += sign * unit.objects[kind]
        if sign > 0:
            self.by_label.setdefault(unit.label, set()).add(uid)
            if unit.parent:
                self.children.setdefault(unit.parent, set()).add(uid[1])
            return
        self.by_label.get(unit.label, set()).discard(uid)
        if unit.parent:
            self.children.get(unit.parent, set()).discard(uid[1])
