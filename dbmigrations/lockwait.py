"""Bounded lock waits: a migration never stalls the application behind a lock queue.

An ``ALTER TABLE`` that waits for its lock behind a long transaction makes every
later query on that table queue behind it, so the application stalls for as long
as the ALTER waits. Every transactional migration therefore runs with a short
``lock_timeout`` (``SET LOCAL`` right before the file's statements, so a file's
own ``SET lock_timeout`` wins). When a statement of the file times out (SQLSTATE
55P03) the transaction, atomic and so safe to run again, is rolled back and run
again after a backoff with jitter, within a total budget; each timeout names the
sessions in the way (:mod:`dbmigrations.blockers`, :mod:`dbmigrations.lockwatch`). The wait for the runner's own
migration lock is a separate limit (``--lock-timeout``); it is shown while it
lasts and not counted in the migration's time. The bounds themselves are
:class:`~dbmigrations.lockpolicy.LockPolicy`.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg

from .blockers import Blocker, LockSample, holders
from .events import Event, Progress
from .exceptions import LockRetriesExhausted, MigrationFailed
from .lockpolicy import WAITED, LockPolicy
from .locks import LOCK_KEY, OUTSIDE_KEY
from .lockwatch import Watcher
from .measure import LOCKS_TAKEN
from .runner import FileRun, Transaction
from .session import Session
from .statements import Script

LOCK_NOT_AVAILABLE = "55P03"
T = TypeVar("T")


@dataclass(frozen=True)
class Attempt:
    """One run of a migration's transaction: its number and the runner's statements around the file."""

    number: int
    before: list[str]
    after: list[str] = dataclasses.field(default_factory=list)

    def join(self, transaction: Transaction) -> None:
        """Add the attempt's statements to the migration's ``transaction`` (after the runner's own before)."""
        transaction.before += self.before
        transaction.after += self.after

    def finish(self, run: FileRun) -> FileRun:
        """``run`` with the migration lock's wait taken out of its time, and the attempt count."""
        waited = next(
            (round(float(v[len(WAITED) :]) * 1000) for v in run.runner_values if v and v.startswith(WAITED)), 0
        )
        return dataclasses.replace(
            run, elapsed_ms=max(0, run.elapsed_ms - waited), waited_ms=waited, attempts=self.number
        )


@dataclass(frozen=True)
class LockRetry:
    """Payload of ``Event.LOCK_RETRY``: a statement's lock was not granted in time; retried or given up."""

    name: str
    attempt: int
    timeout: float | None  # None: the file sets its own lock_timeout
    lock: LockSample | None
    retry_in: float | None  # None: giving up
    elapsed: float

    def describe(self) -> str:
        """``002_add_note: lock on public.accounts (ACCESS EXCLUSIVE) not granted in 1.0 s (blocked by …); retry 2 in 0.6 s``."""
        what = self.lock.describe() if self.lock else "a lock"
        within = f"in {self.timeout:.1f} s" if self.timeout else "within lock_timeout"
        text = f"{self.name}: {what} not granted {within} ({self.blocked_by()})"
        if self.retry_in is None:
            return text + f"; gave up after {self.attempt} attempt(s) in {self.elapsed:.1f} s"
        return text + f"; retry {self.attempt + 1} in {self.retry_in:.1f} s"

    def blocked_by(self) -> str:
        if self.lock is None:
            return "the blocking session was not found"
        if not self.lock.blockers:
            return "the blocking session had already ended"
        return "blocked by " + "; ".join(b.describe() for b in self.lock.blockers)


@dataclass(frozen=True)
class MigrationLockWait:
    """Payload of ``Event.LOCK_WAIT``: still waiting for the migration lock another runner holds."""

    name: str
    seconds: float
    holders: tuple[Blocker, ...]

    def describe(self) -> str:
        who = "; ".join(b.describe() for b in self.holders) or "another runner"
        return f"{self.name}: waiting {self.seconds:.0f} s for the migration lock, held by {who}"


class LockRetries:
    """Runs a migration's transaction until it commits, retrying it after DDL lock timeouts."""

    def __init__(
        self, session: Session, policy: LockPolicy, progress: Progress, *, pooled: Callable[[], bool] | bool = False
    ):
        self.session = session
        self.policy = policy
        self.progress = progress
        self._pooled = pooled
        self._keep_lock: bool | None = None
        self.holding = False
        self.watcher = Watcher(session)

    @property
    def keep_lock(self) -> bool:
        """Whether the migration lock is kept (session-level) between attempts, so that concurrent deploys
        wait for it harmlessly instead of queueing their own ALTER in turn: the application gets the pause.

        Not through a transaction pooler, told from the URL or, asked once before the first attempt, from
        the connection's behaviour: there the hold would stay on the server connection the failed attempt
        ran on, which the pooler lends to another client, and every later attempt and deploy would wait
        for it. There, other deploys may take their turn between attempts.
        """
        if self._keep_lock is None:
            self._keep_lock = not (self._pooled() if callable(self._pooled) else self._pooled)
        return self._keep_lock

    def run(self, name: str, script: Script, attempt: Callable[[Attempt], T]) -> T:
        """Call ``attempt`` (one transaction of ``script``) until it does not time out on a lock.

        Raises :class:`LockRetriesExhausted` (exit 1) when the budget is spent, naming
        the blockers; any other failure is raised as it is.
        """

        def report(seconds: float, sample: LockSample) -> None:
            self.progress(Event.LOCK_WAIT, MigrationLockWait(name, seconds, sample.blockers))

        watcher = self.watcher
        began = time.monotonic()
        self.holding = succeeded = False
        try:
            for number in itertools.count(1):
                watch = watcher.watch(report)
                try:
                    result = attempt(self._attempt(number))
                    self.holding, succeeded = False, True
                    return result
                except MigrationFailed as error:
                    if error.failure.sqlstate != LOCK_NOT_AVAILABLE:
                        raise
                    failed = error.failure
                    self.holding = self.keep_lock  # the file's statements ran after the runner's: it took the lock
                finally:
                    watcher.finish(watch)
                lock = watch.last or self._holders(script, failed.line)
                delay = self.policy.backoff(number)
                elapsed = time.monotonic() - began
                give_up = elapsed + delay > self.policy.budget
                timeout = None if _sets_lock_timeout(script) else self.policy.timeout
                retry = LockRetry(name, number, timeout, lock, None if give_up else delay, elapsed)
                self.progress(Event.LOCK_RETRY, retry)
                if give_up:
                    raise LockRetriesExhausted(dataclasses.replace(failed, note=self._exhausted(retry)))
                time.sleep(delay)
        finally:
            watcher.close()
            if self._keep_lock and not succeeded:
                self._release()
        raise AssertionError("unreachable")

    def _attempt(self, number: int) -> Attempt:
        after = [LOCKS_TAKEN] if self.policy.measure_locks else []
        if not self.keep_lock:
            return Attempt(number, [self.policy.statement()], after)
        # Inside the transaction the migration lock is already ours: the session-level hold only makes it
        # outlive a rollback. Taken once; the successful attempt releases it before its COMMIT. The shared
        # key goes with it, or a file outside a transaction could take its key exclusively between two
        # attempts and then wait for ours while we wait for it (see locks).
        before = [self.policy.statement(keep_lock=not self.holding)]
        return Attempt(
            number, before, [*after, f"SELECT pg_advisory_unlock({LOCK_KEY}), pg_advisory_unlock_shared({OUTSIDE_KEY})"]
        )

    def _release(self) -> None:
        """Release the migration lock kept by a failed attempt (given up, or failed otherwise), if it is held."""
        self.holding = False
        try:
            for key, unlock in ((LOCK_KEY, "pg_advisory_unlock"), (OUTSIDE_KEY, "pg_advisory_unlock_shared")):
                self.session.fetch(
                    f"SELECT {unlock}(%s) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND classid = %s AND objid = %s AND objsubid = 1",
                    (key, key >> 32, key & 0xFFFFFFFF),
                )
        except psycopg.Error:
            pass  # a lost connection took the lock with it

    def _holders(self, script: Script, line: int) -> LockSample | None:
        """Who holds a lock on the tables of the statement at ``line`` (the migration no longer waits)."""
        statement = next(
            (
                s
                for s in script.statements
                if script.position(s.start)[0] <= line <= script.position(s.start + len(s.sql))[0]
            ),
            None,
        )
        try:
            return holders(self.session, statement.relations) if statement is not None else None
        except psycopg.Error:
            return None

    def _exhausted(self, retry: LockRetry) -> str:
        return (
            f"Every attempt was rolled back, so nothing changed. {retry.attempt} attempt(s) in "
            f"{retry.elapsed:.1f} s, retry budget {self.policy.budget:g} s; {retry.blocked_by()}. End or wait "
            "for that session (SELECT pg_terminate_backend(pid) ends it), then run again; or raise "
            "--lock-retry-budget / SQL_MIGRATIONS_LOCK_RETRY_BUDGET."
        )


def _sets_lock_timeout(script: Script) -> bool:
    return any(s.kind == "VariableSetStmt" and "lock_timeout" in s.sql.lower() for s in script.statements)
