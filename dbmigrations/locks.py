"""The migration lock: one PostgreSQL advisory lock shared by every runner of this tool.

Every holder takes the transaction-scoped ``pg_advisory_xact_lock``, which ends with
its transaction, so no exit path can leave it behind and a transaction pooler keeps
it correctly. Transactional work (a migration with its ledger row, a rollback step,
creating the ledger, repair, reset) takes it in its own transaction; a file that must
run outside a transaction is covered by a transaction held open on a second
connection (:func:`lock_holder`).

Nobody may wait for the lock inside the server while such a file runs: a backend
blocked in ``SELECT pg_advisory_xact_lock`` holds a snapshot, ``CREATE INDEX
CONCURRENTLY`` waits for every older snapshot to end, and that waiter waits for the
build's lock — a hang the server cannot see (or, with a session-level lock on the
building connection, a deadlock error). So a second key says "a file outside a
transaction runs": every taker holds it shared while it waits for the migration lock,
and the runner of such a file takes it exclusively, never waiting inside the server
for it. While it is taken exclusively, the others wait in the client, without a
snapshot, and try again (:func:`with_lock_retries`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
from psycopg import errors

from .exceptions import LockTimeout
from .session import BatchError, Part, Session, run_batch

# One 64-bit key for every runner of this tool: migrations, rollbacks, ensure-ledger.
LOCK_KEY = 7_316_415_243_117_601_218
# Held exclusively while a file runs outside a transaction, shared by everyone waiting for LOCK_KEY.
OUTSIDE_KEY = LOCK_KEY + 1
# The SQLSTATE of "a file outside a transaction holds the lock: wait in the client and try again".
BUSY = "55M01"
FIRST_PAUSE, LONGEST_PAUSE = 0.02, 0.5

T = TypeVar("T")


def _try_outside_key(exclusive: bool) -> str:
    function = "pg_try_advisory_xact_lock" if exclusive else "pg_try_advisory_xact_lock_shared"
    return (
        f"DO $$BEGIN IF NOT {function}({OUTSIDE_KEY}) THEN RAISE EXCEPTION 'the migration lock is held by a "
        f"file that runs outside a transaction' USING ERRCODE = '{BUSY}'; END IF; END$$"
    )


def lock_statements(lock_timeout: float | None, *, outside: bool = False) -> list[str]:
    """SQL that takes the migration lock in the current transaction, bounded by ``lock_timeout`` seconds if given.

    Fails at once with SQLSTATE :data:`BUSY` while a file outside a transaction holds it
    (or, with ``outside``, while anyone holds or waits for it): retry with
    :func:`with_lock_retries`. The bound applies to the wait for this lock only: the
    file's own DDL keeps the server's ``lock_timeout`` (the two waits are separate limits).
    The wait is never cut by ``statement_timeout`` (a role's or the URL's is meant for the
    file's statements): it is lifted for the lock statements and put back, exactly, right after.
    """
    names = ["statement_timeout"] + (["lock_timeout"] if lock_timeout is not None else [])
    save = [f"set_config('dbmigrations.{n}', current_setting('{n}'), true)" for n in names]
    lift = ["set_config('statement_timeout', '0', true)"]
    if lock_timeout is not None:
        lift.append(f"set_config('lock_timeout', '{max(1, int(lock_timeout * 1000))}', true)")
    put_back = [f"set_config('{n}', current_setting('dbmigrations.{n}'), true)" for n in names]
    # A target list is evaluated left to right: the values are saved before they are lifted.
    return [
        f"SELECT {', '.join(save + lift)}",
        _try_outside_key(exclusive=outside),
        f"SELECT pg_advisory_xact_lock({LOCK_KEY})",
        f"SELECT {', '.join(put_back)}",
    ]


def with_lock_retries(attempt: Callable[[float | None], T], lock_timeout: float | None) -> T:
    """``attempt(seconds_left)`` until it gets past the migration lock (see :data:`BUSY`).

    Each attempt sends its whole batch again (nothing of it ran); the pause between
    attempts grows to half a second. Past ``lock_timeout``: :class:`LockTimeout`.
    """
    deadline = None if lock_timeout is None else time.monotonic() + lock_timeout
    pause = FIRST_PAUSE
    while True:
        left = None if deadline is None else max(0.001, deadline - time.monotonic())
        try:
            return attempt(left)
        except BatchError as error:
            if error.sqlstate != BUSY:
                raise
            if deadline is not None and time.monotonic() >= deadline:
                raise _timeout(lock_timeout) from None
        time.sleep(pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, LONGEST_PAUSE)


def raise_for_lock(error: BatchError, lock_timeout: float | None) -> None:
    """Turn a lock timeout on the migration lock into :class:`LockTimeout` (exit 2); otherwise return."""
    if isinstance(error.error, errors.LockNotAvailable):
        raise _timeout(lock_timeout) from None


def _timeout(lock_timeout: float | None) -> LockTimeout:
    after = f"after {lock_timeout:g} s" if lock_timeout is not None else "(the server's lock_timeout)"
    return LockTimeout(
        f"gave up waiting for the migration lock {after}: another runner "
        "(a deploy, a teammate) is migrating this database; retry when it is done"
    )


def run_locked(session: Session, statements: list[str], *, lock_timeout: float | None = None) -> None:
    """Run ``statements`` in one transaction under the migration lock: all of them or none."""

    def attempt(left: float | None) -> None:
        try:
            run_batch(session, [Part(("BEGIN", *lock_statements(left), *statements, "COMMIT"))])
        except BatchError as error:
            raise_for_lock(error, lock_timeout)
            raise

    with_lock_retries(attempt, lock_timeout)


@contextmanager
def lock_holder(session: Session, lock_timeout: float | None) -> Iterator[Session]:
    """Hold the migration lock while a file runs outside a transaction on ``session``.

    The lock is transaction-scoped too, taken in a transaction of its own on a second
    connection that stays open for the whole block: the caller commits that transaction
    with the ledger row (:func:`dbmigrations.ledger.record_applied_and_unlock`), which is
    what releases it. Nothing is ever left behind: if the block fails, or the runner
    dies, the connection closes and the server ends the transaction and its lock; a
    transaction pooler keeps an open transaction on one server connection and drops
    that connection when its client goes away. (A session-level lock would stay on
    a pooled server connection that the pooler hands to the next client.)
    """
    holder = session.open_another()

    def attempt(left: float | None) -> None:
        try:
            # The file may run for a long time (CREATE INDEX CONCURRENTLY): the server must not
            # end the holder's idle transaction meanwhile.
            run_batch(
                holder,
                [
                    Part(
                        (
                            "BEGIN",
                            "SET LOCAL idle_in_transaction_session_timeout = 0",
                            *lock_statements(left, outside=True),
                        )
                    )
                ],
            )
        except BatchError as error:
            raise_for_lock(error, lock_timeout)
            raise

    try:
        with_lock_retries(attempt, lock_timeout)
        yield holder
    finally:
        try:  # released now, not when the server gets round to ending the closed connection's backend
            holder.rollback_if_needed()
        except psycopg.Error:
            pass  # a lost connection took the lock with it
        holder.close()
