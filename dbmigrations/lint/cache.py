"""Our rules' results per file content, kept between runs (the way ruff and mypy cache).

An entry is keyed by the file's kind, name and SHA-256 (the checksum the runner
records). It lives in a file named after a version: a hash of the lint's own source,
of the runner's parser and validation it reuses (statements, discovery) and of
pglast's version. Editing a rule therefore invalidates every entry, and a stale
result is never reused. Only our rules are cached; squawk runs every time. The cache
is an optimization: when it cannot be read or written, the lint runs without it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from importlib import metadata
from pathlib import Path

import orjson
from django.conf import settings

MAX_ENTRIES = 20_000


def directory() -> Path:
    """``SQL_LINT_CACHE_DIR``; default ``$XDG_CACHE_HOME/bestrong-dbmigrations`` (``~/.cache/…``)."""
    configured = getattr(settings, "SQL_LINT_CACHE_DIR", None)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = Path.home() / ".cache"
        except RuntimeError:  # no home directory (some build containers)
            base = tempfile.gettempdir()
    return Path(base) / "bestrong-dbmigrations"


@functools.cache
def version() -> str:
    """Changes with the lint's code, the runner's file validation it reuses, and pglast."""
    here = Path(__file__).parent
    digest = hashlib.sha256(metadata.version("pglast").encode())
    for path in [*sorted(here.glob("*.py")), here.parent / "discovery.py", here.parent / "statements.py"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def key(kind: str, path: Path, checksum: str) -> str:
    return f"{kind}:{path.name}:{checksum}"


class Cache:
    """A JSON file of entries; :meth:`save` writes it back atomically if anything changed."""

    def __init__(self, path: Path):
        self.path, self.changed = path, False
        try:
            loaded = orjson.loads(path.read_bytes())
        except (OSError, ValueError):
            loaded = {}
        self.entries: dict = loaded if isinstance(loaded, dict) else {}

    @classmethod
    def open(cls) -> Cache:
        return cls(directory() / f"lint-{version()}.json")

    def get(self, entry_key: str) -> dict | None:
        return self.entries.get(entry_key)

    def put(self, entry_key: str, entry: dict) -> None:
        self.entries[entry_key] = entry
        self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        entries = dict(list(self.entries.items())[-MAX_ENTRIES:])
        try:
            data = orjson.dumps(entries)
        except orjson.JSONEncodeError:  # a file name that is not UTF-8 (kept as surrogates) in a key or message
            data = orjson.dumps({k: v for k, v in entries.items() if _encodable((k, v))})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=self.path.parent, suffix=".tmp", delete=False) as temporary:
                temporary.write(data)
            os.replace(temporary.name, self.path)
            for old in self.path.parent.glob("lint-*.json"):
                if old != self.path:
                    old.unlink(missing_ok=True)  # entries of an older lint version
        except OSError:
            pass  # read-only home, full disk: the next run simply recomputes


def _encodable(value) -> bool:
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return True
