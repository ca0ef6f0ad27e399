"""Benchmark of lint_sql_migrations against squawk alone on the same files.

    .venv/bin/python bench/lint_bench.py [--n 1000] [--repeat 9]

Generates N migrations in a temp dir (the shapes of the shipped ones: a table with
indexes and a trigger, a column added in a DO block, an index, now and then a
CONCURRENTLY index outside a transaction), then times, round-robin so that a busy
moment of the machine hits every contender alike:
  * `squawk --reporter json` alone over the files (a process);
  * the Django floor: `manage.py shell -c pass` (a process: settings, apps, models);
  * `manage.py lint_sql_migrations --format json` over the files (a process), cold;
  * the lint in-process (our rules + squawk, merged and suppressed).
It prints medians, and the median of each round's ratio. Targets for N=1000 on 2 cores:
under 3 s, and the command's time beyond the Django floor at most 1.5x squawk alone.
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


def process(command: list[str], env: dict[str, str] | None = None):
    """A function running ``command``; exit 0 or 1 (findings) is fine, anything else stops the bench."""

    def run():
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(command[:4])} … failed ({proc.returncode}):\n{proc.stderr}")

    return run


def cpu_seconds() -> float:
    """CPU used so far by this process and by its children that have ended (squawk, manage.py …)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def round_robin(contenders: dict, repeat: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU times of each contender: ``repeat`` rounds, each running every contender once."""
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, run in contenders.items():
            began, began_cpu = time.perf_counter(), cpu_seconds()
            run()
            wall[name].append(time.perf_counter() - began)
            cpu[name].append(cpu_seconds() - began_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bestrong.settings")
    import django

    django.setup()
    from django.conf import settings

    from dbmigrations.lint import MIGRATION, expand, lint
    from dbmigrations.lint.squawk import binary

    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp) / "migrations"
        paths = generate(directory, args.n)
        targets = expand([directory], MIGRATION)
        env = {**os.environ, "BESTRONG_ENV_FILE": os.devnull, "XDG_CACHE_HOME": str(Path(temp) / "xdg")}
        manage = [sys.executable, str(ROOT / "manage.py")]
        command = [*manage, "lint_sql_migrations", "--format", "json", str(directory)]
        caches = iter(range(10**6))

        def cold_cache():
            settings.SQL_LINT_CACHE_DIR = Path(temp) / f"cache-{next(caches)}"
            return lint(targets)

        def warm_cache():
            settings.SQL_LINT_CACHE_DIR = Path(temp) / "warm"
            return lint(targets)

        contenders = {
            "squawk alone": process([binary(), "--reporter", "json", *map(str, paths)]),
            "Django floor": process([*manage, "shell", "-c", "pass"], env),
            "command, no cache": process([*command, "--no-cache"], env),
            "command, cache": process(command, env),
            "lint(), no cache": lambda: lint(targets, cache=False),
            "lint(), cold cache": cold_cache,
            "lint(), cache": warm_cache,
        }
        for run in contenders.values():  # the OS file cache, .pyc files, a filled result cache
            run()
        wall, cpu = round_robin(contenders, args.repeat)
        report = lint(targets, cache=False)

    def ratio(times: dict[str, list[float]], name: str, pick=statistics.median) -> float:
        """(time, less the floor for a command) / squawk alone, from the picked times of each."""
        floor = pick(times["Django floor"]) if name.startswith("command") else 0
        return (pick(times[name]) - floor) / pick(times["squawk alone"])

    summary = report.summary()
    print(
        f"{args.n} files ({summary['errors']} errors, {summary['warnings']} warnings), {args.repeat} round-robin "
        "rounds. ratio = (time, less the Django floor for a command) / squawk alone"
    )
    print(f"{'':<20}{'wall median':>12}{'ratio':>7}{'wall min':>10}{'ratio':>7}{'CPU median':>12}{'ratio':>7}")
    for name in contenders:
        cells = []
        for times, pick in ((wall, statistics.median), (wall, min), (cpu, statistics.median)):
            cells.append(f"{pick(times[name]):>{10 if pick is min else 12}.3f}")
            cells.append("" if name in ("squawk alone", "Django floor") else f"{ratio(times, name, pick):>6.2f}x")
        print(f"{name:<20}" + "".join(f"{c:>7}" if c.endswith("x") or not c else c for c in cells))
    print(
        "targets: under 3 s; a command's time beyond the floor at most 1.5x squawk alone. The minimum of the "
        "rounds is the run least disturbed by other work on the machine."
    )


if __name__ == "__main__":
    main()
