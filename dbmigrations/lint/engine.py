"""Lint a set of SQL files: our rules and squawk's, merged, suppressed, sorted.

Each file is read and parsed once; squawk runs once over all files, at the same
time as our rules. squawk's ``prefer-robust-stmts`` and our idempotency rules can
see the same statement (outside a transaction): squawk's finding is kept, at our
severity, and ours dropped (never two findings for one problem). Our results per file content are
cached between runs (``cache.py``); squawk's are not.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from django.conf import settings

from ..discovery import read_source
from ..exceptions import InvalidFiles
from . import cache as result_cache
from . import rules_data, rules_ddl, rules_file, suppress  # noqa: F401  (register the rules)
from .registry import RULES, Rule
from .report import Finding, Report
from .source import load
from .squawk import Run
from .targets import Target, file_order, name_problems, unique

# squawk rules that check part of ours: reported at our severity (error), and our finding on the
# same statement dropped.
SQUAWK_DUPLICATES = {"prefer-robust-stmts": {"L005", "L006", "L009"}}


class Analysis(NamedTuple):
    """What our rules found in one file, and what the squawk run needs to know; JSON-able for the cache."""

    hits: list  # [rule id, line, column, message, end line]
    readable: bool  # UTF-8: squawk can read it
    parsed: bool  # parsed and runnable: squawk's findings count
    assume: bool  # the runner wraps it in a transaction, but it has no BEGIN of its own
    ignore_file: list  # suppressed rules: the whole file …
    ignore_lines: list  # … and [line, [rules]]


def squawk_errors() -> set[str]:
    """squawk rules reported as errors: ours (``prefer-robust-stmts``) and ``SQL_LINT_SQUAWK_ERRORS``."""
    return set(SQUAWK_DUPLICATES) | set(getattr(settings, "SQL_LINT_SQUAWK_ERRORS", None) or ())


def lint(targets: list[Target], *, squawk: bool = True, pg_version: str | None = None, cache: bool = True) -> Report:
    """Lint ``targets``; ``squawk=False`` runs only our rules (the Django system check does)."""
    targets = unique(targets)
    names = [str(t.path) for t in targets]
    # squawk starts first and works while we read, parse and check; files our runner wraps in a
    # transaction although they have no BEGIN of their own are re-run with --assume-in-transaction below.
    run = Run({False: names}, pg_version) if squawk and targets else None
    named = name_problems(targets)
    store = result_cache.Cache.open() if cache else None
    analyses = [analyse(target, store) for target in targets]
    if store is not None:
        store.save()
    findings, suppressions, skip, assume = [], {}, set(), []
    for target, name, analysis in zip(targets, names, analyses):
        findings += [_finding(target.path, *hit) for hit in analysis.hits]
        findings += [
            _finding(target.path, "L001", p.line or 1, p.column or 1, p.message, p.line or 1)
            for p in named.get(target.path, ())
        ]
        if analysis.ignore_file or analysis.ignore_lines:
            suppressions[name] = suppress.Suppressions(
                set(analysis.ignore_file), {line: set(keys) for line, keys in analysis.ignore_lines}
            )
        if not analysis.parsed or analysis.assume:
            skip.add(name)
        if analysis.assume:
            assume.append(name)
    if run is not None:
        if not all(analysis.readable for analysis in analyses):
            # squawk stops at a file that is not UTF-8: run it again without those
            run.discard()
            run = Run({False: [name for name in names if name not in skip]}, pg_version)
        rerun = Run({True: assume}, pg_version) if assume else None
        paths, errors = dict(zip(names, (t.path for t in targets))), squawk_errors()
        theirs = run.findings(paths, errors, skip) + (rerun.findings(paths, errors, set()) if rerun else [])
        findings = _merge(findings, theirs)
    total = len(findings)
    if suppressions:
        findings = [x for x in findings if x.rule == "L001" or not _suppressed(suppressions, x)]
    findings.sort(key=lambda x: (*_file_order(x.path), x.line, x.column, x.rule))
    return Report(len(targets), findings, total - len(findings), squawk=run is not None)


def _suppressed(suppressions: dict[str, suppress.Suppressions], finding: Finding) -> bool:
    found = suppressions.get(str(finding.path))
    return found is not None and found.covers(finding.line, {finding.rule, finding.name})


def analyse(target: Target, store: result_cache.Cache | None) -> Analysis:
    """Our rules on one file, from the cache when its content was linted before."""
    try:
        source = read_source(target.path)
    except InvalidFiles:
        source = None
    key = result_cache.key(target.kind, target.path, source.checksum) if store is not None and source else None
    cached = store.get(key) if key else None
    if isinstance(cached, list) and len(cached) == len(Analysis._fields):
        return Analysis(*cached)
    f = load(target.path, target.kind, source)
    hits = [
        [rule.id, hit.line, hit.column, hit.message, hit.end_line or hit.line]
        for rule in _rules(f.kind, f.parsed)
        for hit in rule.check(f)
    ]
    found = suppress.of(f)
    analysis = Analysis(
        hits,
        f.source is not None,
        f.parsed,
        f.parsed and f.runs_in_transaction and not f.wrapped,
        sorted(found.whole_file),
        [[line, sorted(keys)] for line, keys in found.lines.items()],
    )
    if key:
        store.put(key, list(analysis))
    return analysis


@functools.cache
def _rules(kind: str, parsed: bool) -> tuple[Rule, ...]:
    """The rules that apply to a file of ``kind``; those reading statements only to a parsed file."""
    return tuple(r for r in RULES.values() if kind in r.kinds and (parsed or not r.needs_statements))


def _finding(path: Path, rule_id: str, line: int, column: int, message: str, end_line: int) -> Finding:
    rule = RULES[rule_id]
    return Finding(path, line, column, rule.id, rule.name, rule.severity, message, rule.hint, end_line=end_line)


def _merge(ours: list[Finding], theirs: list[Finding]) -> list[Finding]:
    """Ours and squawk's, without our finding where a squawk rule in SQUAWK_DUPLICATES reports the statement."""
    owned = defaultdict(list)
    for x in theirs:
        if x.rule in SQUAWK_DUPLICATES:
            owned[x.path].append((x.line, SQUAWK_DUPLICATES[x.rule]))
    kept = [
        x
        for x in ours
        if not any(
            x.rule in rules and x.line <= line <= (x.end_line or x.line) for line, rules in owned.get(x.path, ())
        )
    ]
    return kept + theirs


_file_order = functools.cache(file_order)
