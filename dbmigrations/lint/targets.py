"""Which files to lint, as what (migration, down file, seed), and what is wrong with their names."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from .. import loader
from ..discovery import NAME_PATTERN, NAME_RULE
from ..exceptions import ConfigurationError, Problem
from .source import DOWN, MIGRATION, SEED


class Target(NamedTuple):
    path: Path
    kind: str


def default_targets() -> list[Target]:
    """The project's migrations (with down files) and every seed environment."""
    return expand([loader.migrations_dir()], MIGRATION) + expand([loader.seeds_dir()], SEED)


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


def unique(targets: list[Target]) -> list[Target]:
    """``targets`` without repeats (the same file given twice)."""
    seen, out = set(), []
    for target in targets:
        key = os.path.abspath(target.path)
        if key not in seen:
            seen.add(key)
            out.append(target)
    return out


def name_problems(targets: list[Target]) -> dict[Path, list[Problem]]:
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


def file_order(path: Path):
    """Sort key of files: by directory, then number (not string order: "1000" after "999")."""
    match = NAME_PATTERN.match(path.name)
    return str(path.parent), int(match["version"]) if match else float("inf"), path.name
