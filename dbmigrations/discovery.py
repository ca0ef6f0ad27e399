"""Finding numbered SQL files on disk and validating them before anything runs.

``NNN_snake_case.sql`` (3+ digits), an optional ``NNN_snake_case.down.sql`` beside
it. Every problem is collected so a human fixes them all in one pass.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .exceptions import InvalidFiles, Problem
from .statements import Lines, Script, ScriptError, copy_from_stdin_before, parse_script

# File *names*, not SQL: a regex is the right tool here.
NAME_PATTERN = re.compile(r"^(?P<version>\d{3,})_(?P<slug>[a-z0-9]+(?:_[a-z0-9]+)*)(?P<down>\.down)?\.sql$")
NAME_RULE = "expected NNN_snake_case.sql (3+ digits, lowercase letters, digits and underscores)"
EXTENSION_RULE = "the extension must be lower-case .sql"
COPY_FROM_STDIN = "COPY … FROM STDIN needs psql; use INSERT statements"
HEADER_LINES = 30


@dataclass(frozen=True)
class SqlSource:
    """A decoded SQL file: normalized text, checksum and parsed statements."""

    path: Path
    text: str
    checksum: str

    @cached_property
    def script(self) -> Script:
        return parse_script(self.text)

    @property
    def parsed(self) -> bool:
        """Whether :attr:`script` holds a parse now (kept until :meth:`release`)."""
        return "script" in self.__dict__

    def release(self) -> None:
        """Forget the parsed statements; the next use of :attr:`script` parses the text again.

        A run over thousands of files keeps one parse tree at a time this way, not one per file.
        """
        self.__dict__.pop("script", None)

    def header(self, key: str) -> str | None:
        """The value of a ``-- Key: value`` header comment near the top, if any."""
        prefix = f"-- {key.lower()}:"
        for line in self.text.splitlines()[:HEADER_LINES]:
            stripped = line.strip()
            if stripped.lower().startswith(prefix):
                return stripped[len(prefix) :].strip() or None
        return None


@dataclass(frozen=True)
class SqlFile:
    """One numbered SQL file (migration or seed) and its optional down file.

    The down file is read when first used (a rollback, the checks, verify): applying never
    runs one, so a run over a long history opens half the files.
    """

    version: str
    slug: str
    source: SqlSource
    #: The down file's name (``NNN_name.down.sql``, in the same folder), if there is one.
    down_name: str | None = None

    @property
    def down_path(self) -> Path | None:
        """Where the down file is, if there is one (nothing is read)."""
        return None if self.down_name is None else self.source.path.with_name(self.down_name)

    @cached_property
    def down(self) -> SqlSource | None:
        """The down file, read on first use; :class:`InvalidFiles` when it is not readable UTF-8 text."""
        if self.down_name is None:
            return None
        problems: list[Problem] = []
        source = _load(self.down_path, problems, parse=False)
        if source is None:
            raise InvalidFiles(problems)
        return source

    @property
    def number(self) -> int:
        return int(self.version)

    @property
    def name(self) -> str:
        return f"{self.version}_{self.slug}"

    @property
    def path(self) -> Path:
        return self.source.path

    @property
    def checksum(self) -> str:
        return self.source.checksum

    @property
    def description(self) -> str:
        return self.source.header("Description") or self.name


def relative_path(path: str | Path, root: str | Path) -> str:
    """``path`` relative to ``root`` (POSIX separators) when inside it, else as given."""
    try:
        absolute = Path(path) if Path(path).is_absolute() else Path.cwd() / path
        return absolute.resolve().relative_to(Path(root).resolve()).as_posix()
    except (OSError, ValueError):
        return str(path)


def checksum(text: str) -> str:
    """SHA-256 of normalized text (no BOM, LF line ends), so a Windows checkout matches."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_source(path: Path) -> SqlSource:
    """Read and normalize a SQL file; raises :class:`InvalidFiles` if it is not UTF-8."""
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        message = f"not valid UTF-8 (byte 0x{raw[error.start]:02x})"
        raise InvalidFiles([Problem(str(path), message, line, kind="encoding")]) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    problem = _unsendable(path, text)
    if problem:
        raise InvalidFiles([problem])
    return SqlSource(path, text, checksum(text))


