"""Benchmark of the SQL file model: parse time, and `manage.py check`, on N generated migrations.

    .venv/bin/python bench/parse_bench.py [--n 1000] [--repeat 5]

Uses the files of bench/lint_bench.py (a table with an index and a trigger, a column added in
a guarded DO block, an index, now and then a CONCURRENTLY index) and prints, measured in one run:
  * `statements.parse_script` over the N files, in-process (what apply, check and lint all do
    per file), scaled to 1000 files;
  * `manage.py check` as a process, with SQL_MIGRATIONS_DIR holding the N files, beyond the
    Django floor (`manage.py shell -c pass`, same settings): with nothing cached (as after an
    edit: every file parsed and linted) and with the files unchanged since the last check.
Medians of --repeat runs, wall and CPU time (the process's and its children's).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lint_bench import generate  # noqa: E402


def cpu_seconds() -> float:
    """CPU used so far by this process and by its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def median_time(fn, repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn``."""
    wall, cpu = [], []
    for _ in range(repeat):
        began, began_cpu = time.perf_counter(), cpu_seconds()
        fn()
        wall.append(time.perf_counter() - began)
        cpu.append(cpu_seconds() - began_cpu)
    return statistics.median(wall), statistics.median(cpu)


def manage(*args: str, env: dict[str, str]):
    """A function running ``manage.py ARGS`` as a process; it fails loudly if the command does."""

    def run():
        proc = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from dbmigrations.statements import parse_script

    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp) / "migrations"
        texts = [p.read_text() for p in generate(directory, args.n)]
        (Path(temp) / "seeds").mkdir()
        time.sleep(2.5)  # the checks' cache does not trust files changed in the last two seconds
        parse = median_time(lambda: [parse_script(t) for t in texts], args.repeat)
        env = {
            **os.environ,
            "SQL_MIGRATIONS_DIR": str(directory),
            "SQL_SEEDS_DIR": str(Path(temp) / "seeds"),
            "BESTRONG_ENV_FILE": os.devnull,
            "DJANGO_SETTINGS_MODULE": "bestrong.settings",
            "XDG_CACHE_HOME": str(Path(temp) / "cache"),
        }  # the checks' and the lint's caches
        for name in ("DATABASE_URL", "DATABASE_URL_UNPOOLED", "POSTGRES_URL", "POSTGRES_URL_NON_POOLING"):
            env.pop(name, None)
        caches = iter(range(10**6))

        def cold_check():  # as after an edit: nothing cached, every file parsed and linted
            manage("check", env={**env, "XDG_CACHE_HOME": str(Path(temp) / f"cold-{next(caches)}")})()

        floor_run, check_run = manage("shell", "-c", "pass", env=env), manage("check", env=env)
        floor_run(), check_run()  # warm the OS file cache and .pyc files; fill the caches
        floor = median_time(floor_run, args.repeat)
        cold = median_time(cold_check, args.repeat)
        warm = median_time(check_run, args.repeat)
    per_1000 = 1000 / args.n
    print(f"{args.n} files, medians of {args.repeat} runs{'':<25}{'wall':>8}{'CPU':>9}")
    print(f"parse_script, per 1000 files{'':<30}{parse[0] * per_1000:>7.3f}s{parse[1] * per_1000:>8.3f}s")
    print(f"Django floor (manage.py shell -c pass){'':<20}{floor[0]:>7.3f}s{floor[1]:>8.3f}s")
    for label, (wall, cpu) in (("nothing cached", cold), ("files unchanged", warm)):
        print(
            f"manage.py check, {label}, beyond the floor{'':<{24 - len(label)}}"
            f"{wall - floor[0]:>7.3f}s{cpu - floor[1]:>8.3f}s"
        )


if __name__ == "__main__":
    main()
