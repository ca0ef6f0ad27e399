"""Benchmark of lint_sql_migrations against squawk alone on the same files.

    .venv/bin/python bench/lint_bench.py [--n 1000] [--repeat 3]

Generates N migrations in a temp dir (the shapes of the shipped ones: a table with
indexes and a trigger, a column added in a DO block, an index, now and then a
CONCURRENTLY index outside a transaction), then prints the median wall time of
  * the whole lint in-process (our rules + squawk, merged and suppressed), and
  * `squawk --reporter json` alone over the same files,
and their ratio. Targets: under 1.5× squawk and under 3 s for N=1000 on 2 cores.
"""
from __future__ import annotations

import argparse
import os
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


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def process(command: list[str], env: dict[str, str] | None = None):
    """A function running ``command``; exit 0 or 1 (findings) is fine, anything else stops the bench."""

    def run():
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(command[:4])} … failed ({proc.returncode}):\n{proc.stderr}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
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
        squawk = process([binary(), "--reporter", "json", *map(str, paths)])
        floor = process([*manage, "shell", "-c", "pass"], env)
        command = [*manage, "lint_sql_migrations", "--format", "json", str(directory)]
        for warm_up in (squawk, floor):  # the OS file cache, .pyc files
            warm_up()
        alone, _ = timed(squawk, args.repeat)
        floor_time, _ = timed(floor, args.repeat)
        cold_process, _ = timed(process([*command, "--no-cache"], env), args.repeat)
        no_cache, report = timed(lambda: lint(targets, cache=False), args.repeat)
        caches = iter(range(10**6))

        def cold():
            settings.SQL_LINT_CACHE_DIR = Path(temp) / f"cache-{next(caches)}"
            return lint(targets)

        first, _ = timed(cold, args.repeat)
        warm, _ = timed(lambda: lint(targets), args.repeat)
        process(command, env)()  # fills the cache of XDG_CACHE_HOME
        warm_process, _ = timed(process(command, env), args.repeat)
    summary = report.summary()
    beyond, beyond_warm = cold_process - floor_time, warm_process - floor_time
    print(f"files:                         {args.n} ({summary['errors']} errors, {summary['warnings']} warnings)")
    print(f"squawk alone:                  {alone:.3f} s")
    print("in-process:")
    print(f"  lint, no cache:              {no_cache:.3f} s  = {no_cache / alone:.2f}x squawk")
    print(f"  lint, first run (fills it):  {first:.3f} s  = {first / alone:.2f}x squawk")
    print(f"  lint, unchanged (cache):     {warm:.3f} s  = {warm / alone:.2f}x squawk")
    print("as a process (manage.py lint_sql_migrations --format json):")
    print(f"  Django floor (shell -c pass): {floor_time:.3f} s")
    print(f"  lint, no cache:              {cold_process:.3f} s  = floor + {beyond:.3f} s = floor + "
          f"{beyond / alone:.2f}x squawk")
    print(f"  lint, unchanged (cache):     {warm_process:.3f} s  = floor + {beyond_warm:.3f} s = floor + "
          f"{beyond_warm / alone:.2f}x squawk")
    print(f"targets: < 3 s in all; time beyond the floor <= 1.5x squawk. Medians of {args.repeat} runs")


if __name__ == "__main__":
    main()
