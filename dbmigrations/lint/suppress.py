"""Suppression comments: ``-- lint: ignore RULE[, RULE…] -- reason`` and ``-- lint: ignore-file …``.

``ignore`` covers findings on its own line and the next; ``ignore-file`` the whole
file. RULE is one of ours (``L005`` or ``non-idempotent-create``) or a squawk rule
name (``require-lock-timeout``). Comments come from PostgreSQL's own scanner,
inside dollar-quoted bodies too, so a ``-- lint:`` inside a string is not one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..statements import ScriptError, tokens
from .registry import WARNING, Hit, resolve, rule
from .source import LintFile

DIRECTIVES = ("ignore", "ignore-file")


@dataclass
class Suppressions:
    """What one file's comments suppress, and the comments that are malformed."""

    whole_file: set[str] = field(default_factory=set)
    lines: dict[int, set[str]] = field(default_factory=dict)
    problems: list[Hit] = field(default_factory=list)

    def covers(self, line: int, keys: set[str]) -> bool:
        near = self.lines.get(line, set()) | self.lines.get(line - 1, set())
        return bool(keys & (self.whole_file | near))


def of(f: LintFile) -> Suppressions:
    """The file's suppressions (computed once per file)."""
    cached = f.__dict__.get("_suppressions")
    if cached is None:
        cached = f.__dict__["_suppressions"] = _parse(f)
    return cached


def _parse(f: LintFile) -> Suppressions:
    found = Suppressions()
    if "lint:" not in f.text:
        return found
    for offset, comment in _comments(f.text, 0):
        body = comment[2:-2] if comment.startswith("/*") else comment[2:]
        body = body.strip()
        if not body.lower().startswith("lint:"):
            continue
        line, _ = f.position(offset)
        directive, _, rest = body[5:].strip().partition(" ")
        if directive not in DIRECTIVES:
            found.problems.append(Hit(line, 1, f"unknown lint directive `{directive}` (use ignore or ignore-file)"))
            continue
        listed, separator, reason = rest.partition("--")
        keys, unknown = set(), []
        for token in listed.replace(",", " ").split():
            key = resolve(token) or (token if _looks_like_squawk_rule(token) else None)
            keys.add(key) if key else unknown.append(f"`{token}`")
        if unknown:
            found.problems.append(
                Hit(line, 1, f"{', '.join(unknown)}: not a rule id or name; put the reason after ` -- `")
            )
        elif not keys:
            found.problems.append(Hit(line, 1, f"`lint: {directive}` names no rule"))
        elif not reason.strip():
            found.problems.append(Hit(line, 1, f"`lint: {directive} {' '.join(sorted(keys))}` gives no reason"))
        if directive == "ignore-file":
            found.whole_file |= keys
        else:
            last = line + comment.count("\n")
            for number in {line, last}:
                found.lines.setdefault(number, set()).update(keys)
    return found


def _looks_like_squawk_rule(token: str) -> bool:
    return "-" in token and all(c.islower() or c.isdigit() or c == "-" for c in token)


def _comments(text: str, base: int):
    """(offset, text) of every comment, descending into dollar-quoted bodies (DO, functions)."""
    try:
        found = tokens(text)
    except ScriptError:
        return
    for start, end, name in found:
        chunk = text[start : end + 1]
        if name in ("SQL_COMMENT", "C_COMMENT"):
            yield base + start, chunk
        elif name == "SCONST" and chunk.startswith("$"):
            close = chunk.find("$", 1) + 1
            if 0 < close <= len(chunk) // 2:
                yield from _comments(chunk[close:-close], base + start + close)


@rule(
    "L013",
    "bad-suppression",
    WARNING,
    "write `-- lint: ignore RULE[, RULE…] -- why it is safe`",
    needs_statements=False,
)
def bad_suppression(f: LintFile):
    yield from of(f).problems
