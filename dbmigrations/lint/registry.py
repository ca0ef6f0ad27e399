"""The rule registry: a stable id, a name, a severity, a fix hint and one check function each."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from .source import DOWN, MIGRATION, SEED, LintFile, Stmt

ERROR, WARNING = "error", "warning"
ALL_KINDS = frozenset({MIGRATION, DOWN, SEED})
MIGRATION_KINDS = frozenset({MIGRATION, DOWN})


class Hit(NamedTuple):
    """One place a rule fires: 1-based line and column, a one-line message."""

    line: int
    column: int
    message: str
    end_line: int | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: str
    hint: str
    kinds: frozenset
    check: Callable[[LintFile], Iterable[Hit]]
    needs_statements: bool = True


RULES: dict[str, Rule] = {}


def rule(id: str, name: str, severity: str, hint: str, *, kinds=ALL_KINDS, needs_statements: bool = True):
    """Register the decorated ``check(lint_file) -> Iterable[Hit]`` as rule ``id``."""

    def register(check):
        RULES[id] = Rule(id, name, severity, hint, frozenset(kinds), check, needs_statements)
        return check

    return register


def resolve(token: str) -> str | None:
    """A rule id (``L005``) or name (``non-idempotent-create``) → the id; None if neither."""
    upper = token.upper()
    if upper in RULES:
        return upper
    return next((r.id for r in RULES.values() if r.name == token.lower()), None)


def at(lint_file: LintFile, statement: Stmt, message: str) -> Hit:
    """A hit at the statement's first token, spanning its lines."""
    line, column = lint_file.position(statement.start)
    end_line, _ = lint_file.position(max(statement.start, statement.end - 1))
    return Hit(line, column, message, end_line)
