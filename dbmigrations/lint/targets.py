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
            # One folder: its names sorted are its paths sorted (Path comparisons cost more than the listing).
            files = sorted(path.rglob("*.sql")) if kind == SEED else [path / name for name in _sql_names(path)]
        elif path.is_file():
            files = [path]
        elif must_exist:
            raise ConfigurationError(f"{path}: no such file or directory")
        else:
            files = []
        targets += [Target(p, DOWN if kind == MIGRATION and p.name.endswith(".down.sql") else kind) for p in files]
    return targets


def _sql_names(directory: Path) -> list[str]:
    """The names in ``directory`` ending in ``.sql`` (what ``glob("*.sql")`` finds), sorted."""
    with os.scandir(directory) as entries:
        return sorted(entry.name for entry in entries if entry.name.endswith(".sql"))


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
    by_directory: dict[str, list[tuple[Target, str]]] = defaultdict(list)
    for t in targets:
        folder, name = os.path.split(t.path)
        by_directory[folder].append((t, name))
    for siblings in by_directory.values():
        versions, ups = defaultdict(list), set()
        for t, name in siblings:
            match = NAME_PATTERN.match(name)
            if not match:
                problems[t.path].append(Problem(str(t.path), f"invalid file name: {NAME_RULE}"))
            elif match["down"] and t.kind == SEED:
                problems[t.path].append(Problem(str(t.path), "down files belong beside migrations, not here"))
            elif not match["down"]:
                versions[int(match["version"])].append((t, name))
                ups.add(name[:-4])
        for number, same in versions.items():
            if len(same) > 1:
                listed = ", ".join(name for _, name in same)
                for t, _ in same:
                    problems[t.path].append(Problem(str(t.path), f"duplicate version {number}: {listed}"))
        for t, name in siblings:
            stem = name.removesuffix(".down.sql")
            if t.kind == DOWN and stem not in ups and NAME_PATTERN.match(name):
                problems[t.path].append(Problem(str(t.path), f"down file without its up file ({stem}.sql)"))
    return problems


def file_order(path: Path):
    """Sort key of files: by directory, then number (not string order: "1000" after "999")."""
    match = NAME_PATTERN.match(path.name)
    return str(path.parent), int(match["version"]) if match else float("inf"), path.name
