"""The executor: applies and unapplies migrations, one transaction per file with its ledger row.

Django's ``MigrationExecutor`` in this tool's terms. The plan comes from
:mod:`dbmigrations.plan` (pure), the files from :mod:`dbmigrations.loader`; each
file runs through :mod:`dbmigrations.runner`, and its ledger verb joins the same
transaction, so one COMMIT makes both happen. Everything is checked before the
first file runs; the first failure stops the run (and raises).
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg
from psycopg import errors

from . import ledger, plan, pooler, resume
from .discovery import SqlFile, validate_source
from .events import Event, Progress, quiet
from .exceptions import (
    ChecksumDrift,
    ConfigurationError,
    Interrupted,
    InvalidFiles,
    MigrationFailed,
    NotReversible,
    OutOfOrder,
    Problem,
    ReplacedMigration,
    Replacement,
    RunnerStatementFailed,
    UnknownVersion,
)
from .lockpolicy import LockPolicy
from .locks import BUSY, LOCK_KEY, lock_holder, lock_statements, raise_for_lock, with_lock_retries  # noqa: F401
from .runner import FileRun, Transaction, finish, run_file, run_file_without_transaction, runner_failure
from .session import BatchError, Session
from .statements import ScriptError

if TYPE_CHECKING:
    from .lockwait import Attempt, LockRetries

POOLER_REFUSAL = (
    "must run outside a transaction (CONCURRENTLY, VACUUM, …): statement by statement on one server session, "
    "which a transaction pooler (PgBouncer, Neon's -pooler host, Supabase's port 6543) does not keep: it hands "
    "each statement to whichever server connection is free, so a SET before a statement lands elsewhere."
)
DIRECT = "Set DATABASE_URL_UNPOOLED or POSTGRES_URL_NON_POOLING to a direct connection."


def pooler_refusal(names: list[str], why: str | None = None) -> str:
    """Why files that must run outside a transaction are refused through a transaction pooler."""
    found = f" This connection goes through one: {why}." if why else ""
    return f"{', '.join(names)} {POOLER_REFUSAL}{found} Nothing was changed. {DIRECT}"


@dataclass
class Outcome:
    """What happened to one migration: applied (``run``), faked, or skipped because another runner did it."""

    entry: plan.Entry
    run: FileRun | None = None
    skipped_concurrently: bool = False
    faked: bool = False


@dataclass
class ApplyResult:
    """The whole run: outcomes in order, what was already applied, what stays pending."""

    outcomes: list[Outcome] = field(default_factory=list)
    already_applied: int = 0
    pending_after: int = 0
    out_of_order: list[plan.Entry] = field(default_factory=list)

    @property
    def applied(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.skipped_concurrently]


@dataclass
class RollbackResult:
    """The rollback steps in order, and how many migrations stay applied."""

    steps: list[Outcome] = field(default_factory=list)
    still_applied: int = 0

    @property
    def rolled_back(self) -> list[Outcome]:
        return [s for s in self.steps if not s.skipped_concurrently]


@dataclass
class RepairResult:
    """Rows whose checksum was recorded again, rows forgotten, rows left without a file,
    replaced versions adopted by their new file (recorded without running it) and those left alone."""

    recorded: list[plan.Entry] = field(default_factory=list)
    forgotten: list[plan.Entry] = field(default_factory=list)
    still_missing: list[plan.Entry] = field(default_factory=list)
    adopted: list[plan.Entry] = field(default_factory=list)
    still_replaced: list[plan.Entry] = field(default_factory=list)


def applied_by() -> str:
    """``user@host`` of this runner, for the ledger's ``applied_by``."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def check_plan(
    entries: list[plan.Entry], *, strict_order: bool, pooled: bool, target: int | None
) -> tuple[list[plan.Entry], list[str]]:
    """The pending entries to apply, after refusing a ``target`` that names nothing, invalid files,
    replaced versions, drift, invalid SQL in the pending files, (with strict order) merged-branch
    migrations, and non-transactional files through a pooler; and the names of those that must run
    outside a transaction."""
    if target is not None and target not in {e.number for e in entries}:
        raise UnknownVersion(
            f"--target {target}: no migration file or ledger row has that version; "
            "nothing was applied (see sql_migration_status)"
        )
    invalid = [problem for entry in plan.invalid(entries) for problem in entry.problems]
    if invalid:
        raise InvalidFiles(invalid)
    if plan.replaced(entries):
        raise ReplacedMigration(replacements(entries))
    drifted = plan.drifted(entries)
    if drifted:
        raise ChecksumDrift([e.file.path.name for e in drifted])
    todo = plan.pending(entries, target=target)
    outside = check_scripts(todo)
    late = [e for e in todo if e.out_of_order]
    if late and strict_order:
        raise OutOfOrder(
            "pending migration(s) older than the newest applied one (--strict-order): "
            + ", ".join(e.name for e in late)
            + ". Renumber them after the newest applied migration, or run without --strict-order."
        )
    for entry in todo:
        if entry.state == plan.State.PARTIAL:
            resume_point(entry, entry.progress)
    if pooled and outside:
        raise ConfigurationError("migration(s) " + pooler_refusal(outside))
    return todo, outside


