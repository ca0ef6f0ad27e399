"""Resuming a file that runs outside a transaction after it stopped part-way.

Such a file runs statement by statement, each committed on its own; the runner
records each statement that ran (its position and the SHA-256 of its text) until the
migration itself is recorded. A rerun skips the statements that ran, after checking
that their text is unchanged: a statement that already ran cannot be edited after
the fact. ``SET``/``RESET`` statements are run again, since the session they changed
is gone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from .exceptions import PartialRunChanged
from .statements import Statement


@dataclass(frozen=True)
class Done:
    """One statement of a not-yet-recorded migration that ran: 1-based ``index``, text digest, when."""

    version: str
    index: int
    sha256: str
    done_at: datetime | None = None


def digest(statement: Statement) -> str:
    """SHA-256 of a statement's text, as recorded in the progress rows."""
    return hashlib.sha256(statement.sql.encode("utf-8")).hexdigest()


def resume_point(statements: tuple[Statement, ...], done: list[Done], *, path: str, forget: str) -> int:
    """How many leading statements already ran, after checking that each is unchanged since.

    Raises :class:`PartialRunChanged` (exit 2, nothing run) when a statement that ran
    was edited, moved or removed; ``forget`` is the SQL that discards the progress rows.
    """
    indexes = sorted(d.index for d in done)
    if indexes != list(range(1, len(indexes) + 1)):
        raise PartialRunChanged(
            f"{path}: the recorded progress of its earlier run is not a run of leading "
            f"statements ({indexes}); nothing was run. Check by hand, then: {forget}"
        )
    by_index = {d.index: d for d in done}
    for number in indexes:
        if number > len(statements) or digest(statements[number - 1]) != by_index[number].sha256:
            raise PartialRunChanged(
                f"{path}: statement {number} already ran (in an earlier run that stopped part-way) and has been "
                f"edited, moved or removed since; nothing was run. Statements 1-{len(indexes)} ran as they were: "
                "put them back unchanged and fix only the statements after them (make other changes in a new "
                f"migration), or undo what they did by hand and discard the progress: {forget}"
            )
    return len(indexes)


def describe(done: list[Done], total: int | None) -> str:
    """ "statements 1-2 of 3 ran" for the status and the failure note."""
    count = len(done)
    which = "statement 1" if count == 1 else f"statements 1-{count}"
    return f"{which}{f' of {total}' if total is not None else ''} ran"
