"""Static lint of SQL migrations and seeds: our rules (the spec's checklist) plus squawk's.

``lint(targets)`` → :class:`Report`; ``default_targets()`` are the project's files.
Statements come from the runner's own parse of each file; rules live in ``rules_*.py``, one function each.
"""

from .engine import lint
from .registry import RULES
from .report import Finding, Report
from .source import MIGRATION, SEED
from .targets import Target, default_targets, expand

__all__ = ["MIGRATION", "RULES", "SEED", "Finding", "Report", "Target", "default_targets", "expand", "lint"]
