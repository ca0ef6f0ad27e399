"""The loader: migration and seed files on disk (and the ledger) → the migration set and each version's state.

Every command, the system checks, the admin, verify, lint and seeds get their
files here, so the folder rules live once: a migrations folder that is missing or
is not a folder is refused (exit 2) with the absolute path that was tried, for
every command alike — a typo in ``SQL_MIGRATIONS_DIR`` must never turn a deploy or
a CI gate into a green no-op.

Parse policy: the names of all files, and the encodings and checksums of the up
files, are always checked; the SQL is parsed only where the caller needs it
(``parse=True``, or later with :func:`discovery.validate_scripts` for just the files
that will run). A down file is read when it is used (``SqlFile.down``: a rollback,
``parse=True``). So a run with nothing to do reads each up file once and parses
nothing: PostgreSQL's parser (pglast) is not even imported.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import conf, ledger, plan
from .discovery import SqlFile, discover, scan, validate_source
from .exceptions import ConfigurationError, InvalidFiles, Problem
from .ledger import LedgerRow
from .resume import Done
from .session import Session

__all__ = [
    "checked_states",
    "development_seeds_dir",
    "migration_files",
    "migration_states",
    "migrations_dir",
    "scan_migrations",
    "seed_files",
    "seeds_dir",
]


def folder(path: str | os.PathLike, *, setting: str, what: str) -> Path:
    """``path`` as an absolute path to an existing folder; :class:`ConfigurationError` (exit 2) otherwise."""
    absolute = Path(os.path.abspath(path))
    if not absolute.exists():
        raise ConfigurationError(f"the {what} folder {absolute} does not exist ({setting})")
    if not absolute.is_dir():
        raise ConfigurationError(f"the {what} folder {absolute} cannot be used: Not a directory ({setting})")
    return absolute


def migrations_dir(directory: str | os.PathLike | None = None) -> Path:
    """The migrations folder (``directory``, else the ``SQL_MIGRATIONS_DIR`` setting), checked."""
    return folder(
        directory if directory is not None else conf.migrations_dir(), setting="SQL_MIGRATIONS_DIR", what="migrations"
    )


def seeds_dir(directory: str | os.PathLike | None = None) -> Path:
    """The seeds folder (``directory``, else the ``SQL_SEEDS_DIR`` setting) as an absolute path.

    Unlike migrations, seeds are optional: a missing folder holds no seeds (``seed_dev``
    says so, naming it); a path that is not a folder is refused.
    """
    path = Path(os.path.abspath(directory if directory is not None else conf.seeds_dir()))
    return folder(path, setting="SQL_SEEDS_DIR", what="seeds") if path.exists() else path


def development_seeds_dir() -> Path:
    """``<SQL_SEEDS_DIR>/development``: the only seeds ever run. It may be absent (no seeds)."""
    return seeds_dir() / "development"


def migration_files(directory: str | os.PathLike | None = None, *, parse: bool = False) -> list[SqlFile]:
    """The migrations (with their down files), sorted by number; every name problem raises
    :class:`InvalidFiles`. With ``parse=True`` every up and down file's SQL is validated too."""
    return discover(migrations_dir(directory), parse=parse)


def scan_migrations(directory: str | os.PathLike | None = None) -> tuple[list[SqlFile], list[Problem]]:
    """The valid migrations and the problems of the invalid ones (names, encodings), without raising for them:
    for the views that show an invalid file as a row of its own. The folder itself must exist."""
    return scan(migrations_dir(directory), parse=False)


def seed_files(directory: str | os.PathLike | None = None) -> list[SqlFile]:
    """Development seeds in numeric order, validated like migrations (no down files).

    A seed must run in one transaction: a file with CONCURRENTLY or VACUUM is refused.
    """
    directory = Path(directory) if directory is not None else development_seeds_dir()
    if not directory.exists():
        return []
    files = discover(folder(directory, setting="SQL_SEEDS_DIR", what="seeds"), allow_down=False)
    problems = []
    for file in files:
        script = file.source.script
        for statement in script.non_transactional:
            line, column = script.position(statement.start)
            problems.append(
                Problem(
                    str(file.path),
                    f"{statement.non_transactional_reason} cannot run in a "
                    "transaction; each seed file runs in one transaction",
                    line,
                    column,
                )
            )
    if problems:
        raise InvalidFiles(problems)
    return files


def migration_states(session: Session, files: list[SqlFile]) -> list[plan.Entry]:
    """Each version's state (applied, pending, partial, modified, replaced, missing) against the ledger.

    Reads only: the ledger is neither created nor altered.
    """
    rows, progress, _complete = ledger.read_all(session)
    return plan.status(files, rows, progress=progress)


def checked_states(
    files: list[SqlFile], problems: list[Problem], rows: list[LedgerRow], *, progress: list[Done] = ()
) -> list[plan.Entry]:
    """Each version's state, an invalid file as INVALID (from ``problems``, and the SQL of every file not
    in the ledger: what ``apply_sql_migrations`` would parse and refuse). Applied files are not parsed.
    ``progress``: the statements that ran of files that stopped part-way (PARTIAL)."""
    recorded = {row.number for row in rows}
    problems, valid = list(problems), []
    for file in files:
        found = [] if file.number in recorded else validate_source(file.source)
        problems.extend(found)
        if not found:
            valid.append(file)
    return plan.status(valid, rows, problems, progress=progress)
