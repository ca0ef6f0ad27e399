"""Benchmark of the system checks' cost, against a Django floor measured in the same run.

    .venv/bin/python bench/checks_bench.py [--n 1000] [--repeat 5]

Django runs the checks before `runserver`, `migrate`, `createsuperuser`…, so their
cost is paid on every command. Generates N migrations in a temp dir (lint_bench's
shapes), points SQL_MIGRATIONS_DIR at it, and prints the median whole-process time of
  * the floor: `manage.py shell -c pass` (Django's start-up, no checks), same settings;
  * `manage.py check` of Django's own checks only (every tag but this app's);
  * `manage.py check` with no cache at all (a fresh clone's first command);
  * the file checks uncached (the runner's validation + the lint, whose own per-content cache
    is warm): what every command paid before the checks' results were reused;
  * `manage.py check` on unchanged files (the usual case);
  * `manage.py check` right after editing one file;
each as a ratio to the floor, and then, in one process (less sensitive to the machine's load),
the file checks' own time with and without reuse, as a share of the floor. The scenarios run in rounds (one of each per round), so a
change in the machine's load touches them all alike. Target: unchanged files within 1.1x
the floor.
The files (the edited one too) are dated a minute back: the cache does not store results
while a file is less than 2 seconds old, and a real project's files are older than that.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lint_bench import generate  # noqa: E402

IN_PROCESS = """
import statistics, time
from dbmigrations import checks
from dbmigrations.lint import checks as lint
def median(run):
    times = []
    for _ in range({repeat}):
        began = time.perf_counter(); run(); times.append(time.perf_counter() - began)
    return statistics.median(times)
reused = median(lambda: (checks.check_sql_files(), lint.check_sql_lint()))
fresh = median(lambda: (checks.migration_file_messages.uncached(), checks.seed_file_messages.uncached(),
                        lint.lint_check_warnings()))
print(reused, fresh)
"""
UNCACHED = (
    "from dbmigrations import checks; from dbmigrations.lint import checks as lint; "
    "checks.migration_file_messages.uncached(); checks.seed_file_messages.uncached(); "
    "lint.lint_check_warnings()"
)


def manage(env: dict, *args: str) -> float:
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return elapsed


def django_tags(env: dict) -> list[str]:
    """``--tag`` options selecting every check but this app's."""
    listed = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check", "--list-tags"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [option for tag in listed if tag != "dbmigrations" for option in ("--tag", tag)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    temp = Path(tempfile.mkdtemp(prefix="checks-bench-"))
    atexit.register(shutil.rmtree, temp, ignore_errors=True)
    paths = generate(temp / "migrations", args.n)
    (temp / "seeds" / "development").mkdir(parents=True)
    past = time.time_ns() - 60 * 10**9
    for path in paths:
        os.utime(path, ns=(past, past))
    env = {
        **os.environ,
        "SQL_MIGRATIONS_DIR": str(temp / "migrations"),
        "SQL_SEEDS_DIR": str(temp / "seeds"),
        "BESTRONG_ENV_FILE": os.devnull,
        "DATABASE_URL": "postgresql://bench@127.0.0.1:1/unused",
        "XDG_CACHE_HOME": str(temp / "cache"),
    }
    fresh = iter(range(10**6))

    def cold() -> float:
        return manage({**env, "XDG_CACHE_HOME": str(temp / f"cache-{next(fresh)}")}, "check")

    edits = iter(range(10**6))

    def edited() -> float:
        path = paths[len(paths) // 2]
        with open(path, "a", encoding="utf-8") as file:
            file.write(f"-- edit {next(edits)}\n")
        os.utime(path, ns=(past, past))  # a change all the same (size, ctime), but old enough to be stored
        return manage(env, "check")

    tags = django_tags(env)
    scenarios = {
        "floor: shell -c pass": lambda: manage(env, "shell", "-c", "pass"),
        "check, Django's checks only": lambda: manage(env, "check", *tags),
        "check, no cache at all": cold,
        "file checks uncached (before)": lambda: manage(env, "shell", "-c", UNCACHED),
        "check, unchanged files": lambda: manage(env, "check"),
        "check, one file edited": edited,
    }
    manage(env, "check")  # fills the caches (and the OS file cache)
    times: dict[str, list[float]] = {label: [] for label in scenarios}
    for _ in range(args.repeat):
        for label, run in scenarios.items():
            times[label].append(run())
    figures = [(label, statistics.median(values)) for label, values in times.items()]
    floor = figures[0][1]
    reused, fresh = map(
        float,
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "shell", "-c", IN_PROCESS.format(repeat=args.repeat)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.splitlines()[-1]
        .split(),
    )
    print(f"files: {args.n} migrations; medians of {args.repeat} runs, whole processes")
    for label, seconds in figures:
        print(f"{label + ':':32} {seconds:6.3f} s = {seconds / floor:5.2f}x floor  ({seconds - floor:+.3f} s)")
    print(
        f"in one process, this app's file checks: {reused * 1000:.1f} ms on unchanged files "
        f"({reused / floor:.1%} of the floor), {fresh * 1000:.1f} ms without reuse ({fresh / floor:.1%})"
    )
    print("target: unchanged files within 1.1x the floor")


if __name__ == "__main__":
    main()
