"""The migration lock: one PostgreSQL advisory lock shared by every runner of this tool.

Transactional work (a migration with its ledger row, a rollback step, creating the
ledger, repair, reset) takes the transaction-scoped ``pg_advisory_xact_lock``, which a
transaction pooler keeps correctly. Files that must run outside a transaction hold
the session-scoped lock for the whole file instead (refused through a pooler).
"""
from __future__ import annotations

from contextlib import contextmanager

from psycopg import errors

from .exceptions import LockTimeout, RunnerStatementFailed
from .session import BatchError, Part, Session, run_batch

# One 64-bit key for every runner of this tool: migrations, rollbacks, ensure-ledger.
LOCK_KEY = 7_316_415_243_117_601_218


def lock_statements(lock_timeout: float | None, *, transaction: bool = True) -> list[str]:
    """SQL that takes the migration lock, bounded by ``lock_timeout`` seconds if given.

    The bound applies to the wait for this lock only: the file's own DDL keeps the
    server's ``lock_timeout`` (the two waits are separate limits). The wait is never cut
    by ``statement_timeout`` (a role's or the URL's is meant for the file's statements):
    it is lifted for the lock statement and put back, exactly, right after it.
    """
    scope = "true" if transaction else "false"
    take = f"SELECT pg_advisory_xact_lock({LOCK_KEY})" if transaction else f"SELECT pg_advisory_lock({LOCK_KEY})"
    names = ["statement_timeout"] + (["lock_timeout"] if lock_timeout is not None else [])
    save = [f"set_config('dbmigrations.{n}', current_setting('{n}'), {scope})" for n in names]
    lift = [f"set_config('statement_timeout', '0', {scope})"]
    if lock_timeout is not None:
        lift.append(f"set_config('lock_timeout', '{max(1, int(lock_timeout * 1000))}', {scope})")
    put_back = [f"set_config('{n}', current_setting('dbmigrations.{n}'), {scope})" for n in names]
    # A target list is evaluated left to right: the values are saved before they are lifted.
    return [f"SELECT {', '.join(save + lift)}", take, f"SELECT {', '.join(put_back)}"]


def raise_for_lock(error: BatchError, lock_timeout: float | None) -> None:
    """Turn a lock timeout on the migration lock into :class:`LockTimeout` (exit 2); otherwise return."""
    if isinstance(error.error, errors.LockNotAvailable):
        after = f"after {lock_timeout:g} s" if lock_timeout is not None else "(the server's lock_timeout)"
        raise LockTimeout(
            f"gave up waiting for the migration lock {after}: another runner "
            "(a deploy, a teammate) is migrating this database; retry when it is done"
        ) from None


def run_locked(session: Session, statements: list[str], *, lock_timeout: float | None = None) -> None:
    """Run ``statements`` in one transaction under the migration lock: all of them or none."""
    try:
        run_batch(session, [Part(("BEGIN", *lock_statements(lock_timeout), *statements, "COMMIT"))])
    except BatchError as error:
        raise_for_lock(error, lock_timeout)
        raise


@contextmanager
def session_lock(session: Session, lock_timeout: float | None):
    """Hold the migration lock for the whole block (files that run outside a transaction).

    The release is checked: a lock that was not ours to release (a pooler gave us another
    server connection) is an error, never silently left behind.
    """
    try:
        run_batch(session, [Part(tuple(lock_statements(lock_timeout, transaction=False)))])
    except BatchError as error:
        raise_for_lock(error, lock_timeout)
        raise
    try:
        yield
    except BaseException:
        try:  # the body's failure is what the user needs to see; a lost connection took the lock with it
            session.fetch("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        except Exception:
            pass
        raise
    released = session.fetch("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    if not (released and released[0][0]):
        raise RunnerStatementFailed(
            "the session-level migration lock was not held by this connection when released: a connection "
            "pooler probably switched server connections. Use a direct connection (DATABASE_URL_UNPOOLED or "
            "POSTGRES_URL_NON_POOLING) for files that run outside a transaction."
        )
