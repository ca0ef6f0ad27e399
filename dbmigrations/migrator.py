"""Applying pending migrations: the plan, then one transaction per file with its ledger row."""
from __future__ import annotations

import getpass
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from . import ledger, plan
from .discovery import SqlFile, validate_scripts
from .exceptions import ChecksumDrift, ConfigurationError, OutOfOrder
from .executor import (
    RESTORE_SESSION,
    FileRun,
    lock_statements,
    raise_for_lock,
    run_file,
    run_file_without_transaction,
    runner_failure,
    session_lock,
)
from .session import BatchError, Part, Session, run_batch

UNIQUE_VIOLATION = "23505"


@dataclass
class Outcome:
    """What happened to one pending migration."""

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


Progress = Callable[[str, object], None]


def applied_by() -> str:
    """``user@host`` of this runner, for the ledger's ``applied_by``."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def check_plan(entries: list[plan.Entry], *, strict_order: bool, pooled: bool, target: int | None) -> list[plan.Entry]:
    """Refuse drift, (with strict order) merged-branch migrations, CONCURRENTLY through a pooler."""
    drifted = plan.drifted(entries)
    if drifted:
        raise ChecksumDrift([e.file.path.name for e in drifted])
    todo = plan.pending(entries, target=target)
    validate_scripts([e.file for e in todo])
    late = [e for e in todo if e.out_of_order]
    if late and strict_order:
        raise OutOfOrder(
            "pending migration(s) older than the newest applied one (--strict-order): "
            + ", ".join(e.name for e in late)
            + ". Renumber them after the newest applied migration, or run without --strict-order."
        )
    if pooled:
        outside = [e.name for e in todo if not e.file.source.script.runs_in_transaction]
        if outside:
            raise ConfigurationError(
                "migration(s) " + ", ".join(outside) + " must run outside a transaction (CONCURRENTLY, VACUUM, …), "
                "which needs a session-level lock that a transaction pooler (PgBouncer, Neon's -pooler host) does "
                "not keep. Set DATABASE_URL_UNPOOLED or POSTGRES_URL_NON_POOLING to a direct connection."
            )
    return todo


def apply_migrations(
    session: Session,
    files: list[SqlFile],
    *,
    target: int | None = None,
    fake: bool = False,
    strict_order: bool = False,
    lock_timeout: float | None = None,
    pooled: bool = False,
    progress: Progress | None = None,
) -> ApplyResult:
    """Apply pending migrations in numeric order; stop at the first failure (which raises)."""
    notify = progress or (lambda event, payload: None)
    rows, ledger_complete = ledger.read(session)
    entries = plan.status(files, rows)
    todo = check_plan(entries, strict_order=strict_order, pooled=pooled, target=target)
    if todo and not ledger_complete:  # only now: refusals above leave the database untouched
        ledger.ensure_table(session, lock_timeout=lock_timeout)
    result = ApplyResult(
        already_applied=sum(1 for e in entries if e.state == plan.State.APPLIED),
        out_of_order=[e for e in todo if e.out_of_order],
    )
    who = applied_by()
    for entry in todo:
        notify("start", entry)
        if fake:
            ledger.fake_applied(session, entry.file, applied_by=who)
            outcome = Outcome(entry, faked=True)
        elif entry.file.source.script.runs_in_transaction:
            outcome = _apply_in_transaction(session, entry, lock_timeout, who)
        else:
            outcome = _apply_without_transaction(session, entry, lock_timeout, who)
        result.outcomes.append(outcome)
        notify("done", outcome)
    result.pending_after = len(plan.pending(entries)) - len(todo)
    return result


def _apply_in_transaction(session: Session, entry: plan.Entry, lock_timeout, who: str) -> Outcome:
    file = entry.file
    before = [*lock_statements(session, lock_timeout), ledger.record_applied(session, file, applied_by=who), ledger.start_timer()]
    try:
        run = run_file(session, file.source.script, str(file.path), before=before,
                       after=[ledger.record_execution_time(session, file.version)])
    except BatchError as error:
        raise_for_lock(error, lock_timeout)
        if error.sqlstate == UNIQUE_VIOLATION:
            return Outcome(entry, skipped_concurrently=True)
        raise runner_failure(error, str(file.path)) from None
    return Outcome(entry, run)


def _apply_without_transaction(session: Session, entry: plan.Entry, lock_timeout, who: str) -> Outcome:
    file = entry.file
    with session_lock(session, lock_timeout):
        if ledger.is_recorded(session, file.version):
            return Outcome(entry, skipped_concurrently=True)
        run = run_file_without_transaction(session, file.source.script, str(file.path))
        run_batch(session, [Part(("BEGIN", *RESTORE_SESSION, ledger.record_applied(session, file, applied_by=who),
                                  ledger.set_execution_time(session, file.version, run.elapsed_ms), "COMMIT"))])
    return Outcome(entry, run)


@dataclass
class RepairResult:
    """Rows whose checksum was recorded again, rows forgotten, rows left without a file."""

    recorded: list[plan.Entry] = field(default_factory=list)
    forgotten: list[plan.Entry] = field(default_factory=list)
    still_missing: list[plan.Entry] = field(default_factory=list)


def repair(session: Session, files: list[SqlFile], *, forget_missing: bool = False,
           lock_timeout: float | None = None) -> RepairResult:
    """Record the current checksum of every modified migration (and, if asked, drop rows whose
    file is gone) in one transaction under the migration lock: all of it or nothing."""
    entries = migration_status(session, files)
    result = RepairResult(recorded=plan.drifted(entries))
    (result.forgotten if forget_missing else result.still_missing).extend(plan.missing(entries))
    statements = [ledger.record_checksum(session, e.row.version, e.file.checksum) for e in result.recorded]
    statements += [ledger.record_unapplied(session, e.row.version) for e in result.forgotten]
    if statements:
        try:
            run_batch(session, [Part(("BEGIN", *lock_statements(session, lock_timeout), *statements, "COMMIT"))])
        except BatchError as error:
            raise_for_lock(error, lock_timeout)
            raise
    return result


def migration_status(session: Session, files: list[SqlFile]) -> list[plan.Entry]:
    """Status of every file and ledger row, without creating or altering the ledger."""
    return plan.status(files, ledger.read(session)[0])
