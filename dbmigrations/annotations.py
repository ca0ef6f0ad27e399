"""GitHub Actions workflow commands: a failure shown on its file and line in the pull request.

When ``GITHUB_ACTIONS=true``, the commands print, besides their usual error, one
``::error file=…,line=…,col=…,title=…::message`` line per problem. The runner turns
these into annotations on the diff. Values are escaped as the runner expects
(``%`` ``\\r`` ``\\n`` in the message; also ``:`` and ``,`` in the properties).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

from .discovery import relative_path as discovery_relative_path
from .exceptions import DbMigrationsError, InvalidFiles, MigrationFailed

LEVELS = ("error", "warning", "notice")


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True inside a GitHub Actions job (``GITHUB_ACTIONS=true``), read now."""
    return ((os.environ if environ is None else environ).get("GITHUB_ACTIONS") or "").strip().lower() == "true"


def escape_data(text: str) -> str:
    """Escape a message: ``%`` → ``%25``, CR → ``%0D``, LF → ``%0A``."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value: like a message, plus ``:`` → ``%3A`` and ``,`` → ``%2C``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def relative_path(path: str | os.PathLike, environ: Mapping[str, str] | None = None) -> str:
    """``path`` relative to the repository (``GITHUB_WORKSPACE``, else the current directory) when inside it."""
    environ = os.environ if environ is None else environ
    return discovery_relative_path(path, environ.get("GITHUB_WORKSPACE") or os.getcwd())


def format_annotation(
    path: str | os.PathLike | None,
    line: int | None,
    col: int | None,
    message: str,
    level: str = "error",
    title: str | None = None,
) -> str:
    """One workflow command line, e.g. ``::error file=migrations/002_x.sql,line=3,col=5::…``."""
    if level not in LEVELS:
        raise ValueError(f"annotation level must be one of {', '.join(LEVELS)}, not {level!r}")
    props = []
    if path is not None:
        props.append(f"file={escape_property(relative_path(path))}")
        if line is not None:
            props.append(f"line={int(line)}")
            if col is not None:
                props.append(f"col={int(col)}")
    if title:
        props.append(f"title={escape_property(title)}")
    return f"::{level}{' ' + ','.join(props) if props else ''}::{escape_data(message)}"


def annotate(
    stream: TextIO,
    path: str | os.PathLike | None,
    line: int | None,
    col: int | None,
    message: str,
    level: str = "error",
    title: str | None = None,
) -> None:
    """Write one annotation line to ``stream`` (a command's ``self.stdout``, or any text stream)."""
    stream.write(format_annotation(path, line, col, message, level, title) + "\n")


def for_error(error: DbMigrationsError) -> Iterable[tuple]:
    """``(path, line, col, message, title)`` for each place an error points at (none if it has no file)."""
    if isinstance(error, MigrationFailed):
        f = error.failure
        extra = [f"{label}: {value}" for label, value in (("DETAIL", f.detail), ("HINT", f.hint)) if value]
        if f.note:
            extra.append(f.note)
        code = f" {f.sqlstate}" if f.sqlstate else ""
        message = "\n".join([f"ERROR{code}: {f.message}", *extra])
        yield f.path, f.line, f.column, message, f"SQL failed ({Path(f.path).name})"
    elif isinstance(error, InvalidFiles):
        for p in error.problems:
            yield p.path, p.line, p.column, p.message, f"Invalid SQL file ({Path(p.path).name})"


def annotate_error(stream: TextIO, error: DbMigrationsError) -> int:
    """Write the annotations of ``error`` to ``stream``; return how many were written."""
    count = 0
    for path, line, col, message, title in for_error(error):
        annotate(stream, path, line, col, message, title=title)
        count += 1
    return count


def annotate_drift(stream: TextIO, files, difference) -> None:
    """In GitHub Actions, a warning for a schema ``difference`` on the applied file that first names it."""
    if not enabled():
        return
    from .drift import first_mention

    where = first_mention(files, difference.name)
    annotate(
        stream,
        where and where[0],
        where and where[1],
        None,
        difference.render(),
        level="warning",
        title="schema drift",
    )
