"""Watching a migration's batch while it waits, from a second connection opened only when it is slow.

The migration's own connection is busy in its one round trip; a second one reads what
it waits for (``pg_locks``: the migration lock or a table) and who is in the way
(``pg_blocking_pids``). Best effort: a watcher that cannot connect stays silent and
the migration is not affected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from .blockers import LockSample, activity, fetch
from .locks import LOCK_KEY
from .session import Session

FIRST_LOOK = 0.2  # seconds a batch runs before the watcher connects: fast migrations never pay for it
LOOK_EVERY = 0.25
REPORT_FIRST, REPORT_EVERY = 1.0, 5.0  # the wait for the migration lock is shown after 1 s, then every 5 s
IDLE_END = 2.0  # seconds without a batch in flight after which the watcher's thread ends

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


@dataclass
class Watch:
    """One batch being watched: the last lock wait seen, and the signal that the batch returned."""

    report: Callable[[float, LockSample], None]
    began: float = field(default_factory=time.monotonic)
    done: bool = False
    #: The watcher's thread is sampling this batch now (slow batches only).
    sampling: bool = False
    last: LockSample | None = None


class Watcher:
    """Watches a session's in-flight batch from a second connection, opened only when a batch is slow.

    Reports the wait for the migration lock through the watch's ``report(seconds_waited, sample)``
    every few seconds and keeps the last table-lock wait in :attr:`Watch.last`. Best
    effort: a watcher that cannot connect stays silent, the migration is not affected.

    One thread serves every batch of a run: it wakes at the moment the batch in flight
    would become slow, so a run of fast migrations costs it a wake-up every
    :data:`FIRST_LOOK` seconds, not a thread (or a thread switch) per migration. It ends
    on its own once no batch has been in flight for a while.
    """

    def __init__(self, session: Session):
        self.session = session
        self.pid = session.connection.info.backend_pid
        self.connection: psycopg.Connection | None = None
        self.broken = False
        self._state = threading.Condition()
        self._current: Watch | None = None
        self._thread: threading.Thread | None = None

    def watch(self, report: Callable[[float, LockSample], None]) -> Watch:
        """Start watching the batch about to be sent; call :meth:`finish` when it returns."""
        watch = Watch(report)
        with self._state:
            self._current = watch
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="dbmigrations-lock-watch", daemon=True)
                self._thread.start()
        return watch

    def finish(self, watch: Watch) -> None:
        """The batch returned: stop watching it (waiting for a sample in progress, so ``watch.last`` is final)."""
        with self._state:
            watch.done = True
            if self._current is watch:
                self._current = None
            if watch.sampling:  # only then: a fast batch's end must not wake the thread
                self._state.notify_all()
            while watch.sampling:
                self._state.wait()

    def close(self) -> None:
        """Close the second connection, if one was opened (after any sample in progress)."""
        with self._state:
            while self._current is not None and self._current.sampling:
                self._state.wait()
            if self.connection is not None:
                self.connection.close()
                self.connection = None

    def _serve(self) -> None:
        idle_since = time.monotonic()
        with self._state:
            while True:
                watch, now = self._current, time.monotonic()
                if watch is None:
                    if now - idle_since > IDLE_END:
                        self._thread = None
                        return
                    self._state.wait(FIRST_LOOK)
                    continue
                idle_since = now
                if now < watch.began + FIRST_LOOK:
                    self._state.wait(watch.began + FIRST_LOOK - now)
                    continue
                if self.broken:
                    self._state.wait(FIRST_LOOK)
                    continue
                watch.sampling = True
                self._state.release()
                try:
                    self._sample_until_done(watch)
                finally:
                    self._state.acquire()
                    watch.sampling = False
                    if self._current is watch:
                        self._current = None
                    self._state.notify_all()

    def _sample_until_done(self, watch: Watch) -> None:
        next_report = watch.began + REPORT_FIRST
        try:
            connection = self._connect()
            while not watch.done:
                sample = self._sample(connection)
                now = time.monotonic()
                if sample is not None and sample.is_migration_lock:
                    if now >= next_report and not watch.done:
                        watch.report(now - watch.began, sample)
                        next_report = now + REPORT_EVERY
                elif sample is not None:
                    watch.last = sample
                with self._state:
                    if not watch.done:
                        self._state.wait(LOOK_EVERY)
        except Exception:  # watching is best effort: the migration goes on unwatched
            self.broken = True
            if self.connection is not None:
                try:
                    self.connection.close()
                except Exception:
                    pass
                self.connection = None

    def _connect(self) -> psycopg.Connection:
        if self.connection is None:
            info = self.session.connection.info
            params = {**info.get_parameters(), "application_name": "dbmigrations lock watch"}
            if info.password:
                params["password"] = info.password
            self.connection = psycopg.connect(**params, autocommit=True)
        return self.connection

    def _sample(self, connection: psycopg.Connection) -> LockSample | None:
        rows = fetch(connection, _WAITING, (self.pid,))
        high, low = LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF
        for locktype, mode, relation, name, classid, objid, objsubid, blocking in rows:
            if locktype == "advisory" and (classid, objid, objsubid) == (high, low, 1):
                return LockSample(None, mode, "advisory", activity(connection, blocking))
            relations = [relation] if relation is not None else []
            return LockSample(
                name if relation is not None else None, mode, locktype, activity(connection, blocking, relations)
            )
        if rows or self._backend_visible(connection):
            return None
        # A pooler hides the backend: say who holds the migration lock when somebody waits for it.
        holding, waited = fetch(connection, _MIGRATION_LOCK, (high, low))[0]
        if waited and holding:
            return LockSample(None, None, "advisory", activity(connection, holding))
        return None

    def _backend_visible(self, connection: psycopg.Connection) -> bool:
        return bool(fetch(connection, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (self.pid,)))
