"""``manage.py check`` shows the lint's errors (``dbmigrations.L0xx``).

Our rules only: squawk is not run for a system check. L001 (a file the runner
refuses) is left out: the file checks E001…E009 of ``dbmigrations.checks``
already report those problems.
"""
from __future__ import annotations

from django.core.checks import Error, register

from ..checks import TAG, display_path
from ..exceptions import ConfigurationError
from .engine import lint
from .targets import default_targets


def lint_check_errors() -> list[Error]:
    """Every lint error of the project's migrations and seeds, as ``dbmigrations.L0xx`` check errors."""
    try:
        targets = default_targets()
    except ConfigurationError:
        return []  # a missing migrations folder: dbmigrations.checks reports it
    report = lint(targets, squawk=False)
    return [Error(f.message, hint=f.hint, obj=f"{display_path(f.path)}:{f.line}:{f.column}", id=f"dbmigrations.{f.rule}")
            for f in report.errors if f.rule != "L001"]


@register(TAG)
def check_sql_lint(app_configs=None, **kwargs):
    """Lint errors of the SQL files (no database needed)."""
    if app_configs is not None and not any(c.name == "dbmigrations" for c in app_configs):
        return []
    return lint_check_errors()