def _read_bytes(path: Path) -> bytes:
    """The file's bytes: open, read until the end, close (``Path.read_bytes`` also sets up a buffered reader,
    and asks for the size and position: about 1.5× the time on a small file)."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        chunks = [os.read(descriptor, 1 << 16)]
        while chunks[-1]:
            chunks.append(os.read(descriptor, 1 << 16))
    finally:
        os.close(descriptor)
    return b"".join(chunks)


def _unsendable(path: Path, text: str) -> Problem | None:
    """A character that would make the server, or our line numbers, see another file than the one on disk."""
    nul = text.find("\x00")
    if nul >= 0:  # a query string ends at its first NUL: the rest of the file would silently never run
        message = (
            "contains a NUL byte (0x00): PostgreSQL would stop reading the file there and skip the rest; "
            "remove it (was the file saved as UTF-16?)"
        )
        return Problem(str(path), message, *_line_column(text, nul), kind="encoding")
    carriage_return = text.find("\r")
    if carriage_return >= 0:
        message = (
            "carriage return (CR) without a line feed: old Mac line endings put the whole file on one line "
            "for the parser and every error on line 1; save the file with LF (or CRLF) line endings"
        )
        return Problem(str(path), message, *_line_column(text, carriage_return), kind="encoding")
    return None


def _line_column(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def validate_source(source: SqlSource) -> list[Problem]:
    """Parse ``source``; return its problems (syntax, transaction control, emptiness)."""
    try:
        script = source.script
    except ScriptError as error:
        copy = copy_from_stdin_before(source.text, error.offset)
        if copy is not None:  # its data lines are what the parser choked on
            return [
                _problem_at(source, f"{COPY_FROM_STDIN} (the data lines after it are not SQL)", copy, kind="syntax")
            ]
        return [_problem_at(source, error.message, error.offset, kind="syntax")]
    if not script.statements:
        message = "empty file: no SQL statement to run (a bare BEGIN;/COMMIT; counts as empty)"
        return [Problem(str(source.path), message, kind="empty")]
    problems = []
    for statement in script.statements:
        if statement.is_copy_from_stdin:
            problems.append(_problem_at(source, COPY_FROM_STDIN, statement.start, kind="syntax"))
    return problems


def _problem_at(source: SqlSource, message: str, offset: int | None, *, kind: str) -> Problem:
    if offset is None:
        return Problem(str(source.path), message, kind=kind)
    line, column = Lines(source.text).position(offset)
    return Problem(str(source.path), message, line, column, kind=kind)


def discover(directory: Path, *, allow_down: bool = True, parse: bool = True) -> list[SqlFile]:
    """All numbered SQL files in ``directory``, sorted by number, validated.

    Raises :class:`InvalidFiles` listing every problem. A missing directory holds
    no files. Non-``.sql`` files (README.md, .gitkeep) are ignored. With
    ``parse=False`` the SQL is parsed later, by :func:`validate_scripts`, and only
    for the files that will run (a no-op deploy over 1000 files skips 1000 parses).
    """
    files, problems = scan(directory, allow_down=allow_down, parse=parse)
    if problems:
        if not parse:  # refusing anyway: list the SQL problems too, all at once
            for file in files:
                problems.extend(validate_source(file.source))
        raise InvalidFiles(problems)
    return files


def scan(directory: Path, *, allow_down: bool = True, parse: bool = True) -> tuple[list[SqlFile], list[Problem]]:
    """Like :func:`discover`, but returns the valid files and the problems of the others instead of raising
    (``sql_migration_status`` and the admin show an invalid file as a row of its own).

    A folder that cannot be listed still raises :class:`InvalidFiles`.
    """
    directory = Path(directory)
    if not directory.exists():
        return [], []
    try:
        # os.scandir, sorted by name: a tenth of the time of sorting Path objects, and is_dir() needs no stat.
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as error:  # a file where the folder should be, no permission
        raise InvalidFiles([Problem(str(directory), f"cannot list the folder: {error.strerror}")]) from None
    problems: list[Problem] = []
    ups: dict[int, list[tuple[str, str, Path]]] = {}
    downs: dict[tuple[int, str], str] = {}  # names: a down file's Path is built only when it is used
    for entry in entries:
        name = entry.name
        if not name.lower().endswith(".sql"):
            continue
        if entry.is_dir():  # a dangling symlink is not skipped: reading it reports the problem
            problems.append(Problem(str(directory / name), "a folder, not a SQL file"))
            continue
        match = NAME_PATTERN.match(name)
        if not match:
            rule = NAME_RULE if name.endswith(".sql") else f"{EXTENSION_RULE} ({name[:-4]}.sql)"
            problems.append(Problem(str(directory / name), f"invalid file name: {rule}", kind="name"))
            continue
        version, slug = match["version"], match["slug"]
        if match["down"]:
            if not allow_down:
                problems.append(
                    Problem(
                        str(directory / name), "down files belong beside migrations, not here", kind="misplaced_down"
                    )
                )
            downs[(int(version), slug)] = name
        else:
            ups.setdefault(int(version), []).append((version, slug, directory / name))

    files: list[SqlFile] = []
    for number in sorted(ups):
        entries = ups[number]
        if len(entries) > 1:
            names = ", ".join(p.name for _, _, p in entries)
            problems.extend(
                Problem(str(p), f"duplicate version {number}: {names}", kind="duplicate") for _, _, p in entries
            )
            for _, slug, _ in entries:
                downs.pop((number, slug), None)  # its up file exists: the duplicate is the problem
            continue
        version, slug, path = entries[0]
        source = _load(path, problems, parse)
        down_name = downs.pop((number, slug), None)
        down = _load(directory / down_name, problems, parse) if down_name and parse else None  # else when used
        if source is not None:
            file = SqlFile(version, slug, source, down_name)
            if down is not None:
                file.__dict__["down"] = down  # already read and validated: the cache of SqlFile.down
            files.append(file)
    for _key, name in sorted(downs.items()):
        problems.append(
            Problem(
                str(directory / name),
                f"down file without its up file ({name.removesuffix('.down.sql')}.sql)",
                kind="orphan_down",
            )
        )
    return files, problems


def validate_scripts(files: list[SqlFile], *, downs: bool = False) -> None:
    """Parse the given files (and their down files); raise :class:`InvalidFiles` listing every problem."""
    problems: list[Problem] = []
    for file in files:
        problems.extend(validate_source(file.source))
        if downs and file.down:
            problems.extend(validate_source(file.down))
    if problems:
        raise InvalidFiles(problems)


def _load(path: Path, problems: list[Problem], parse: bool = True) -> SqlSource | None:
    try:
        source = read_source(path)
    except InvalidFiles as error:
        problems.extend(error.problems)
        return None
    except OSError as error:  # unreadable, a dangling symlink, deleted meanwhile
        problems.append(Problem(str(path), f"cannot read the file: {error.strerror}"))
        return None
    if not parse:
        return source
    found = validate_source(source)
    problems.extend(found)
    return None if found else source
