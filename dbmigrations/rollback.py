"""Rolling back applied migrations with their ``.down.sql`` files, newest version first.

Each step runs the down file in one transaction with the DELETE of its ledger row,
under the same lock as apply, so both happen or neither does. Everything is checked
before the first step: every migration to roll back needs its up file unchanged
(checksum as recorded) and a down file; otherwise nothing runs.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from . import ledger, plan
from .discovery import SqlFile
from .exceptions import MigrationFailed, NotReversible
from .executor import (
    FileRun,
    finish,
    lock_statements,
    raise_for_lock,
    run_file,
    run_file_without_transaction,
    session_lock,
)
from .session import BatchError, Part, Session, run_batch

Progress = Callable[[str, object], None]


@dataclass
class Step:
    """What happened to one migration being rolled back."""

    entry: plan.Entry
    run: FileRun | None = None
    skipped_concurrently: bool = False


@dataclass
class RollbackResult:
    steps: list[Step] = field(default_factory=list)
    still_applied: int = 0

    @property
    def rolled_back(self) -> list[Step]:
        return [s for s in self.steps if not s.skipped_concurrently]


def select(entries: list[plan.Entry], *, steps: int | None = None, to: int | None = None) -> list[plan.Entry]:
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


def check(chosen: list[plan.Entry], *, pooled: bool = False) -> None:
    """Refuse (:class:`NotReversible`, exit 2) unless every chosen migration can be rolled back."""
    problems = []
    for entry in chosen:
        if entry.state == plan.State.MISSING:
            problems.append(f"{entry.name}: in the ledger but its migration file is missing")
        elif entry.state == plan.State.MODIFIED:
            problems.append(f"{entry.file.path}: changed since it was applied (checksum differs from the ledger), "
                            "so its down file may not undo what ran")
        elif entry.file.down is None:
            problems.append(f"{entry.file.path}: no down file ({entry.name}.down.sql)")
        elif pooled and not entry.file.down.script.runs_in_transaction:
            problems.append(f"{entry.file.down.path}: must run outside a transaction, which needs a direct "
                            "connection (set DATABASE_URL_UNPOOLED or POSTGRES_URL_NON_POOLING), not a pooler")
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise NotReversible(f"cannot roll back, nothing was changed:\n{lines}")


def plan_rollback(session: Session, files: list[SqlFile], *, steps: int | None = None, to: int | None = None,
                  pooled: bool = False) -> list[plan.Entry]:
    """The checked list of migrations a rollback would undo, in order; reads only."""
    entries = plan.status(files, ledger.applied(session, create=False))
    chosen = select(entries, steps=steps, to=to)
    check(chosen, pooled=pooled)
    return chosen


def rollback_migrations(session: Session, files: list[SqlFile], *, steps: int | None = None, to: int | None = None,
                        lock_timeout: float | None = None, pooled: bool = False,
                        progress: Progress | None = None) -> RollbackResult:
    """Roll back the chosen migrations one by one; stop at the first failure (which raises)."""
    notify = progress or (lambda event, payload: None)
    chosen = plan_rollback(session, files, steps=steps, to=to, pooled=pooled)
    result = RollbackResult()
    for entry in chosen:
        notify("start", entry)
        if entry.file.down.script.runs_in_transaction:
            step = _in_transaction(session, entry, lock_timeout)
        else:
            step = _without_transaction(session, entry, lock_timeout)
        result.steps.append(step)
        notify("done", step)
    result.still_applied = len(ledger.applied(session, create=False))
    return result


def _in_transaction(session: Session, entry: plan.Entry, lock_timeout: float | None) -> Step:
    down = entry.file.down
    before = [*lock_statements(session, lock_timeout), ledger.record_unapplied(session, entry.row.version)]
    try:
        run = run_file(session, down.script, str(down.path), before=before, commit=False)
    except BatchError as error:
        raise_for_lock(error, lock_timeout)
        raise
    removed = _deleted(run)
    if removed != 1:
        finish(session, commit=False)
        if removed == 0:  # another runner rolled it back while we waited for the lock
            return Step(entry, skipped_concurrently=True)
        raise NotReversible(f"{entry.name}: the ledger holds {removed} rows for version {entry.row.version}; "
                            "nothing was changed")
    finish(session, commit=True, script=down.script, path=str(down.path))
    return Step(entry, run)


def _deleted(run: FileRun) -> int:
    """Rows removed by the ledger DELETE: the last of the runner's tags (after the file's own)."""
    runner_tags = run.tags[run.statements:]
    words = runner_tags[-1].split() if runner_tags else []
    return int(words[-1]) if words and words[0] == "DELETE" else -1


def _without_transaction(session: Session, entry: plan.Entry, lock_timeout: float | None) -> Step:
    down = entry.file.down
    with session_lock(session, lock_timeout):
        if not ledger.is_recorded(session, entry.row.version):
            return Step(entry, skipped_concurrently=True)
        try:
            run = run_file_without_transaction(session, down.script, str(down.path))
        except MigrationFailed as error:
            note = (error.failure.note or "").replace(
                "The migration was not recorded.", "Its ledger row was kept: the migration still counts as applied.")
            raise MigrationFailed(dataclasses.replace(error.failure, note=note)) from None
        run_batch(session, [Part(("BEGIN", ledger.record_unapplied(session, entry.row.version), "COMMIT"))])
    return Step(entry, run)