def check_scripts(todo: list[plan.Entry]) -> list[str]:
    """Parse every file about to run and refuse (:class:`InvalidFiles`, every problem listed) if any is
    invalid, before anything changes; the names of those that must run outside a transaction.

    Each parse tree made here is dropped once checked: a run keeps one at a time, and each
    file is parsed again right before it runs (about 0.1 ms a file, against the server's
    milliseconds). A parse the caller made before is kept.
    """
    problems: list[Problem] = []
    outside = []
    for entry in todo:
        source = entry.file.source
        kept = source.parsed
        found = validate_source(source)
        problems.extend(found)
        if not found and not source.script.runs_in_transaction:
            outside.append(entry.name)
        if not kept:
            source.release()
    if problems:
        raise InvalidFiles(problems)
    return outside


def replacements(entries: list[plan.Entry]) -> list[Replacement]:
    """Each replaced version with its two file names and the free version to renumber the new file to."""
    free = plan.next_version(e.version for e in entries)
    found = []
    for entry in plan.replaced(entries):
        renumbered = f"{free}_{entry.file.slug}.sql"
        found.append(Replacement(entry.version, entry.file.path.name, entry.row.filename, renumbered))
        free = plan.next_version([free])
    return found


def resume_point(entry: plan.Entry, done) -> int:
    """How many leading statements of ``entry``'s file ran in an earlier run (checked unchanged)."""
    return resume.resume_point(
        entry.file.source.script.statements,
        list(done),
        path=str(entry.file.path),
        forget=ledger.forget_progress_sql(entry.file.version),
    )


def check_rollback(chosen: list[plan.Entry], *, pooled: bool = False, allow_modified: int | None = None) -> None:
    """Refuse (:class:`NotReversible`, exit 2) unless every chosen migration can be rolled back.

    ``allow_modified``: the newest applied version, which may be rolled back with its
    current down file although its up file changed (``--allow-modified``, a developer's
    own unmerged migration). Only the down files that will run are parsed: an old
    "-- Not reversible" down file elsewhere in the history does not block rolling back
    the newest migration.
    """
    problems = []
    for entry in chosen:
        if entry.state == plan.State.INVALID:
            problems.extend(str(p) for p in entry.problems)
        elif entry.state == plan.State.MISSING:
            problems.append(
                f"{entry.name}: in the ledger but its migration file is missing. Restore it and its down "
                "file from version control (git restore), or, if what it did was already undone by hand, "
                "`manage.py repair_sql_migrations --forget-missing` forgets its ledger row"
            )
        elif entry.state == plan.State.REPLACED:
            problems.append(
                f"{entry.file.path}: version {entry.version} was applied from {entry.row.filename}, a "
                "different file, so this file's down file would undo SQL that never ran here. Bring "
                f"{entry.row.filename} and its down file back from its branch to roll it back, or rename "
                "this file to a free version (see apply_sql_migrations)"
            )
        elif entry.state == plan.State.MODIFIED and allow_modified is not None and entry.number != allow_modified:
            problems.append(
                f"{entry.file.path}: changed since it was applied; --allow-modified rolls back only the "
                "newest applied migration (a developer's own, unmerged one). Restore this file (git "
                "restore) to roll it back with what ran"
            )
        elif entry.state == plan.State.MODIFIED and allow_modified is None:
            problems.append(
                f"{entry.file.path}: changed since it was applied (checksum differs from the ledger), "
                "so its down file may not undo what ran. Restore the applied version (git restore) to "
                "roll it back; or, if it is your own unmerged migration on a development database, "
                "pass --allow-modified to roll it back with its current down file"
            )
        elif entry.file.down is None:
            problems.append(f"{entry.file.path}: no down file ({entry.name}.down.sql)")
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise NotReversible(f"cannot roll back, nothing was changed:\n{lines}")
    problems = [p for e in chosen for p in validate_source(e.file.down)]
    if problems:
        raise InvalidFiles(problems)
    outside = [str(e.file.down.path) for e in chosen if not e.file.down.script.runs_in_transaction]
    if pooled and outside:
        raise NotReversible("cannot roll back: " + pooler_refusal(outside))


