"""Lint findings and the report the command renders (text like ruff, or JSON)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from ..discovery import relative_path
from .registry import ERROR, WARNING


class Finding(NamedTuple):
    """One finding: where (1-based), which rule (``L005`` or a squawk rule name), how bad, why."""

    path: Path
    line: int
    column: int
    rule: str
    name: str
    severity: str
    message: str
    hint: str | None = None
    source: str = "dbmigrations"  # or "squawk"
    end_line: int | None = None

    def render(self) -> str:
        """``path:line:col: RULE message``."""
        return f"{display_path(self.path)}:{self.line}:{self.column}: {self.rule} {self.message}"

    def as_dict(self) -> dict:
        return {
            "path": display_path(self.path),
            "line": self.line,
            "column": self.column,
            "rule": self.rule,
            "name": self.name,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "source": self.source,
            "end_line": self.end_line or self.line,
        }


@dataclass
class Report:
    """Every unsuppressed finding of a lint run, sorted by file and position."""

    files: int
    findings: list[Finding] = field(default_factory=list)
    suppressed: int = 0
    squawk: bool = False

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def summary(self) -> dict:
        return {
            "files": self.files,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "suppressed": self.suppressed,
            "squawk": self.squawk,
        }

    def summary_text(self) -> str:
        """``12 files: 0 errors, 3 warnings (82 suppressed)``."""
        return (
            f"{plural(self.files, 'file')}: {plural(len(self.errors), 'error')}, "
            f"{plural(len(self.warnings), 'warning')} ({self.suppressed} suppressed)"
            + ("" if self.squawk else ", squawk not run")
        )

    def as_dict(self) -> dict:
        return {"findings": [f.as_dict() for f in self.findings], "summary": self.summary()}

    def to_json(self) -> str:
        """:meth:`as_dict` as JSON text, one finding per line.

        Encoding finding by finding uses the json module's C encoder; ``indent=`` would
        fall back to its pure-Python one, which costs more than linting on large reports.
        """
        findings = ",\n".join(f"    {json.dumps(f.as_dict())}" for f in self.findings)
        findings = f"[\n{findings}\n  ]" if findings else "[]"
        return f'{{\n  "findings": {findings},\n  "summary": {json.dumps(self.summary())}\n}}'


def display_path(path: Path) -> str:
    """Relative to the current directory when inside it (like ruff), else as given."""
    return _display(path, os.getcwd())


@lru_cache(maxsize=4096)  # a report names each file once per finding: thousands of times
def _display(path: Path, cwd: str) -> str:
    folder = _relative(os.path.dirname(path) or ".", cwd)
    return os.path.basename(path) if folder == "." else f"{folder}/{os.path.basename(path)}"


# Resolving a path (symlinks: system calls) once per folder is enough.
_relative = lru_cache(maxsize=256)(relative_path)


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
