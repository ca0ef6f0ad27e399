"""Who blocks a migration: the sessions that hold (or queue ahead for) the lock it waits for.

Read from ``pg_locks`` and ``pg_stat_activity``: while the migration's batch waits,
from a second connection (:class:`Watcher`, opened only when a batch is slow), or,
after a lock timeout, from the migration's own connection (:func:`holders`: the
migration no longer waits, so ``pg_blocking_pids`` has nothing to say; the sessions
that hold a lock on the statement's tables are the suspects).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from .locks import LOCK_KEY
from .session import Session

FIRST_LOOK = 0.2  # seconds a batch runs before the watcher connects: fast migrations never pay for it
LOOK_EVERY = 0.25
REPORT_FIRST, REPORT_EVERY = 1.0, 5.0  # the wait for the migration lock is shown after 1 s, then every 5 s

_ACTIVITY = """
SELECT a.pid, a.usename, a.application_name, host(a.client_addr), a.state,
       extract(epoch FROM now() - coalesce(a.xact_start, a.state_change))::float8, a.query,
       a.wait_event_type = 'Lock',
       (SELECT string_agg(DISTINCT l.mode, ', ') FROM pg_locks l
         WHERE l.pid = a.pid AND l.granted AND l.relation = ANY(%(relations)s::oid[]))
  FROM pg_stat_activity a WHERE a.pid = ANY(%(pids)s::int[])
 ORDER BY a.xact_start NULLS LAST, a.pid
"""
# What the watched backend waits for: one row per ungranted lock (normally one).
_WAITING = """
SELECT l.locktype, l.mode, l.relation::bigint, CASE WHEN c.oid IS NOT NULL THEN format('%%I.%%I', n.nspname, c.relname) END,
       l.classid::bigint, l.objid::bigint, l.objsubid::int, pg_blocking_pids(l.pid)
  FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE l.pid = %s AND NOT l.granted
"""
# Through a transaction pooler the migration's backend pid is unknown: whoever waits for the migration lock.
_MIGRATION_LOCK = """
SELECT array_agg(DISTINCT pid) FILTER (WHERE granted), bool_or(NOT granted)
  FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s AND objsubid = 1
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


def activity(connection: psycopg.Connection | Session, pids: list[int], relations: list[int] = ()) -> tuple[Blocker, ...]:
    """The sessions ``pids`` as :class:`Blocker` s, oldest transaction first, with the modes they hold on ``relations``."""
    if not pids:
        return ()
    rows = _fetch(connection, _ACTIVITY, {"pids": list(pids), "relations": list(relations)})
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


def _fetch(connection, query: str, params) -> list[tuple]:
    if isinstance(connection, Session):
        return connection.fetch(query, params)
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


@dataclass
class Watch:
    """One batch being watched: the last lock wait seen, and the signal that the batch returned."""

    done: threading.Event = field(default_factory=threading.Event)
    last: LockSample | None = None


class Watcher:
    """Watches a session's in-flight batch from a second connection, opened only when a batch is slow.

    Reports the wait for the migration lock through ``report(seconds_waited, sample)``
    every few seconds and keeps the last table-lock wait in :attr:`Watch.last`. Best
    effort: a watcher that cannot connect stays silent, the migration is not affected.
    """

    def __init__(self, session: Session, report: Callable[[float, LockSample], None]):
        self.session = session
        self.report = report
        self.pid = session.connection.info.backend_pid
        self.connection: psycopg.Connection | None = None
        self.broken = False

    def watch(self) -> tuple[Watch, threading.Thread]:
        """Start watching the batch about to be sent; set ``watch.done`` and join the thread when it returns."""
        watch = Watch()
        thread = threading.Thread(target=self._run, args=(watch,), name="dbmigrations-lock-watch", daemon=True)
        thread.start()
        return watch, thread

    def close(self) -> None:
        """Close the second connection, if one was opened."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _run(self, watch: Watch) -> None:
        began = time.monotonic()
        if watch.done.wait(FIRST_LOOK) or self.broken:
            return
        try:
            connection = self._connect()
            next_report = began + REPORT_FIRST
            while not watch.done.is_set():
                sample = self._sample(connection)
                now = time.monotonic()
                if sample is not None and sample.is_migration_lock:
                    if now >= next_report:
                        self.report(now - began, sample)
                        next_report = now + REPORT_EVERY
                elif sample is not None:
                    watch.last = sample
                watch.done.wait(LOOK_EVERY)
        except Exception:  # watching is best effort: the migration goes on unwatched
            self.broken = True
            self.close()

    def _connect(self) -> psycopg.Connection:
        if self.connection is None:
            info = self.session.connection.info
            params = {**info.get_parameters(), "application_name": "dbmigrations lock watch"}
            if info.password:
                params["password"] = info.password
            self.connection = psycopg.connect(**params, autocommit=True)
        return self.connection

    def _sample(self, connection: psycopg.Connection) -> LockSample | None:
        rows = _fetch(connection, _WAITING, (self.pid,))
        high, low = LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF
        for locktype, mode, relation, name, classid, objid, objsubid, blocking in rows:
            if locktype == "advisory" and (classid, objid, objsubid) == (high, low, 1):
                return LockSample(None, mode, "advisory", activity(connection, blocking))
            relations = [relation] if relation is not None else []
            return LockSample(name if relation is not None else None, mode, locktype,
                              activity(connection, blocking, relations))
        if rows or self._backend_visible(connection):
            return None
        # A pooler hides the backend: say who holds the migration lock when somebody waits for it.
        holding, waited = _fetch(connection, _MIGRATION_LOCK, (high, low))[0]
        if waited and holding:
            return LockSample(None, None, "advisory", activity(connection, holding))
        return None

    def _backend_visible(self, connection: psycopg.Connection) -> bool:
        return bool(_fetch(connection, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (self.pid,)))
