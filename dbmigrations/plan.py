"""Pure planning: (files on disk, ledger rows) → one status per version.

``apply``, ``--plan``, ``sql_migration_status`` (text, ``--json``, ``--check``),
the admin and the system checks all render this one list.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .discovery import SqlFile
from .exceptions import NotReversible
from .ledger import LedgerRow


class State(str, Enum):
    APPLIED = "applied"
    PENDING = "pending"
    MODIFIED = "modified"
    MISSING = "missing"


@dataclass(frozen=True)
class Entry:
    """A version as seen from both sides: the file and the ledger row."""

    number: int
    state: State
    file: SqlFile | None
    row: LedgerRow | None
    out_of_order: bool = False

    @property
    def version(self) -> str:
        return self.file.version if self.file else self.row.version

    @property
    def name(self) -> str:
        if self.file:
            return self.file.name
        return (self.row.filename or self.row.version).removesuffix(".sql")

    def as_dict(self) -> dict:
        row = self.row
        return {
            "version": self.version,
            "name": self.name,
            "state": self.state.value,
            "out_of_order": self.out_of_order,
            "file": str(self.file.path) if self.file else None,
            "description": self.file.description if self.file else (row.description if row else None),
            "checksum": self.file.checksum if self.file else None,
            "applied_checksum": row.checksum if row else None,
            "applied_at": row.applied_at.isoformat() if row and row.applied_at else None,
            "execution_ms": row.execution_ms if row else None,
            "applied_by": row.applied_by if row else None,
            "has_down": bool(self.file and self.file.down),
        }


def status(files: list[SqlFile], rows: list[LedgerRow]) -> list[Entry]:
    """Every file and every ledger row, by version number.

    Versions compare numerically (``002`` and ``0002`` are the same migration).
    ``out_of_order`` marks a pending file older than the newest applied one, and
    an applied row recorded after a higher version.
    """
    by_number = {row.number: row for row in rows}
    newest_applied = max((r.number for r in rows), default=-1)
    entries: list[Entry] = []
    for file in files:
        row = by_number.pop(file.number, None)
        if row is None:
            entries.append(Entry(file.number, State.PENDING, file, None, file.number < newest_applied))
        elif row.checksum and row.checksum != file.checksum:
            entries.append(Entry(file.number, State.MODIFIED, file, row))
        else:
            entries.append(Entry(file.number, State.APPLIED, file, row))
    entries.extend(Entry(row.number, State.MISSING, None, row) for row in by_number.values())
    entries.sort(key=lambda e: e.number)
    return _mark_applied_out_of_order(entries)


def _mark_applied_out_of_order(entries: list[Entry]) -> list[Entry]:
    """Flag applied rows recorded after a higher version was (a merged branch)."""
    result: list[Entry] = []
    earliest_higher = None
    for entry in reversed(entries):
        at = entry.row.applied_at if entry.row else None
        if at is not None and earliest_higher is not None and at > earliest_higher and not entry.out_of_order:
            entry = Entry(entry.number, entry.state, entry.file, entry.row, True)
        if at is not None:
            earliest_higher = at if earliest_higher is None else min(earliest_higher, at)
        result.append(entry)
    result.reverse()
    return result


def pending(entries: list[Entry], *, target: int | None = None) -> list[Entry]:
    """Pending entries in the order they run, up to and including ``target``."""
    return [e for e in entries if e.state == State.PENDING and (target is None or e.number <= target)]


def drifted(entries: list[Entry]) -> list[Entry]:
    """Applied migrations whose file changed since (checksum differs)."""
    return [e for e in entries if e.state == State.MODIFIED]


def missing(entries: list[Entry]) -> list[Entry]:
    """Ledger rows whose file is gone."""
    return [e for e in entries if e.state == State.MISSING]


def to_unapply(entries: list[Entry], *, steps: int | None = None, to: int | None = None) -> list[Entry]:
    """The applied entries to roll back, newest version first.

    ``steps`` (default 1): the newest N applied versions. ``to``: every applied
    version above it (``to`` itself stays applied; ``0`` rolls back everything).
    """
    applied = [e for e in entries if e.row is not None]
    if to is not None:
        if to != 0 and to not in {e.number for e in entries}:
            raise NotReversible(f"--to {to}: no migration file or ledger row has that version (use --to 0 for all)")
        return [e for e in reversed(applied) if e.number > to]
    count = 1 if steps is None else steps
    if count < 1:
        raise NotReversible(f"--steps {count}: must be at least 1")
    if applied and count > len(applied):
        raise NotReversible(f"--steps {count}: only {len(applied)} migration(s) are applied; nothing was changed")
    return list(reversed(applied[-count:])) if applied else []
