"""Scaffolding a new migration: the next number and the spec's template.

The number is the highest one already used plus one, with the same zero padding
(at least three digits): ``009`` → ``010``, ``0999`` → ``1000``. Every ``NNN_…sql``
name in the directory counts, down files and badly named files included, and so
does every version the ledger knows (``known``): a version applied from a file
that is no longer on disk (another branch's) is never reused. Files are created
exclusively: never overwritten.
"""

from __future__ import annotations

import getpass
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .exceptions import ConfigurationError
from .plan import next_version as following

# A description, not SQL: the same slug rule as discovery's file names.
SLUG = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")

UP_TEMPLATE = """\
-- Migration: {name}
-- Description: {description}
-- Created: {created}
-- Author: {author}

BEGIN;

-- TODO: write the schema change here, idempotent (CREATE … IF NOT EXISTS, DROP … IF EXISTS).
-- apply_sql_migrations refuses this file until it holds at least one statement.

COMMIT;
"""
DOWN_TEMPLATE = """\
-- Migration: {name} (down)
-- Description: Reverts {name}
-- Created: {created}
-- Author: {author}

BEGIN;

-- TODO: undo {name} here, last change first (DROP … IF EXISTS).
-- apply_sql_migrations refuses this file until it holds at least one statement.

COMMIT;
"""


@dataclass(frozen=True)
class Scaffold:
    """The files written for one new migration."""

    name: str
    path: Path
    down_path: Path | None = None

    @property
    def paths(self) -> list[Path]:
        return [self.path, *([self.down_path] if self.down_path else [])]


def check_description(description: str) -> str:
    """Return ``description`` if it is snake_case; else raise :class:`ConfigurationError` with a suggestion."""
    if SLUG.match(description):
        return description
    suggestion = "_".join(re.findall(r"[a-z0-9]+", description.lower()))
    hint = f" (e.g. {suggestion})" if suggestion else ""
    raise ConfigurationError(
        f"invalid description {description!r}: use snake_case, lowercase letters, digits and underscores{hint}"
    )


def next_version(directory: Path, known: Iterable[str] = ()) -> str:
    """The version of the next migration in ``directory``: highest number on disk or in ``known`` + 1, same padding."""
    used = list(known)
    if directory.is_dir():
        for path in directory.iterdir():
            prefix = path.name.split("_", 1)[0]
            if path.name.lower().endswith(".sql") and prefix.isdigit():
                used.append(prefix)
    return following(used)


def author(directory: Path | None = None) -> str:
    """git's ``user.name`` (as seen from ``directory``), else the OS user, else ``unknown``."""
    try:
        name = subprocess.run(
            ["git", "config", "user.name"], cwd=directory, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        name = ""
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def create_migration(
    directory: Path, description: str, *, down: bool = False, today: date | None = None, known: Iterable[str] = ()
) -> Scaffold:
    """Write ``NNN_description.sql`` (and with ``down`` its ``.down.sql``) from the template.

    ``known``: the versions in the ledger, skipped like the numbers on disk. Creates
    ``directory`` if missing. Raises :class:`ConfigurationError` for a bad
    description or when a file of that name already exists (nothing is overwritten).
    """
    check_description(description)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{next_version(directory, known)}_{description}"
    values = {
        "name": name,
        "description": description.replace("_", " ").capitalize(),
        "created": (today or date.today()).isoformat(),
        "author": author(directory),
    }
    path = directory / f"{name}.sql"
    down_path = directory / f"{name}.down.sql" if down else None
    _write_new(path, UP_TEMPLATE.format(**values))
    if down_path:
        try:
            _write_new(down_path, DOWN_TEMPLATE.format(**values))
        except ConfigurationError:
            path.unlink()
            raise
    return Scaffold(name, path, down_path)


def _write_new(path: Path, text: str) -> None:
    try:
        with path.open("x", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    except FileExistsError:
        raise ConfigurationError(f"{path}: already exists; not overwritten") from None
