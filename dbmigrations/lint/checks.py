"""``manage.py check`` shows the lint's errors (ours only: squawk is not run for a system check)."""
from __future__ import annotations

from django.core.checks import Error, register

from .engine import default_targets, lint
from .report import display_path


def lint_check_errors() -> list[Error]:
    """Every lint error of the project's migrations and seeds, as ``dbmigrations.L0xx`` check errors."""
    report = lint(default_targets(), squawk=False)
    return [Error(f"{display_path(f.path)}:{f.line}:{f.column}: {f.message}", hint=f.hint,
                  id=f"dbmigrations.{f.rule}") for f in report.errors]


@register()
def sql_lint_check(app_configs=None, **kwargs):
    if app_configs is not None and not any(c.name == "dbmigrations" for c in app_configs):
        return []
    return lint_check_errors()
