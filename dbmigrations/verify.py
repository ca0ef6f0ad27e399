"""Proving the spec's rules on a scratch database: migrations idempotent and reversible, seeds idempotent.

Every migration is applied in order through the real runner (ledger row and all),
then run a second time: the second run must succeed and leave the schema snapshot
and every table's row count unchanged. With a down file, down → up must give back the schema from before and
after the migration. Finally the development seeds run twice; the second run must
change no table's row count. A failing first application stops the run (later
files build on it); every other failure is recorded and the run goes on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from . import measure
from .discovery import SqlFile, SqlSource
from .events import Event, Progress, quiet
from .exceptions import MigrationFailed, StatementFailure
from .executor import MigrationExecutor
from .lockpolicy import LockPolicy
from .runner import FileRun, Transaction, run_file, run_file_without_transaction
from .scratch import scratch_database
from .session import Session
from .watch import Point, Watch

FIRST_RUN_FAILED = "first run failed"
REAPPLY_FAILED = "re-applying after the down file failed"


@dataclass
class Finding:
    """Why a check failed: the schema/row-count differences, or the SQL error with file:line."""

    check: str
    differences: list[str] = field(default_factory=list)
    failure: StatementFailure | None = None

    def lines(self) -> list[str]:
        if self.failure:
            return [f"{self.check}: " + self.failure.render().replace("\n", "\n  ")]
        return [f"{self.check}:", *(f"  {d}" for d in self.differences)]


@dataclass
class MigrationCheck:
    """One migration: applied, idempotent (yes/no), reversible (yes/no/None = no down file)."""

    name: str
    path: str
    has_down: bool
    applied: bool = False
    idempotent: bool | None = None
    reversible: bool | None = None
    findings: list[Finding] = field(default_factory=list)
    #: Table locks held at the end of its first run (None: not measured, it runs outside a transaction).
    locks: list[measure.TakenLock] | None = None
    #: Tables and indexes that existed before and were rewritten (relfilenode changed).
    rewritten: list[str] = field(default_factory=list)

    @property
    def blocking_locks(self) -> list[measure.TakenLock]:
        """ACCESS EXCLUSIVE locks on tables that existed before: they block the application while held."""
        return [lock for lock in self.locks or () if lock.blocks_existing_table]

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def blocks_later(self) -> bool:
        """The schema lacks this migration (its first run, or its re-run after the down, failed)."""
        return any(f.check in (FIRST_RUN_FAILED, REAPPLY_FAILED) for f in self.findings)


@dataclass
class SeedCheck:
    """One development seed: rows its two runs changed, and what the second run changed."""

    name: str
    path: str
    rows_first: int | None = None
    rows_second: int | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass
class VerifyReport:
    """The whole verification: per-file checks, and why it stopped early (if it did)."""

    database: str
    migrations: list[MigrationCheck] = field(default_factory=list)
    seeds: list[SeedCheck] = field(default_factory=list)
    stopped: str | None = None

    @property
    def problems(self) -> int:
        return sum(len(c.findings) for c in [*self.migrations, *self.seeds])

    @property
    def ok(self) -> bool:
        return not self.problems and not self.stopped

    def as_dict(self) -> dict:
        return {"ok": self.ok, "problems": self.problems, **asdict(self)}


def verify(
    params: dict, migrations: list[SqlFile], seeds: list[SqlFile] | None, *, progress: Progress | None = None
) -> VerifyReport:
    """Verify ``migrations`` (then ``seeds``, unless None) on a scratch database of the server of ``params``."""
    notify = progress or quiet
    with scratch_database(params) as (name, session):
        report = VerifyReport(name)
        notify(Event.DATABASE, name)
        watch = Watch(session)
        for file in migrations:
            check = check_migration(session, file, watch)
            report.migrations.append(check)
            notify(Event.MIGRATION, check)
            if check.blocks_later:
                report.stopped = f"{file.name} could not be applied; the files after it were not verified"
                return report
        if seeds is not None:
            report.seeds = check_seeds(watch, seeds, notify)
            failed = next((s for s in report.seeds if s.rows_first is None), None)
            if failed:
                report.stopped = f"seed {failed.name} failed on its first run; the seeds after it were not verified"
    return report


def check_migration(session: Session, file: SqlFile, watch: Watch) -> MigrationCheck:
    """Apply ``file`` (through the ledger), run it again, and cycle down → up if it has a down file."""
    check = MigrationCheck(file.name, str(file.path), file.down is not None)
    before = watch.mark()
    try:
        # Given this file alone (the ones before it are in the ledger): planning costs the same for the
        # 400th migration as for the first.
        result = MigrationExecutor(session, lock_policy=LockPolicy(measure_locks=True)).apply([file])
    except MigrationFailed as error:
        check.findings.append(Finding(FIRST_RUN_FAILED, failure=error.failure))
        return check
    check.applied = True
    run = next((o.run for o in result.outcomes if o.entry.name == file.name), None)
    check.locks = measure.locks_taken(run, watch.schema.knows_relation)
    check.rewritten = watch.after(file.source, run).rewritten
    applied = watch.mark()
    found = _run_and_compare(watch, file.source, applied, "second run failed", "second run changed the schema")
    found = found or _finding("second run changed row counts", watch.count_differences(applied))
    check.idempotent = found is None
    check.findings += [found] if found else []
    if file.down is None:
        return check
    try:
        down = run_sql(session, file.down)
    except MigrationFailed as error:
        watch.after(file.down, also=file.source)
        check.reversible = False
        check.findings.append(Finding("down file failed", failure=error.failure))
        return check
    watch.after(file.down, down, also=file.source)
    down_found = _finding(
        "down file does not fully reverse the migration (schema after down vs. before up)",
        watch.schema_differences(before),
    )
    up_found = _run_and_compare(
        watch, file.source, applied, REAPPLY_FAILED, "up after down gives a different schema (vs. after the first up)"
    )
    check.findings += [f for f in (down_found, up_found) if f]
    check.reversible = not (down_found or up_found)
    return check


def _run_and_compare(watch: Watch, source: SqlSource, expected: Point, failed: str, changed: str) -> Finding | None:
    try:
        run = run_sql(watch.schema.session, source)
    except MigrationFailed as error:
        watch.after(source)
        return Finding(failed, failure=error.failure)
    watch.after(source, run)
    return _finding(changed, watch.schema_differences(expected))


def _finding(check: str, differences: list[str]) -> Finding | None:
    return Finding(check, differences) if differences else None


def run_sql(session: Session, source: SqlSource) -> FileRun:
    """Run one file outside the ledger: in one transaction when it can (its locks measured: see
    :func:`dbmigrations.measure.written`), else statement by statement."""
    if source.script.runs_in_transaction:
        return run_file(session, source.script, str(source.path), Transaction(after=[measure.LOCKS_TAKEN]))
    return run_file_without_transaction(session, source.script, str(source.path))


def check_seeds(watch: Watch, seeds: list[SqlFile], notify: Progress) -> list[SeedCheck]:
    """Run every seed once, then every seed again; a second run must change no table's row count."""
    session = watch.schema.session
    checks = [SeedCheck(seed.name, str(seed.path)) for seed in seeds]
    for position, (check, seed) in enumerate(zip(checks, seeds)):
        try:
            run = run_sql(session, seed.source)
        except MigrationFailed as error:  # later seeds may need this one's rows: stop
            check.findings.append(Finding(FIRST_RUN_FAILED, failure=error.failure))
            for done in checks[: position + 1]:
                notify(Event.SEED, done)
            return checks[: position + 1]
        check.rows_first = run.rows
        watch.after(seed.source, run)
    for check, seed in zip(checks, seeds):
        mark = watch.mark()
        try:
            run = run_sql(session, seed.source)
        except MigrationFailed as error:
            watch.after(seed.source)
            check.findings.append(Finding("second run failed", failure=error.failure))
        else:
            check.rows_second = run.rows
            watch.after(seed.source, run)
            changed = _finding("second run changed row counts", watch.count_differences(mark))
            check.findings += [changed] if changed else []
        notify(Event.SEED, check)
    return checks
