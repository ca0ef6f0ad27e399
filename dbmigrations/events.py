"""Progress events the core reports while it works; only commands turn them into output.

Core functions take ``progress: Progress | None`` and call ``progress(event, payload)``.
:class:`Event` is a ``str`` enum, so a callback may compare with plain strings.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum


class Event(str, Enum):
    """What just happened, and what its payload is."""

    DATABASE = "database"  # about to connect: the DatabaseTarget (verify: the scratch database's name)
    START = "start"  # a file is about to run: the plan Entry (seeds: the SqlFile)
    DONE = "done"  # it ran: the Outcome (apply), Step (rollback) or SeedRun (seeds)
    FAILED = "failed"  # a seed failed: its SqlFile (the error is raised right after)
    MIGRATION = "migration"  # verify checked a migration: its MigrationCheck
    SEED = "seed"  # verify checked a seed: its SeedCheck
    # still waiting for the migration lock (every few seconds, from a watcher thread): a lockwait.MigrationLockWait
    LOCK_WAIT = "lock_wait"
    LOCK_RETRY = (
        "lock_retry"  # a statement's table lock timed out; rolled back, retried or given up: a lockwait.LockRetry
    )


Progress = Callable[[Event, object], None]


def quiet(event: Event, payload: object) -> None:
    """The default callback: report nothing."""
