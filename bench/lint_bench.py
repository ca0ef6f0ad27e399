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
        paths = generate(Path(temp) / "migrations", args.n)
        targets = expand([Path(temp) / "migrations"], MIGRATION)
        squawk = [binary(), "--reporter", "json", *map(str, paths)]
        subprocess.run(squawk, capture_output=True)  # warm the OS file cache for both
        alone, _ = timed(lambda: subprocess.run(squawk, capture_output=True), args.repeat)
        no_cache, report = timed(lambda: lint(targets, cache=False), args.repeat)
        caches = iter(range(10**6))

        def cold():
            settings.SQL_LINT_CACHE_DIR = Path(temp) / f"cache-{next(caches)}"
            return lint(targets)

        first, _ = timed(cold, args.repeat)
        warm, _ = timed(lambda: lint(targets), args.repeat)
    summary = report.summary()
    print(f"files:                         {args.n} ({summary['errors']} errors, {summary['warnings']} warnings)")
    print(f"squawk alone:                  {alone:.3f} s")
    print(f"lint, no cache:                {no_cache:.3f} s  = {no_cache / alone:.2f}x squawk")
    print(f"lint, first run (fills cache): {first:.3f} s  = {first / alone:.2f}x squawk")
    print(f"lint, unchanged files (cache): {warm:.3f} s  = {warm / alone:.2f}x squawk")
    print("targets: < 1.5x squawk, < 3 s; medians of", args.repeat, "runs, in-process")


if __name__ == "__main__":
    main()
