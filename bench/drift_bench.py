"""Benchmark of check_sql_schema: its time against the schema's size and the history's length.

    .venv/bin/python bench/drift_bench.py [--tables 100 400] [--history-factor 4]

For each size N it prints, measured in the same run on a throwaway server:
  * `apply_sql_migrations` of N generated migrations (a table and an index each): the baseline;
  * `check_sql_schema` on that database, whole process, and the ratio to the apply;
  * the same schema reached through a history FACTOR times longer (each table created, altered and
    given a comment by separate migrations): how much of the check follows the history, not the schema;
  * `manage.py check --database default` before and after the expected schema is stored: what the
    drift warning (W007, a comparison of the live catalog with the stored schema) adds to the check.
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
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.apply_bench import generate  # noqa: E402


def generate_long_history(directory: Path, n: int, factor: int) -> None:
    """The same N tables, each reached through ``factor`` migrations."""
    generate(directory, n)
    number = n
    for step in range(1, factor):
        for i in range(1, n + 1):
            number += 1
            name = f"{number:05d}_touch_{i}_{step}"
            (directory / f"{name}.sql").write_text(
                f"-- Migration: {name}\n-- Created: 2024-01-01\n\nBEGIN;\n"
                f"COMMENT ON TABLE bench_{i} IS 'step {step}';\nCOMMIT;\n"
            )
    for path in directory.glob("0*.sql"):  # keep one numbering width
        if len(path.name.split("_")[0]) == 4:
            path.rename(directory / ("0" + path.name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--history-factor", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    import psycopg

    work = Path(tempfile.mkdtemp(prefix="bestrong-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    server = pgserver.get_server(work / "data", cleanup_mode="delete")
    socket_dir = str(server.get_postmaster_info().socket_dir)
    admin = psycopg.connect(f"postgresql://postgres@/postgres?host={socket_dir}", autocommit=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "POSTGRES_", "VERCEL", "NODE_ENV"))}
    env["BESTRONG_ENV_FILE"] = os.devnull

    def run(command: str, directory: Path, name: str, ok=(0,), args=("-v", "0")) -> float:
        began = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), command, *args],
            capture_output=True,
            text=True,
            env={
                **env,
                "SQL_MIGRATIONS_DIR": str(directory),
                "DATABASE_URL": f"postgresql://postgres@/{name}?host={socket_dir}",
            },
        )
        if proc.returncode not in ok:
            sys.exit(f"{command} failed: {proc.stdout}{proc.stderr}")
        return time.perf_counter() - began

    print(
        f"{'tables':>6} {'migrations':>10} {'apply s':>8} {'check s':>8} {'check/apply':>11} "
        f"{'check --database: none stored s':>32} {'stored s':>9}"
    )
    for n in args.tables:
        for label, build in (
            ("short", lambda d, n=n: generate(d, n)),
            ("long", lambda d, n=n: generate_long_history(d, n, args.history_factor)),
        ):
            directory = work / f"{label}_{n}"
            build(directory)
            migrations = len(list(directory.glob("*.sql")))
            name = f"bench_{label}_{n}"
            admin.execute(f'CREATE DATABASE "{name}"')
            t_apply = run("apply_sql_migrations", directory, name)

            def django_check(directory=directory, name=name):
                return statistics.median(
                    run("check", directory, name, args=("--database", "default")) for _ in range(args.repeat)
                )

            t_plain = django_check()
            checks = [run("check_sql_schema", directory, name) for _ in range(args.repeat)]
            t_check = statistics.median(checks)
            t_stored = django_check()
            print(
                f"{n:>6} {migrations:>10} {t_apply:>8.2f} {t_check:>8.2f} {t_check / t_apply:>10.2f}x "
                f"{t_plain:>32.2f} {t_stored:>9.2f}"
            )


if __name__ == "__main__":
    main()
