"""``manage.py check`` shows the lint's findings as Warnings, ``dbmigrations.W1NN``.

A style finding never stops ``runserver``, ``migrate`` or ``createsuperuser``:
Django's id convention puts the level in the letter, and rule ``L0NN`` is
reported as ``W1NN`` (L005 → W105), a stable mapping. Our rules only: squawk is
not run for a system check. L001 (a file the runner refuses) is left out: the
file checks E001…E010 of ``dbmigrations.checks`` report those problems as Errors.
"""

from __future__ import annotations

from django.core.checks import Warning

from ..check_cache import reused_while_unchanged
from ..checks import display_path
from ..exceptions import ConfigurationError
from .engine import lint
from .targets import default_targets


def check_id(rule: str) -> str:
    """The system-check id of lint rule ``rule``: ``L005`` → ``dbmigrations.W105``."""
    return f"dbmigrations.W{100 + int(rule[1:]):03d}"


def lint_check_warnings() -> list[Warning]:
    """Every finding of our lint rules in the project's migrations and seeds, as check Warnings."""
    try:
        targets = default_targets()
    except ConfigurationError:
        return []  # a missing migrations folder: dbmigrations.checks reports it
    report = lint(targets, squawk=False)
    return [
        Warning(f.message, hint=f.hint, obj=f"{display_path(f.path)}:{f.line}:{f.column}", id=check_id(f.rule))
        for f in report.findings
        if f.rule != "L001"
    ]


_cached_lint_check_warnings = reused_while_unchanged(lint_check_warnings)


def check_sql_lint(app_configs=None, **kwargs):
    """Lint findings of the SQL files (no database needed), reused while the files are unchanged.

    Registered by :func:`dbmigrations.checks.check_sql_lint`, which imports this module only when the
    checks run: a command that runs no checks never loads the lint.
    """
    if app_configs is not None and not any(c.name == "dbmigrations" for c in app_configs):
        return []
    return _cached_lint_check_warnings()