class MigrationExecutor:
    """Applies and unapplies migrations on one session, reporting through ``progress``."""

    def __init__(
        self,
        session: Session,
        *,
        lock_timeout: float | None = None,
        pooled: bool = False,
        progress: Progress | None = None,
        lock_policy: LockPolicy | None = None,
    ):
        self.session = session
        self.lock_timeout = lock_timeout
        self.pooled = pooled
        self.progress = progress or quiet
        # DDL lock waits are bounded and retried (self.retries); lock_timeout bounds only the migration lock.
        self.lock_policy = lock_policy or LockPolicy.resolve()
        self._pooler: tuple[str | None] | None = None
        self._counted: bool | None = None
        self._next: plan.Entry | None = None  # the migration after the one running (apply)

    @functools.cached_property
    def retries(self) -> LockRetries:
        """Runs each migration's transaction, retried after DDL lock timeouts within the policy's budget."""
        from .lockwait import LockRetries  # with the first migration that runs: a no-op run never loads it

        return LockRetries(
            self.session,
            self.lock_policy,
            self.progress,
            pooled=lambda: self.pooled or self.transaction_pooler() is not None,
        )

    def plan(
        self, files: list[SqlFile], *, target: int | None = None, strict_order: bool = False, fake: bool = False
    ) -> tuple[list[plan.Entry], list[plan.Entry], bool]:
        """Every entry, the checked pending ones to apply, and whether the ledger is complete; reads only.

        Refuses what :meth:`apply` would refuse, including files that must run outside a
        transaction when the connection turns out to go through a transaction pooler
        (unless ``fake``: nothing runs then).
        """
        rows, progress, ledger_complete = ledger.read_all(self.session)
        entries = plan.status(files, rows, progress=progress)
        todo, outside = check_plan(entries, strict_order=strict_order, pooled=self.pooled and not fake, target=target)
        if not fake:
            self.refuse_through_pooler(outside)
        return entries, todo, ledger_complete

    def refuse_through_pooler(self, outside: list[str], *, error=ConfigurationError, prefix: str = "migration(s) "):
        """Raise ``error`` (exit 2) if files that must run outside a transaction would go through a
        transaction pooler, told from the connection's behaviour (see :meth:`transaction_pooler`)."""
        if not outside:
            return
        why = self.transaction_pooler()
        if why:
            raise error(prefix + pooler_refusal(outside, why))

    def transaction_pooler(self) -> str | None:
        """Why the connection behaves as a transaction-pooled one, or None: asked of it once per run, by the
        first file that must run outside a transaction or the first migration's lock-retry policy."""
        if self._pooler is None:
            self._pooler = (pooler.transaction_pooler(self.session),)
        return self._pooler[0]

    def apply(
        self, files: list[SqlFile], *, target: int | None = None, fake: bool = False, strict_order: bool = False
    ) -> ApplyResult:
        """Apply pending migrations in numeric order, up to ``target``; stop at the first failure."""
        entries, todo, ledger_complete = self.plan(files, target=target, strict_order=strict_order, fake=fake)
        if todo and not ledger_complete:  # only now: the refusals above leave the database untouched
            ledger.ensure_table(self.session, lock_timeout=self.lock_timeout)
        result = ApplyResult(
            already_applied=sum(1 for e in entries if e.state == plan.State.APPLIED),
            out_of_order=[e for e in todo if e.out_of_order],
        )
        who = applied_by()
        kept = [entry.file.source.parsed for entry in todo]  # parses the caller made (and keeps)
        for number, entry in enumerate(todo):
            self._next = todo[number + 1] if number + 1 < len(todo) else None
            self.progress(Event.START, entry)
            if fake:
                ledger.record_faked(
                    self.session, entry.file, applied_by=who, clear_progress=entry.state == plan.State.PARTIAL
                )
                outcome = Outcome(entry, faked=True)
            elif entry.file.source.script.runs_in_transaction:
                outcome = self._apply_in_transaction(entry, who)
            else:
                outcome = self._apply_without_transaction(entry, who)
            if not kept[number]:  # memory stays flat: no parse tree kept per applied file
                entry.file.source.release()
            result.outcomes.append(outcome)
            self.progress(Event.DONE, outcome)
        result.pending_after = len(plan.pending(entries)) - len(todo)
        return result

    def rollback_plan(
        self, files: list[SqlFile], *, steps: int | None = None, to: int | None = None, allow_modified: bool = False
    ) -> list[plan.Entry]:
        """The checked list of migrations a rollback would undo, newest first; reads only.

        ``allow_modified``: the newest applied migration may be rolled back with its current
        down file although its up file changed since it was applied.
        """
        entries = plan.status(files, ledger.read(self.session)[0])
        chosen = plan.to_unapply(entries, steps=steps, to=to)
        newest = max((e.number for e in entries if e.row is not None), default=None)
        check_rollback(chosen, pooled=self.pooled, allow_modified=newest if allow_modified else None)
        outside = [str(e.file.down.path) for e in chosen if not e.file.down.script.runs_in_transaction]
        self.refuse_through_pooler(outside, error=NotReversible, prefix="cannot roll back: ")
        return chosen

    def rollback(
        self, files: list[SqlFile], *, steps: int | None = None, to: int | None = None, allow_modified: bool = False
    ) -> RollbackResult:
        """Unapply the chosen migrations one by one with their down files; stop at the first failure."""
        result = RollbackResult()
        for entry in self.rollback_plan(files, steps=steps, to=to, allow_modified=allow_modified):
            self.progress(Event.START, entry)
            if entry.file.down.script.runs_in_transaction:
                step = self._unapply_in_transaction(entry)
            else:
                step = self._unapply_without_transaction(entry)
            result.steps.append(step)
            self.progress(Event.DONE, step)
        result.still_applied = len(ledger.read(self.session)[0])
        return result

    def repair(
        self, files: list[SqlFile], *, forget_missing: bool = False, adopt_replaced: list[int] = ()
    ) -> RepairResult:
        """Record the current checksum of every modified migration (and, if asked, forget rows whose
        file is gone) in one transaction under the migration lock: all of it or nothing.

        A replaced version (another file now holds it) is left alone unless named in
        ``adopt_replaced``: then its row becomes the new file's, marked ``fake``, because
        that file's SQL never ran. Naming a version that is not replaced is refused.
        """
        rows, complete = ledger.read(self.session)
        entries = plan.status(files, rows)
        replaced = plan.replaced(entries)
        wrong = sorted(set(adopt_replaced) - {e.number for e in replaced})
        if wrong:
            version = next((e.version for e in entries if e.number == wrong[0]), str(wrong[0]))
            raise UnknownVersion(
                f"--adopt-replaced {version}: version {version} is not replaced (no other file "
                "than the one that ran holds it; see sql_migration_status); nothing was changed"
            )
        result = RepairResult(recorded=plan.drifted(entries))
        (result.forgotten if forget_missing else result.still_missing).extend(plan.missing(entries))
        for entry in replaced:
            (result.adopted if entry.number in adopt_replaced else result.still_replaced).append(entry)
        if result.adopted and not complete:
            ledger.ensure_table(self.session, lock_timeout=self.lock_timeout)  # the fake column
        ledger.repair_rows(
            self.session,
            {e.row.version: e.file.checksum for e in result.recorded},
            [e.row.version for e in result.forgotten],
            adopt={e.row.version: e.file for e in result.adopted},
            applied_by=applied_by(),
            lock_timeout=self.lock_timeout,
        )
        return result

    def _parse_next(self) -> None:
        """Parse the next file to apply while the server runs this one (the client would only wait)."""
        if self._next is not None:
            try:
                self._next.file.source.script  # noqa: B018 (parsed and kept until that file has run)
            except ScriptError:
                pass  # checked before the run started; if it fails now, it fails again, reported, when it runs

    def _writes_counted(self) -> bool:
        """Whether the server counts each transaction's row writes (asked once: the ledger check's cost)."""
        if self._counted is None:
            self._counted = ledger.writes_counted(self.session)
        return self._counted

    def _locked_transaction(self, lock_timeout: float | None) -> Transaction:
        return Transaction(before=lock_statements(lock_timeout))

    def _apply_in_transaction(self, entry: plan.Entry, who: str) -> Outcome:
        return self.retries.run(
            entry.name,
            entry.file.source.script,
            lambda attempt: with_lock_retries(
                lambda left: self._apply_attempt(entry, who, attempt, left), self.lock_timeout
            ),
        )

    def _apply_attempt(self, entry: plan.Entry, who: str, attempt: Attempt, lock_timeout: float | None) -> Outcome:
        file = entry.file
        transaction = self._locked_transaction(lock_timeout)
        partial = entry.state == plan.State.PARTIAL
        ledger.record_applied(
            transaction,
            file,
            applied_by=who,
            counted=self._writes_counted(),
            attempts=attempt.number,
            clear_progress=partial,
        )
        attempt.join(transaction)
        script = file.source.script
        if partial:  # an earlier run outside a transaction did the first statements (the file changed since)
            start = resume_point(entry, entry.progress)
            script = dataclasses.replace(script, statements=script.statements[start:])
        try:
            run = run_file(self.session, script, str(file.path), transaction, meanwhile=self._parse_next)
        except KeyboardInterrupt:
            raise self._interrupted(str(file.path), file.version, applying=True) from None
        except BatchError as error:
            raise_for_lock(error, self.lock_timeout)
            if isinstance(error.error, errors.UniqueViolation):
                return Outcome(entry, skipped_concurrently=True)
            if error.sqlstate == BUSY:
                raise
            raise runner_failure(error, str(file.path)) from None
        return Outcome(entry, attempt.finish(run))

    def _interrupted(self, path: str, version: str, *, applying: bool) -> Interrupted:
        """Ctrl-C during a file's transaction: say, from the ledger, what became of it.

        psycopg has already asked the server to cancel the statement, which aborts the
        transaction, unless its COMMIT had already run: the ledger row tells which.
        """
        try:
            self.session.rollback_if_needed()
            recorded = ledger.is_recorded(self.session, version)
        except Exception:  # the connection went with the interrupt
            return Interrupted(
                f"interrupted (Ctrl-C) while running {path}: its outcome is unknown (the connection "
                "was lost); run sql_migration_status to see whether it was applied"
            )
        if recorded == applying:  # the COMMIT won the race with the cancel
            done = "applied and recorded" if applying else "rolled back (down file ran, ledger row deleted)"
            return Interrupted(f"interrupted (Ctrl-C) after {path} had committed: it is {done}; nothing else ran")
        return Interrupted(
            f"interrupted (Ctrl-C): the transaction of {path} was cancelled and rolled back, nothing of it was recorded"
        )

    def _apply_without_transaction(self, entry: plan.Entry, who: str) -> Outcome:
        file = entry.file
        statements = file.source.script.statements
        with lock_holder(self.session, self.lock_timeout) as holder:
            if ledger.is_recorded(self.session, file.version):
                return Outcome(entry, skipped_concurrently=True)
            start = resume_point(entry, ledger.progress(self.session, file.version))  # again: under the lock

            def done(number: int) -> None:
                ledger.record_progress(
                    self.session,
                    file.version,
                    number,
                    resume.digest(statements[number - 1]),
                    create=number == start + 1,
                )

            run = run_file_without_transaction(self.session, file.source.script, str(file.path), start=start, done=done)
            try:
                ledger.record_applied_and_unlock(
                    holder, file, applied_by=who, execution_ms=run.elapsed_ms, clear_progress=bool(statements)
                )
            except (BatchError, psycopg.Error) as error:
                raise lost_lock(error, str(file.path)) from None
        return Outcome(entry, run)

    def _unapply_in_transaction(self, entry: plan.Entry) -> Outcome:
        return self.retries.run(
            entry.name,
            entry.file.down.script,
            lambda attempt: with_lock_retries(
                lambda left: self._unapply_attempt(entry, attempt, left), self.lock_timeout
            ),
        )

    def _unapply_attempt(self, entry: plan.Entry, attempt: Attempt, lock_timeout: float | None) -> Outcome:
        down = entry.file.down
        transaction = self._locked_transaction(lock_timeout)
        ledger.record_unapplied(transaction, entry.row.version, counted=self._writes_counted())
        attempt.join(transaction)
        try:
            run = run_file(self.session, down.script, str(down.path), transaction, commit=False)
        except KeyboardInterrupt:
            raise self._interrupted(str(down.path), entry.row.version, applying=False) from None
        except BatchError as error:
            raise_for_lock(error, self.lock_timeout)
            raise
        found, removed = _ledger_rows(run, "UPDATE"), _ledger_rows(run, "DELETE")
        if found != 1 or removed != 1:
            finish(self.session, commit=False)
            if found == 0:  # another runner rolled it back while we waited for the lock
                return Outcome(entry, skipped_concurrently=True)
            if found == 1:  # the row or the others were not as before the file
                raise RunnerStatementFailed(ledger.changed_message(str(down.path)))
            raise NotReversible(
                f"{entry.name}: the ledger holds {found} rows for version {entry.row.version}; nothing was changed"
            )
        finish(self.session, commit=True, script=down.script, path=str(down.path))
        return Outcome(entry, attempt.finish(run))

    def _unapply_without_transaction(self, entry: plan.Entry) -> Outcome:
        down = entry.file.down
        with lock_holder(self.session, self.lock_timeout) as holder:
            if not ledger.is_recorded(self.session, entry.row.version):
                return Outcome(entry, skipped_concurrently=True)
            try:
                run = run_file_without_transaction(self.session, down.script, str(down.path))
            except MigrationFailed as error:
                note = (error.failure.note or "").replace(
                    "The migration was not recorded.", "Its ledger row was kept: the migration still counts as applied."
                )
                raise MigrationFailed(dataclasses.replace(error.failure, note=note)) from None
            ledger.record_unapplied_and_unlock(holder, entry.row.version)
        return Outcome(entry, run)


def lost_lock(error: Exception, path: str) -> RunnerStatementFailed:
    """The migration lock's connection failed to record a file that ran outside a transaction."""
    text = str(getattr(error, "error", error)).strip()
    return RunnerStatementFailed(
        f"{path}: its statements ran, but recording it failed on the connection holding the migration lock "
        f"({text.splitlines()[0] if text else type(error).__name__}), so it was not recorded. Run the "
        "command again: it skips the statements that ran and records the migration."
    )


def _ledger_rows(run: FileRun, command: str) -> int:
    """Rows touched by the ledger's ``command`` (UPDATE, DELETE) among the runner's own statements, or -1."""
    for tag in run.runner_tags:
        words = tag.split()
        if words and words[0] == command:
            return int(words[-1])
    return -1
