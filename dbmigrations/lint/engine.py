"""Lint a set of SQL files: our rules and squawk's, merged, suppressed, sorted.

Each file is read and parsed once; squawk runs once over all files, at the same
time as our rules. squawk's ``prefer-robust-stmts`` and our idempotency rules can
see the same statement (outside a transaction): squawk's finding is kept, at our
severity, and ours dropped (DECISIONS.md).
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from .. import conf
from ..discovery import NAME_PATTERN, NAME_RULE
from ..exceptions import ConfigurationError, Problem
from . import rules_data, rules_ddl, rules_file, suppress  # noqa: F401  (register the rules)
from .registry import ERROR, RULES, WARNING
from .report import Finding, Report
from .source import DOWN, MIGRATION, SEED, LintFile, load
from .squawk import Run

# squawk rules that check part of ours: reported at our severity (error), and our finding on the
# same statement dropped.
SQUAWK_DUPLICATES = {"prefer-robust-stmts": {"L005", "L006", "L009"}}


@dataclass(frozen=True)
class Target:
    path: Path
    kind: str


def default_targets() -> list[Target]:
    """The project's migrations (with down files) and every seed environment."""
    return expand([conf.migrations_dir()], MIGRATION) + expand([conf.seeds_dir()], SEED)


def expand(paths, kind: str, *, must_exist: bool = False) -> list[Target]:
    """Files under ``paths`` (seed directories recursively); a missing path is an error if ``must_exist``."""
    targets = []
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(path.rglob("*.sql") if kind == SEED else path.glob("*.sql"))
        elif path.is_file():
            files = [path]
        elif must_exist:
            raise ConfigurationError(f"{path}: no such file or directory")
        else:
            files = []
        targets += [Target(p, DOWN if kind == MIGRATION and p.name.endswith(".down.sql") else kind) for p in files]
    return targets


def squawk_errors() -> set[str]:
    """squawk rules reported as errors: ours (``prefer-robust-stmts``) and ``SQL_LINT_SQUAWK_ERRORS``."""
    return set(SQUAWK_DUPLICATES) | set(getattr(settings, "SQL_LINT_SQUAWK_ERRORS", None) or ())


def lint(targets: list[Target], *, squawk: bool = True, pg_version: str | None = None) -> Report:
    """Lint ``targets``; ``squawk=False`` runs only our rules (the Django system check does)."""
    targets = _unique(targets)
    named = _name_problems(targets)
    # squawk starts first and works while we parse; files our runner wraps in a transaction
    # although they have no BEGIN of their own are re-run with --assume-in-transaction below.
    run = Run({False: [str(t.path) for t in targets]}, pg_version) if squawk and targets else None
    findings, suppressions, unparsed, assume, unreadable = [], {}, set(), [], False
    for target in targets:
        f = load(target.path, target.kind)
        f.problems.extend(named.get(target.path, ()))
        findings.extend(_apply_rules(f))
        suppressions[str(f.path)] = suppress.of(f)
        unreadable |= f.source is None
        if not f.parsed:
            unparsed.add(str(f.path))
        elif f.runs_in_transaction and not f.wrapped:
            assume.append(str(f.path))
    if run is not None:
        if unreadable:  # squawk stops at a file that is not UTF-8: run it again without those
            run.discard()
            run = Run({False: [str(t.path) for t in targets if str(t.path) not in unparsed]}, pg_version)
        rerun = Run({True: assume}, pg_version) if assume else None
        skip = unparsed | set(assume)
        violations = [v for v in run.violations() if v.file not in skip]
        paths = {str(t.path): t.path for t in targets}
        findings = _merge(findings, violations + (rerun.violations() if rerun else []), paths)
    total = len(findings)
    findings = [x for x in findings if x.rule == "L001" or not suppressions[str(x.path)].covers(x.line, {x.rule, x.name})]
    findings.sort(key=_order)
    return Report(len(targets), findings, total - len(findings), squawk=run is not None)


def _unique(targets: list[Target]) -> list[Target]:
    seen, out = set(), []
    for target in targets:
        key = os.path.abspath(target.path)
        if key not in seen:
            seen.add(key)
            out.append(target)
    return out


def _apply_rules(f: LintFile):
    for rule in RULES.values():
        if f.kind in rule.kinds and (f.parsed or not rule.needs_statements):
            for hit in rule.check(f):
                yield Finding(f.path, hit.line, hit.column, rule.id, rule.name, rule.severity, hit.message,
                              rule.hint, end_line=hit.end_line or hit.line)


def _merge(ours: list[Finding], violations, paths: dict[str, Path]) -> list[Finding]:
    theirs, owned, errors = [], defaultdict(list), squawk_errors()
    for v in violations:
        severity = ERROR if v.rule in errors else WARNING
        theirs.append(Finding(paths.get(v.file) or Path(v.file), v.line, v.column, v.rule, v.rule, severity, v.message,
                              v.help, "squawk", v.end_line))
        if v.rule in SQUAWK_DUPLICATES:
            owned[v.file].append((v.line, SQUAWK_DUPLICATES[v.rule]))
    kept = [x for x in ours if not any(x.rule in rules and x.line <= line <= (x.end_line or x.line)
                                       for line, rules in owned.get(str(x.path), ()))]
    return kept + theirs


def _name_problems(targets: list[Target]) -> dict[Path, list[Problem]]:
    """What discovery refuses about names: pattern, duplicate versions, a down file without its up file."""
    problems: dict[Path, list[Problem]] = defaultdict(list)
    by_directory: dict[Path, list[Target]] = defaultdict(list)
    for t in targets:
        by_directory[t.path.parent].append(t)
    for siblings in by_directory.values():
        versions, ups = defaultdict(list), set()
        for t in siblings:
            match = NAME_PATTERN.match(t.path.name)
            if not match:
                problems[t.path].append(Problem(str(t.path), f"invalid file name: {NAME_RULE}"))
            elif match["down"] and t.kind == SEED:
                problems[t.path].append(Problem(str(t.path), "down files belong beside migrations, not here"))
            elif not match["down"]:
                versions[int(match["version"])].append(t)
                ups.add(t.path.name.removesuffix(".sql"))
        for number, same in versions.items():
            if len(same) > 1:
                listed = ", ".join(t.path.name for t in same)
                for t in same:
                    problems[t.path].append(Problem(str(t.path), f"duplicate version {number}: {listed}"))
        for t in siblings:
            stem = t.path.name.removesuffix(".down.sql")
            if t.kind == DOWN and NAME_PATTERN.match(t.path.name) and stem not in ups:
                problems[t.path].append(Problem(str(t.path), f"down file without its up file ({stem}.sql)"))
    return problems


def _order(finding: Finding):
    return (*_file_order(finding.path), finding.line, finding.column, finding.rule)


@lru_cache(maxsize=None)
def _file_order(path: Path):
    """Files in number order, not string order ("1000" after "999")."""
    match = NAME_PATTERN.match(path.name)
    return str(path.parent), int(match["version"]) if match else float("inf"), path.name
