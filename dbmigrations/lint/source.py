"""One SQL file as the lint sees it: the runner's parsed file, DO blocks opened up, positions.

Each file is read with the runner's own reader (``discovery.read_source``: UTF-8,
no BOM, LF) and parsed once, by the runner's own parser (``statements.parse_script``):
the lint sees the statements, wrapper and non-transactional statements the runner
would run. A file the runner would refuse gets its problems from
``discovery.validate_source``, word for word what ``apply`` would say.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..discovery import SqlSource, read_source, validate_source
from ..exceptions import InvalidFiles, Problem
from ..statements import Lines, Script
from . import plpgsql
from .nodes import Stmt

MIGRATION, DOWN, SEED = "migration", "down", "seed"


@dataclass
class LintFile:
    """A file: ``statements`` in file order, DO-block statements included, when the runner would run it."""

    path: Path
    kind: str
    text: str = ""
    source: SqlSource | None = None
    script: Script | None = None  # parsed and runnable: the rules about content apply
    statements: list[Stmt] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # the runner refuses the file
    do_problems: list[Problem] = field(default_factory=list)  # a DO block's PL/pgSQL does not parse

    @property
    def parsed(self) -> bool:
        return self.script is not None

    @property
    def wrapped(self) -> bool:
        return self.script is not None and self.script.wrapped

    @property
    def runs_in_transaction(self) -> bool:
        return self.script is None or self.script.runs_in_transaction

    @cached_property
    def lines(self) -> Lines:
        return self.script.lines if self.script is not None else Lines(self.text)

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        return self.lines.position(offset)

    def line_offset(self, line: int) -> int:
        return self.lines.offset(line)


def load(path: Path, kind: str, source: SqlSource | None = None) -> LintFile:
    """Parse ``path`` (read it unless ``source`` is given); what the runner would refuse goes to ``.problems``."""
    lint_file = LintFile(path if isinstance(path, Path) else Path(path), kind)
    if source is None:
        try:
            source = read_source(lint_file.path)
        except InvalidFiles as error:
            lint_file.problems.extend(error.problems)
            return lint_file
    lint_file.text, lint_file.source = source.text, source
    lint_file.problems.extend(validate_source(source))
    if lint_file.problems:
        return lint_file
    lint_file.script = source.script
    for statement in source.script.statements:
        top = Stmt(statement.kind, statement.fields, statement.start, statement.end)
        lint_file.statements.append(top)
        if statement.kind == "DoStmt":
            try:
                lint_file.statements.extend(plpgsql.expand(lint_file, top))
            except plpgsql.BodyError as error:
                line, column = lint_file.position(statement.start)
                lint_file.do_problems.append(Problem(str(path), f"DO block: {error}", line, column))
    return lint_file
