"""Pure planning: (files on disk, ledger rows) → one status per version.

``apply``, ``--plan``, ``sql_migration_status`` (text, ``--json``, ``--check``),
the admin and the system checks all render this one list.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .discovery import NAME_PATTERN, SqlFile
from .exceptions import NotReversible, Problem
from .ledger import LedgerRow
from .resume import Done, describe, digest

LEADING_DIGITS = re.compile(r"\d+")  # a file name's version, even when the rest of the name is invalid


class State(str, Enum):
    APPLIED = "applied"
    PENDING = "pending"
    MODIFIED = "modified"
    MISSING = "missing"
    #: Another file now holds the version of an applied migration (the ledger names the file that ran).
    REPLACED = "replaced"
    #: A file the runner refuses (name, encoding, SQL); ``problems`` says why.
    INVALID = "invalid"
    #: Not recorded, but some of its statements ran (a file outside a transaction that stopped part-way).
    PARTIAL = "partial"


@dataclass(frozen=True)
class Entry:
    """A version as seen from both sides: the file and the ledger row."""

    number: int
    state: State
    file: SqlFile | None
    row: LedgerRow | None
    out_of_order: bool = False
    problems: tuple[Problem, ...] = ()
    #: PARTIAL: the statements that ran, in order.
    progress: tuple[Done, ...] = ()

    @property
    def version(self) -> str | None:
        if self.file:
            return self.file.version
        if self.row:
            return self.row.version
        digits = LEADING_DIGITS.match(self.path.name)
        return digits.group() if digits else None

    @property
    def name(self) -> str:
        if self.file:
            return self.file.name
        if self.problems:
            return self.path.name.removesuffix(".sql")
        return (self.row.filename or self.row.version).removesuffix(".sql")

    @property
    def path(self) -> Path | None:
        """The file on disk (an invalid one too), if any."""
        if self.file:
            return self.file.path
        return Path(self.problems[0].path) if self.problems else None

    def as_dict(self) -> dict:
        row = self.row
        return {
            "version": self.version,
            "name": self.name,
            "state": self.state.value,
            "out_of_order": self.out_of_order,
            "file": str(self.path) if self.path else None,
            "applied_filename": row.filename if row else None,
            "fake": bool(row.fake) if row else None,
            "problems": [
                {"file": p.path, "line": p.line, "column": p.column, "message": p.message} for p in self.problems
            ],
            "description": self.file.description if self.file else (row.description if row else None),
            "checksum": self.file.checksum if self.file else None,
            "applied_checksum": row.checksum if row else None,
            "applied_at": row.applied_at.isoformat() if row and row.applied_at else None,
            "execution_ms": row.execution_ms if row else None,
            "applied_by": row.applied_by if row else None,
            "has_down": bool(self.file and self.file.down_name),
            **({"partial": self.partial_dict()} if self.state == State.PARTIAL else {}),
        }

    def partial_dict(self) -> dict:
        """PARTIAL: which statements ran (1-based, with their first line) and how many the file has."""
        statements = self._statements()
        return {
            "summary": describe(list(self.progress), len(statements) if statements is not None else None),
            "statements": len(statements) if statements is not None else None,
            "ran": [
                {
                    "index": d.index,
                    "sha256": d.sha256,
                    "done_at": d.done_at.isoformat() if d.done_at else None,
                    **_ran_as(statements, d),
                }
                for d in self.progress
            ],
        }

    def _statements(self):
        try:
            return self.file.source.script.statements
        except Exception:  # the file no longer parses: its problem is reported when it is applied
            return None


def status(
    files: list[SqlFile], rows: list[LedgerRow], problems: list[Problem] = (), *, progress: list[Done] = ()
) -> list[Entry]:
    """Every file, every ledger row and every invalid file (``problems``), by version number.

    Versions compare numerically (``002`` and ``0002`` are the same migration).
    ``out_of_order`` marks a pending file older than the newest applied one, and
    an applied row recorded after a higher version. An invalid file keeps the
    ledger row of its version (it is not "missing": it is there, but unusable).
    A pending file with ``progress`` rows (statements that ran) is PARTIAL.
    """
    by_number = {row.number: row for row in rows}
    ran: dict[int, list[Done]] = {}
    for done in progress:
        if done.version.isdigit():
            ran.setdefault(int(done.version), []).append(done)
    newest_applied = max((r.number for r in rows), default=-1)
    entries: list[Entry] = []
    for file in files:
        row = by_number.pop(file.number, None)
        if row is None and file.number in ran:
            entries.append(
                Entry(
                    file.number,
                    State.PARTIAL,
                    file,
                    None,
                    file.number < newest_applied,
                    progress=tuple(sorted(ran[file.number], key=lambda d: d.index)),
                )
            )
        elif row is None:
            entries.append(Entry(file.number, State.PENDING, file, None, file.number < newest_applied))
        elif _replaced(file, row):
            entries.append(Entry(file.number, State.REPLACED, file, row))
        elif row.checksum and row.checksum != file.checksum:
            entries.append(Entry(file.number, State.MODIFIED, file, row))
        else:
            entries.append(Entry(file.number, State.APPLIED, file, row))
    entries.extend(_invalid(problems, by_number))
    entries.extend(Entry(row.number, State.MISSING, None, row) for row in by_number.values())
    entries.sort(key=lambda e: e.number)
    return _mark_applied_out_of_order(entries)


def _replaced(file: SqlFile, row: LedgerRow) -> bool:
    """The row was recorded from another file (another description), with other SQL.

    The same SQL under a new description is a rename, not a replacement: what ran is what is on disk.
    """
    if not row.filename or (row.checksum and row.checksum == file.checksum):
        return False
    match = NAME_PATTERN.match(row.filename)
    return (match["slug"] if match else row.filename) != file.slug


def _invalid(problems: list[Problem], rows: dict[int, LedgerRow]) -> list[Entry]:
    """One INVALID entry per file with problems; an up file takes its version's ledger row."""
    by_path: dict[str, list[Problem]] = {}
    for problem in problems:
        by_path.setdefault(problem.path, []).append(problem)
    entries = []
    for path, found in by_path.items():
        name = Path(path).name
        digits = LEADING_DIGITS.match(name)
        number = int(digits.group()) if digits else -1
        row = None if name.lower().endswith(".down.sql") else rows.pop(number, None)
        entries.append(Entry(number, State.INVALID, None, row, problems=tuple(found)))
    return entries


