"""verify's picture of its scratch database: the schema and every table's row count, after each step.

Brought up to date at the cost of what the step touched, not of the whole database: the schema by
:mod:`dbmigrations.tracker`, the row counts by :mod:`dbmigrations.rowcounts`, both told by the locks the
step's transaction held before its COMMIT (:mod:`dbmigrations.measure`) when it ran in one.
"""

from __future__ import annotations

from . import measure, rowcounts
from .discovery import SqlSource
from .ledger import NAME as LEDGER
from .rowcounts import CountMark, RowCounts
from .runner import FileRun
from .session import Session
from .tracker import Change, Mark, SchemaTracker

Point = tuple[Mark, CountMark]  # a point in time both pictures remember


class Watch:
    """The scratch database's schema and row counts, brought up to date after each step at the cost of what
    the step touched (:mod:`dbmigrations.tracker`, :mod:`dbmigrations.rowcounts`), not of the whole database."""

    def __init__(self, session: Session):
        self.schema = SchemaTracker(session)
        self.rows = RowCounts(session, self.schema.tables)

    def mark(self) -> Point:
        """Remember this point, to compare with later (see :meth:`schema_differences`)."""
        return self.schema.mark(), self.rows.mark()

    def after(self, source: SqlSource, run: FileRun | None = None, *, also: SqlSource | None = None) -> Change:
        """Catch up with a step that ran ``source`` (``also``: another file whose objects it may drop, the up
        file of a down file). ``run``: what it did, if it succeeded; its transaction's locks, when measured,
        name what it may have changed."""
        if run is None and source.script.runs_in_transaction:
            return Change()  # it failed and was rolled back: nothing changed
        locked = measure.altered(run)
        if not self.schema.knows(LEDGER):
            locked = None  # the ledger is created in a transaction of its own, before the first migration's
        names = source.script.names | (also.script.names if also else frozenset())
        change = self.schema.refresh(names, locked)
        written = measure.written(run)
        if written is None and rowcounts.may_change_rows(source.script):
            self.rows.refresh(None)
        else:
            self.rows.refresh((written or set()) | change.tables)
        return change

    def schema_differences(self, mark: Point) -> list[str]:
        """What changed in the schema since ``mark`` (:func:`dbmigrations.snapshot.differences`)."""
        return self.schema.differences(mark[0])

    def count_differences(self, mark: Point) -> list[str]:
        """Tables whose row count changed since ``mark`` (:func:`dbmigrations.snapshot.count_differences`)."""
        return self.rows.differences(mark[1])
