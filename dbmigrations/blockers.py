"""Who blocks a migration: the sessions that hold (or queue ahead for) the lock it waits for.

Read from ``pg_locks`` and ``pg_stat_activity``: while the migration's batch waits,
from a second connection (:mod:`dbmigrations.lockwatch`, opened only when a batch is slow), or,
after a lock timeout, from the migration's own connection (:func:`holders`: the
migration no longer waits, so ``pg_blocking_pids`` has nothing to say; the sessions
that hold a lock on the statement's tables are the suspects).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from .locks import LOCK_KEY
from .session import Session

_ACTIVITY = """
SELECT a.pid, a.usename, a.application_name, host(a.client_addr), a.state,
       extract(epoch FROM now() - coalesce(a.xact_start, a.state_change))::float8, a.query,
       a.wait_event_type = 'Lock',
       (SELECT string_agg(DISTINCT l.mode, ', ') FROM pg_locks l
         WHERE l.pid = a.pid AND l.granted AND l.relation = ANY(%(relations)s::oid[]))
  FROM pg_stat_activity a WHERE a.pid = ANY(%(pids)s::int[])
 ORDER BY a.xact_start NULLS LAST, a.pid
"""
_RELATIONS = """
SELECT c.oid::bigint, format('%%I.%%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = ANY(SELECT to_regclass(name) FROM unnest(%s::text[]) AS name)
"""
_LOCKERS = """
SELECT array_agg(DISTINCT pid) FROM pg_locks
 WHERE relation = ANY(%s::oid[]) AND pid IS NOT NULL AND pid <> pg_backend_pid()
"""


@dataclass(frozen=True)
class Blocker:
    """A session in the way: who, from where, in what state, for how long, doing what."""

    pid: int
    user: str | None
    application: str | None
    client: str | None
    state: str | None
    seconds: float | None  # age of its transaction (or of its state, outside a transaction)
    query: str | None
    waiting: bool = False  # itself queued for a lock (ahead of us in the queue)
    holds: str | None = None  # the modes it holds on the table we wait for

    def describe(self) -> str:
        """``pid 4242 app@10.0.0.5 (psql), idle in transaction for 312 s, holds AccessShareLock: SELECT …``."""
        text = f"pid {self.pid} {self.user or '?'}@{self.client or 'local'}"
        if self.application:
            text += f" ({self.application})"
        if self.state:
            text += f", {self.state}" + (f" for {self.seconds:.0f} s" if self.seconds is not None else "")
        if self.waiting:
            text += ", itself waiting for a lock"
        if self.holds:
            text += ", holds " + ", ".join(readable_mode(mode) for mode in self.holds.split(", "))
        query = " ".join((self.query or "").split())
        if str(LOCK_KEY) in query:
            query = "a migration of this tool (another deploy)"
        if query:
            text += ": " + (query if len(query) <= 60 else query[:60] + "…")
        return text


@dataclass(frozen=True)
class LockSample:
    """What a migration was seen waiting for: a table (or row, or the migration lock) and who is in the way."""

    relation: str | None
    mode: str | None
    locktype: str
    blockers: tuple[Blocker, ...] = ()

    @property
    def is_migration_lock(self) -> bool:
        return self.locktype == "advisory"

    def describe(self) -> str:
        """``lock on public.accounts (ACCESS EXCLUSIVE)``."""
        mode = f" ({readable_mode(self.mode)})" if self.mode else ""
        if self.relation:
            return f"lock on {self.relation}{mode}"
        if self.locktype == "transactionid":
            return "lock on a row another transaction changed"
        return f"{self.locktype} lock{mode}"


def readable_mode(mode: str) -> str:
    """``AccessExclusiveLock`` → ``ACCESS EXCLUSIVE``, as PostgreSQL's documentation names it."""
    words, word = [], ""
    for char in mode.removesuffix("Lock"):
        if char.isupper() and word:
            words.append(word)
            word = ""
        word += char
    return " ".join([*words, word]).upper()


def activity(
    connection: psycopg.Connection | Session, pids: list[int], relations: list[int] = ()
) -> tuple[Blocker, ...]:
    """The sessions ``pids`` as :class:`Blocker` s, oldest transaction first, with the modes they hold on ``relations``."""
    if not pids:
        return ()
    rows = fetch(connection, _ACTIVITY, {"pids": list(pids), "relations": list(relations)})
    return tuple(Blocker(*row) for row in rows)


def holders(session: Session, relation_names: list[str]) -> LockSample | None:
    """After a lock timeout: the sessions holding or awaiting a lock on the named tables (None if unknown)."""
    relations = session.fetch(_RELATIONS, (relation_names,)) if relation_names else []
    if not relations:
        return None
    oids = [oid for oid, _ in relations]
    pids = session.fetch(_LOCKERS, (oids,))[0][0] or []
    names = ", ".join(name for _, name in relations)
    return LockSample(names, None, "relation", activity(session, pids, oids))


def fetch(connection: psycopg.Connection | Session, query: str, params) -> list[tuple]:
    """Rows of ``query`` on a plain psycopg connection (the watcher's) or a :class:`Session`."""
    if isinstance(connection, Session):
        return connection.fetch(query, params)
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()
