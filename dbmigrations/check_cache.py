"""The file checks' messages, reused while the SQL files are unchanged.

Django runs every registered check before ``runserver``, ``migrate``,
``createsuperuser`` and most other commands, so without this the file checks
(the runner's validation and the lint) would parse every SQL file each time.
Their messages are stored instead, under a fingerprint of the files: for every
``*.sql`` entry under ``SQL_MIGRATIONS_DIR`` and ``SQL_SEEDS_DIR``, its path, size,
modification time, change time and inode (what ``git status`` compares), plus a
hash of this app's code and the settings the checks read. An unchanged tree costs
one ``stat`` per file; any change recomputes the checks (the lint then re-reads
its results for unchanged content from its own cache).

A file modified in the last :data:`RACY_SECONDS` is too recent to trust (a second
edit within the file system's timestamp resolution would look the same), so the
messages are then computed but not stored. The cache only saves time: when it
cannot be read or written, the checks simply run. It can never let a bad file
through, as ``apply_sql_migrations`` validates the files itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

from django.conf import settings
from django.core import checks

from . import conf

RACY_SECONDS = 2
_CLASSES = {
    checks.DEBUG: checks.Debug,
    checks.INFO: checks.Info,
    checks.WARNING: checks.Warning,
    checks.ERROR: checks.Error,
    checks.CRITICAL: checks.Critical,
}

Check = Callable[[], list[checks.CheckMessage]]


def reused_while_unchanged(check: Check) -> Check:
    """Decorate a file check (no argument, returns messages): reuse its messages while the files are unchanged."""
    name = f"{check.__module__}.{check.__qualname__}"

    @functools.wraps(check)
    def cached() -> list[checks.CheckMessage]:
        fingerprint, racy = _fingerprint()  # taken first: an edit made while the check runs changes it
        from .lint.cache import directory  # when checks run: importing the lint package loads its rules

        store = _Store(directory() / f"checks-{_project_key()}.json")
        stored = store.get(fingerprint, name)
        if stored is not None:
            return stored
        messages = check()
        if not racy and store.put(fingerprint, name, messages):
            store.save()
        return messages

    cached.uncached = check
    return cached


def _fingerprint() -> tuple[str, bool]:
    """A digest of the files and code the checks read, and whether a file is too recent to trust."""
    digest = hashlib.sha256(_code_version().encode())
    digest.update(repr(_settings()).encode())
    newest_allowed, racy = time.time_ns() - RACY_SECONDS * 10**9, False
    for root, recursive in ((conf.migrations_dir(), False), (conf.seeds_dir(), True)):
        for path, stamp in sorted(_sql_entries(str(root), recursive)):
            digest.update(f"{path}\0{stamp}\n".encode("utf-8", "surrogateescape"))
            racy |= isinstance(stamp, tuple) and stamp[1] > newest_allowed
    return digest.hexdigest(), racy


def _sql_entries(root: str, recursive: bool) -> Iterator[tuple[str, object]]:
    """(path, (size, mtime_ns, ctime_ns, inode)) of every ``*.sql`` entry; an error string where stat fails."""
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as error:
            yield folder, f"cannot list: {error.errno}"
            continue
        for entry in entries:
            if recursive and entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            if entry.name.endswith(".sql"):
                try:
                    found = os.stat(entry.path)
                except OSError as error:
                    yield entry.path, f"cannot stat: {error.errno}"
                    continue
                yield entry.path, (found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino)


def _settings() -> tuple:
    lint = sorted((name, repr(getattr(settings, name))) for name in dir(settings) if name.startswith("SQL_LINT_"))
    return str(conf.base_dir()), str(conf.migrations_dir()), str(conf.seeds_dir()), os.getcwd(), lint


@functools.cache
def _code_version() -> str:
    """Changes with any source file of this app and with pglast (the grammar)."""
    digest = hashlib.sha256(metadata.version("pglast").encode())
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _project_key() -> str:
    """One cache file per project (its folders), so two projects do not evict each other."""
    return hashlib.sha256(f"{conf.migrations_dir()}\0{conf.seeds_dir()}".encode()).hexdigest()[:16]


class _Store:
    """``{"fingerprint": …, "results": {check name: [[level, msg, hint, obj, id], …]}}`` in one JSON file."""

    def __init__(self, path: Path):
        self.path = path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        self.data = data if isinstance(data, dict) and isinstance(data.get("results"), dict) else {"results": {}}

    def get(self, fingerprint: str, name: str) -> list[checks.CheckMessage] | None:
        if self.data.get("fingerprint") != fingerprint:
            return None
        rows = self.data["results"].get(name)
        try:
            return [_CLASSES[level](msg, hint=hint, obj=obj, id=id) for level, msg, hint, obj, id in rows]
        except (TypeError, ValueError, KeyError):
            return None  # absent or not written by this code

    def put(self, fingerprint: str, name: str, messages: list[checks.CheckMessage]) -> bool:
        """Keep ``messages``; False when one cannot be stored as JSON (its ``obj`` is a model, …)."""
        if any(type(m) is not _CLASSES.get(m.level) or not isinstance(m.obj, (str, type(None))) for m in messages):
            return False
        if self.data.get("fingerprint") != fingerprint:
            self.data = {"fingerprint": fingerprint, "results": {}}
        self.data["results"][name] = [[m.level, m.msg, m.hint, m.obj, m.id] for m in messages]
        return True

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.path.parent, suffix=".tmp", delete=False, encoding="utf-8"
            ) as temporary:
                json.dump(self.data, temporary)
            os.replace(temporary.name, self.path)
        except OSError:
            pass  # read-only home, full disk: the checks simply run next time
