"""Benchmark of lint_sql_migrations against squawk alone on the same files, beyond the Django floor.

    .venv/bin/python bench/lint_bench.py [--n 1000] [--rounds 9] [--before DIR]

Generates N migrations in a temp dir (the shapes of the shipped ones: a table with
indexes and a trigger, a column added in a DO block, an index, now and then a
CONCURRENTLY index outside a transaction), then runs, round after round, each of these
processes once (the order rotates each round, so that a busy moment of the machine
hits every contender alike):
  * squawk alone: `squawk --reporter json` over the files, with the project's .squawk.toml;
  * the Django floor: `manage.py shell -c pass` (interpreter, settings, apps, models);
  * `manage.py lint_sql_migrations --format json` over the files: with `--no-cache`,
    with a new, empty cache folder, and with the cache filled by the previous round.
With ``--before DIR`` (another checkout of this project, e.g. a ``git worktree`` of the
previous commit), its ``manage.py lint_sql_migrations --no-cache`` is one more contender,
run by the same interpreter in the same rounds: a before/after comparison under the same load.
It prints, for each, the median and the minimum of the rounds' wall times and the
median CPU time (user + system, squawk's own included for the lint). Then the lint's
time beyond the floor (per round: lint minus floor) against squawk alone. Target for
N=1000: the cold lint (no cache) beyond the floor at most 1.5x squawk alone.
The first round of each contender is not timed: it warms the OS file cache and writes
the project's ``.pyc`` files (``PYTHONDONTWRITEBYTECODE`` is dropped for the children: an
installed package has its ``.pyc``, and compiling the sources anew on every run would
measure the compiler, more of it in the lint than in the floor).
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

SHAPES = [
    """BEGIN;

CREATE TABLE IF NOT EXISTS bench_{i} (
  id SERIAL PRIMARY KEY,
  client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
  name VARCHAR(255),
  payload JSONB NOT NULL DEFAULT '{{}}'::jsonb,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_bench_{i}_client_id ON bench_{i}(client_id);

DROP TRIGGER IF EXISTS update_bench_{i}_updated_at ON bench_{i};
CREATE TRIGGER update_bench_{i}_updated_at BEFORE UPDATE ON bench_{i}
  FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

COMMIT;
""",
    """BEGIN;

DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM information_schema.columns
    WHERE table_name = 'clients' AND column_name = 'extra_{i}'
  ) THEN
    ALTER TABLE clients ADD COLUMN extra_{i} VARCHAR(50) DEFAULT 'none';
  END IF;
END $$;

CREATE INDEX IF NOT EXISTS idx_clients_extra_{i} ON clients(extra_{i});

COMMIT;
""",
    """BEGIN;

CREATE INDEX IF NOT EXISTS idx_questionnaires_{i} ON questionnaires(client_id, submitted_at);

COMMIT;
""",
    """CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_recommendations_{i} ON recommendations(created_at);
""",
]

SQUAWK, FLOOR, NO_CACHE, NEW_CACHE, WARM_CACHE, BEFORE = (
    "squawk alone",
    "Django floor",
    "lint, --no-cache",
    "lint, empty cache",
    "lint, warm cache",
    "before, --no-cache",
)
TARGET = 1.5


def generate(directory: Path, n: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, n + 1):
        name = f"{i:04d}_bench_change_{i}"
        body = SHAPES[0 if i % 10 < 4 else 1 if i % 10 < 7 else 2 if i % 10 < 9 else 3].format(i=i)
        path = directory / f"{name}.sql"
        path.write_text(f"-- Migration: {name}\n-- Description: Generated change {i}\n-- Created: 2024-01-01\n\n{body}")
        paths.append(path)
    return paths


def children_cpu() -> float:
    """CPU used so far by the child processes that have ended (and by their own children: squawk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall, CPU, result) of one run; exit 0 or 1 (findings) is fine, anything else stops the bench."""
    began, began_cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - began, children_cpu() - began_cpu
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command[:4])} … failed ({proc.returncode}):\n{proc.stderr}")
    return wall, cpu, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--before", type=Path, help="another checkout whose lint runs as one more contender")
    args = parser.parse_args()

    from dbmigrations.lint.squawk import binary

    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp) / "migrations"
        paths = generate(directory, args.n)
        env = {**os.environ, "BESTRONG_ENV_FILE": os.devnull}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        manage = [sys.executable, str(ROOT / "manage.py")]
        lint = [*manage, "lint_sql_migrations", "--format", "json", str(directory)]
        squawk = [binary(), "--reporter", "json", "--config", str(ROOT / ".squawk.toml"), *map(str, paths)]
        caches = iter(range(10**6))
        contenders = {
            SQUAWK: lambda: timed(squawk, env),
            FLOOR: lambda: timed([*manage, "shell", "-c", "pass"], env),
            NO_CACHE: lambda: timed([*lint, "--no-cache"], env),
            NEW_CACHE: lambda: timed(lint, {**env, "XDG_CACHE_HOME": f"{temp}/cache-{next(caches)}"}),
            WARM_CACHE: lambda: timed(lint, {**env, "XDG_CACHE_HOME": f"{temp}/warm"}),
        }
        if args.before:
            before = [sys.executable, str(args.before.resolve() / "manage.py"), *lint[2:], "--no-cache"]
            contenders[BEFORE] = lambda: timed(before, env)
        outputs = {name: run()[2].stdout for name, run in contenders.items()}  # warms the OS file cache, .pyc
        assert outputs[NO_CACHE] == outputs[NEW_CACHE] == outputs[WARM_CACHE], "the cache changed the report"
        assert outputs.get(BEFORE, outputs[NO_CACHE]) == outputs[NO_CACHE], "the report differs from --before's"
        load = os.getloadavg()[0]
        wall: dict[str, list[float]] = {name: [] for name in contenders}
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                seconds, cpu_seconds, _ = contenders[name]()
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
        load = (load, os.getloadavg()[0])
    summary = outputs[NO_CACHE].rsplit('"summary": ', 1)[-1].strip().rstrip("}").strip()

    print(
        f"{args.n} files ({summary}); {args.rounds} rounds, each running every contender once, order rotated; "
        f"load average {load[0]:.1f} → {load[1]:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'seconds':<22}{'wall median':>12}{'wall min':>10}{'CPU median':>12}")
    for name in contenders:
        print(
            f"{name:<22}{statistics.median(wall[name]):>12.3f}{min(wall[name]):>10.3f}{statistics.median(cpu[name]):>12.3f}"
        )
    print(f"\nbeyond the floor (per round: lint − floor), ratio to squawk alone; target ≤ {TARGET}x for --no-cache")
    print(f"{'seconds':<22}{'wall median':>12}{'ratio':>7}{'wall min':>10}{'ratio':>7}{'CPU median':>12}{'ratio':>7}")
    for name in (NO_CACHE, NEW_CACHE, WARM_CACHE, BEFORE):
        if name not in contenders:
            continue
        cells = []
        for times, pick in ((wall, statistics.median), (wall, min), (cpu, statistics.median)):
            if pick is min:  # the least disturbed run of each
                beyond = min(times[name]) - min(times[FLOOR])
            else:
                beyond = pick([a - b for a, b in zip(times[name], times[FLOOR])])
            cells.append(f"{beyond:>{10 if pick is min else 12}.3f}{beyond / pick(times[SQUAWK]):>6.2f}x")
        print(f"{name:<22}" + "".join(cells))


if __name__ == "__main__":
    main()
