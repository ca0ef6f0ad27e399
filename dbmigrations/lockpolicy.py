"""How long a migration's statement may wait for a table lock, and how long a migration is retried.

The policy alone, read from the options or the settings before anything connects; the
retries themselves (:mod:`dbmigrations.lockwait`, with the blockers and the lock watcher)
are imported when a migration runs, so a run with nothing to do never loads them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import conf
from .locks import LOCK_KEY, OUTSIDE_KEY

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0  # seconds before the 2nd attempt, and the most between two attempts
WAITED = "waited="


@dataclass(frozen=True)
class LockPolicy:
    """How long a statement may wait for a lock (``timeout``, 0 = the server's own) and how long to retry."""

    timeout: float = conf.DEFAULT_DDL_LOCK_TIMEOUT
    budget: float = conf.DEFAULT_LOCK_RETRY_BUDGET
    #: Also report the table locks each migration holds before its COMMIT (verify: see :mod:`dbmigrations.measure`).
    measure_locks: bool = False

    @classmethod
    def resolve(cls, timeout: float | None = None, budget: float | None = None) -> LockPolicy:
        """The given values, else the settings (``SQL_MIGRATIONS_DDL_LOCK_TIMEOUT``, ``…_LOCK_RETRY_BUDGET``)."""
        return cls(
            conf.ddl_lock_timeout() if timeout is None else timeout,
            conf.lock_retry_budget() if budget is None else budget,
        )

    def statement(self, *, keep_lock: bool = False) -> str:
        """The runner's one statement right before the file: how long the migration lock took (a value the
        run returns), the bound (``SET LOCAL lock_timeout``), and, with ``keep_lock``, a session-level hold
        of the migration lock that outlives a rollback. One short statement: ``pg_stat_activity`` shows a
        query's first 1 KiB only, and the file's own SQL should still be seen there."""
        parts = [f"'{WAITED}'||extract(epoch FROM clock_timestamp()-now())"]
        if keep_lock:
            parts += [f"pg_advisory_lock({LOCK_KEY})", f"pg_advisory_lock_shared({OUTSIDE_KEY})"]
        if self.timeout:
            parts.append(f"set_config('lock_timeout','{max(1, round(self.timeout * 1000))}',true)")
        return "SELECT " + ",".join(parts)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed ``attempt``: doubling from 0.5 s up to 10 s, ±50 % jitter, so that
        the application's queued queries drain and concurrent deployers do not retry in step."""
        return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
