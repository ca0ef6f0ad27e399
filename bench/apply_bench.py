"""Benchmark of apply_sql_migrations: bulk speed vs psql, no-op time, round trips over a slow link.

    .venv/bin/python bench/apply_bench.py [--n 1000] [--delay-ms 5]

Prints, in one run:
  * applying N generated migrations vs `psql -1 -f` of the same SQL concatenated (the limit), as a ratio;
  * the whole-process time of a no-op run (nothing pending);
  * round trips after connecting, counted by a loopback proxy that adds DELAY ms each way:
    per applied migration, and for a no-op run; psql's count on the same files for comparison.
Targets: ≤ 2 round trips per migration, ≤ 5 for a no-op run, N=1000 within 2× psql, no-op under 1 s.
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

from bench.pgproxy import LatencyProxy  # noqa: E402


def generate(directory: Path, n: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        name = f"{i:04d}_add_table_{i}"
        (directory / f"{name}.sql").write_text(f"""-- Migration: {name}
-- Description: Generated table {i}
-- Created: 2024-01-01
-- Author: bench

BEGIN;

CREATE TABLE IF NOT EXISTS bench_{i} (
  id SERIAL PRIMARY KEY,
  client_id INTEGER NOT NULL,
  payload JSONB NOT NULL DEFAULT '{{}}'::jsonb,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_bench_{i}_client_id ON bench_{i}(client_id);

COMMIT;
""")


def concatenated(directory: Path) -> str:
    """The migrations' statements without their wrappers, as one script (what psql -1 runs)."""
    from dbmigrations.discovery import discover

    return "\n".join(s.sql + ";" for f in discover(directory) for s in f.source.script.statements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rt-n", type=int, default=50, help="migrations applied through the slow proxy")
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import POSTGRES_BIN_PATH
    import psycopg

    work = Path(tempfile.mkdtemp(prefix="bestrong-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # after pgserver's own cleanup (LIFO)
    server = pgserver.get_server(work / "data", cleanup_mode="delete")
    socket_dir = str(server.get_postmaster_info().socket_dir)
    admin = psycopg.connect(f"postgresql://postgres@/postgres?host={socket_dir}", autocommit=True)
    counter = iter(range(10**6))

    def fresh_db() -> str:
        name = f"bench_{next(counter)}"
        admin.execute(f'CREATE DATABASE "{name}"')
        return name

    def url(name, via_proxy=None):
        if via_proxy:
            return f"postgresql://postgres@127.0.0.1:{via_proxy.port}/{name}?sslmode=disable"
        return f"postgresql://postgres@/{name}?host={socket_dir}"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "POSTGRES_", "VERCEL", "NODE_ENV"))}
    env["BESTRONG_ENV_FILE"] = os.devnull

    def apply(directory, dburl):
        began = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "apply_sql_migrations", "-v", "0"],
            env={**env, "DATABASE_URL": dburl, "SQL_MIGRATIONS_DIR": str(directory)},
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            sys.exit(f"apply failed: {proc.stderr}")
        return time.perf_counter() - began

    def psql(script_path, dburl):
        began = time.perf_counter()
        proc = subprocess.run(
            [str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(script_path), dburl],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode:
            sys.exit(f"psql failed: {proc.stderr}")
        return time.perf_counter() - began

    big = work / "big"
    generate(big, args.n)
    script = work / "all.sql"
    script.write_text(concatenated(big))

    ours, limit, noop = [], [], []
    for _ in range(args.repeat):
        limit.append(psql(script, url(fresh_db())))
        name = fresh_db()
        ours.append(apply(big, url(name)))
        noop.append(apply(big, url(name)))
    t_ours, t_psql, t_noop = (statistics.median(x) for x in (ours, limit, noop))

    small = work / "small"
    generate(small, args.rt_n)
    small_script = work / "small.sql"
    small_script.write_text(concatenated(small))
    proxy = LatencyProxy(socket_dir, None, args.delay_ms)
    name = fresh_db()
    proxy.reset()
    t_slow = apply(small, url(name, proxy))
    rt_apply, rt_startup = proxy.round_trips, proxy.startup_round_trips
    proxy.reset()
    t_slow_noop = apply(small, url(name, proxy))
    rt_noop = proxy.round_trips
    proxy.reset()
    t_slow_psql = psql(small_script, url(fresh_db(), proxy))
    rt_psql = proxy.round_trips

    print(f"PostgreSQL {admin.info.server_version}, N={args.n}, median of {args.repeat}")
    print(
        f"apply {args.n} migrations:        {t_ours:7.2f} s   psql -1 -f (limit): {t_psql:6.2f} s"
        f"   ratio {t_ours / t_psql:4.2f}x  (target <= 2x)"
    )
    print(f"no-op apply (whole process):   {t_noop:7.3f} s   (target < 1 s)")
    print(
        f"round trips, {args.delay_ms:g} ms each way, {args.rt_n} migrations (after connecting; "
        f"start-up took {rt_startup}):"
    )
    print(
        f"  apply:  {rt_apply:4d} total = {(rt_apply - rt_noop) / args.rt_n:4.2f} per migration + {rt_noop} "
        f"(target <= 2 per migration)   {t_slow:5.2f} s"
    )
    print(f"  no-op:  {rt_noop:4d}   (target <= 5)   {t_slow_noop:5.2f} s")
    print(
        f"  psql -1 -f on the same SQL: {rt_psql} round trips   {t_slow_psql:5.2f} s"
        f"   (apply/psql time ratio {t_slow / t_slow_psql:4.2f}x)"
    )
    admin.close()


if __name__ == "__main__":
    main()