def _mark_applied_out_of_order(entries: list[Entry]) -> list[Entry]:
    """Flag applied rows recorded after a higher version was (a merged branch)."""
    result: list[Entry] = []
    earliest_higher = None
    for entry in reversed(entries):
        at = entry.row.applied_at if entry.row else None
        if at is not None and earliest_higher is not None and at > earliest_higher and not entry.out_of_order:
            entry = dataclasses.replace(entry, out_of_order=True)
        if at is not None:
            earliest_higher = at if earliest_higher is None else min(earliest_higher, at)
        result.append(entry)
    result.reverse()
    return result


def pending(entries: list[Entry], *, target: int | None = None) -> list[Entry]:
    """Pending (and PARTIAL) entries in the order they run, up to and including ``target``."""
    return [e for e in entries if e.state in (State.PENDING, State.PARTIAL) and (target is None or e.number <= target)]


def drifted(entries: list[Entry]) -> list[Entry]:
    """Applied migrations whose file changed since (checksum differs)."""
    return [e for e in entries if e.state == State.MODIFIED]


def missing(entries: list[Entry]) -> list[Entry]:
    """Ledger rows whose file is gone."""
    return [e for e in entries if e.state == State.MISSING]


def replaced(entries: list[Entry]) -> list[Entry]:
    """Applied versions now held by a different file, whose SQL never ran."""
    return [e for e in entries if e.state == State.REPLACED]


def invalid(entries: list[Entry]) -> list[Entry]:
    """Files the runner refuses."""
    return [e for e in entries if e.state == State.INVALID]


def next_version(versions) -> str:
    """The version after every one of ``versions`` (strings): highest + 1, same zero padding (3+ digits)."""
    used = [v for v in versions if v and v.isdigit()]
    if not used:
        return "001"
    highest = max(used, key=lambda v: (int(v), len(v)))
    return str(int(highest) + 1).zfill(max(3, len(highest)))


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


def _ran_as(statements, done: Done) -> dict:
    """The first line of the statement that ran, and whether the file still has it unchanged."""
    if statements is None or not 0 < done.index <= len(statements):
        return {"sql": None, "unchanged": False}
    statement = statements[done.index - 1]
    return {"sql": statement.sql.splitlines()[0], "unchanged": digest(statement) == done.sha256}
