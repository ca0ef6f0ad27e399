"""Benchmark of verify_sql_migrations: time and queries per migration against the history's length.

    .venv/bin/python bench/verify_bench.py [--n 25 50 100 200 400] [--repeat 3] [--baseline DIR]

Generates N migrations, each with a down file (a table with a serial key, an index, and every few
files a column added to the previous table, a function, an enum type, a view, a row), and runs
``verify`` on them for each N. Each measurement is a fresh process (``--driver``) that imports the
tool from a source tree: this one, and with ``--baseline DIR`` another checkout (e.g. the code before
a change), interleaved round by round so both meet the same machine load. It prints, per migration:

  * wall and CPU milliseconds, from the scratch database's creation to the last migration's report: the
    CPU of verify's process, and of the scratch database's server process (read from /proc on Linux);
    on a shared machine the CPU figures are the steadier ones;
  * the queries the tool sent (extended-protocol executions and simple-query messages; a
    runner batch is one message) and the round trips, counted by a loopback proxy in front of
    the server (``bench/pgproxy.py``, no added delay), in a separate, untimed run.

Target: the per-migration figures flat from N=25 to N=400.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
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

HEADER = "-- Migration: {name}\n-- Description: generated\n-- Created: 2024-01-01\n-- Author: bench\n\nBEGIN;\n{body}\nCOMMIT;\n"


def migration_body(i: int) -> tuple[str, str]:
    """The up and down SQL of generated migration ``i``: what a real history's files hold."""
    up = [
        f"CREATE TABLE IF NOT EXISTS bench_{i} (\n  id SERIAL PRIMARY KEY,\n  client_id INTEGER NOT NULL,\n"
        f"  payload JSONB NOT NULL DEFAULT '{{}}'::jsonb,\n  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP\n);",
        f"CREATE INDEX IF NOT EXISTS idx_bench_{i}_client_id ON bench_{i}(client_id);",
    ]
    down = [f"DROP TABLE IF EXISTS bench_{i};"]
    if i % 3 == 0 and i > 1:
        up.append(f"ALTER TABLE bench_{i - 1} ADD COLUMN IF NOT EXISTS note_{i} TEXT;")
        down.insert(0, f"ALTER TABLE bench_{i - 1} DROP COLUMN IF EXISTS note_{i};")
    if i % 4 == 0:
        up.append(f"INSERT INTO bench_{i} (id, client_id) VALUES (1, {i}) ON CONFLICT (id) DO NOTHING;")
    if i % 5 == 0:
        up.append(
            f"CREATE OR REPLACE FUNCTION bench_count_{i}() RETURNS bigint LANGUAGE sql AS "
            f"'SELECT count(*) FROM bench_{i}';"
        )
        down.insert(0, f"DROP FUNCTION IF EXISTS bench_count_{i}();")
    if i % 7 == 0:
        up.append(
            f"DO $$ BEGIN\n  CREATE TYPE bench_status_{i} AS ENUM ('new', 'done');\n"
            "EXCEPTION WHEN duplicate_object THEN NULL;\nEND $$;"
        )
        down.append(f"DROP TYPE IF EXISTS bench_status_{i};")
    if i % 10 == 0:
        up.append(f"CREATE OR REPLACE VIEW bench_recent_{i} AS SELECT id, created_at FROM bench_{i};")
        down.insert(0, f"DROP VIEW IF EXISTS bench_recent_{i};")
    return "\n".join(up), "\n".join(down)


def generate(directory: Path, n: int) -> None:
    """N migrations ``00001_bench_i.sql`` with their down files."""
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        name = f"{i:05d}_bench_{i}"
        up, down = migration_body(i)
        (directory / f"{name}.sql").write_text(HEADER.format(name=name, body=up))
        (directory / f"{name}.down.sql").write_text(HEADER.format(name=name, body=down))


def driver(tree: str, directory: str, url: str, count: bool) -> None:
    """Run in a fresh process: verify ``directory`` with the tool of ``tree``; print one JSON line."""
    sys.path.insert(0, tree)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bestrong.settings")
    import django
    import psycopg

    django.setup()
    from dbmigrations import discovery, verify

    assert Path(verify.__file__).is_relative_to(tree), verify.__file__
    params = psycopg.conninfo.conninfo_to_dict(url)
    proxy = None
    if count:
        # This bench's own proxy, whichever tree is measured.
        spec = importlib.util.spec_from_file_location("verify_bench_pgproxy", ROOT / "bench" / "pgproxy.py")
        pgproxy = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(pgproxy)
        proxy = pgproxy.LatencyProxy(params.get("host"), params.get("port"), 0)
        params = {**params, "host": "127.0.0.1", "port": proxy.port, "sslmode": "disable"}
    files = discovery.discover(Path(directory))
    marks = {}
    admin = psycopg.connect(url, autocommit=True)

    def server_cpu() -> float:
        """Seconds of CPU the scratch database's server process used (Linux /proc; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{marks['pid']}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, KeyError, IndexError):
            return 0.0

    def progress(event, payload):
        if event == "database":
            pids = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (payload,)).fetchall()
            marks["pid"] = pids[0][0] if len(pids) == 1 else None
            marks["start"] = (time.perf_counter(), time.process_time(), server_cpu())
            if proxy:
                proxy.reset()
        elif event == "migration":
            marks["end"] = (time.perf_counter(), time.process_time(), server_cpu())
            if proxy:
                marks["queries"], marks["round_trips"] = proxy.queries, proxy.round_trips

    report = verify.verify(params, files, None, progress=progress)
    n = len(report.migrations)
    print(
        json.dumps(
            {
                "ok": report.ok,
                "n": n,
                "wall_ms": (marks["end"][0] - marks["start"][0]) * 1000 / n,
                "cpu_ms": (marks["end"][1] - marks["start"][1]) * 1000 / n,
                "server_ms": (marks["end"][2] - marks["start"][2]) * 1000 / n,
                "queries": marks.get("queries", 0) / n,
                "round_trips": marks.get("round_trips", 0) / n,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[25, 50, 100, 200, 400])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", help="another source tree to measure in the same run (the code before)")
    parser.add_argument("--driver", nargs=4, metavar=("TREE", "DIR", "URL", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        tree, directory, url, count = args.driver
        return driver(tree, directory, url, count == "1")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    work = Path(tempfile.mkdtemp(prefix="bestrong-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # after pgserver's own cleanup (LIFO)
    server = pgserver.get_server(work / "data", cleanup_mode="delete")
    url = f"postgresql://postgres@/postgres?host={server.get_postmaster_info().socket_dir}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "POSTGRES_", "VERCEL", "NODE_ENV"))}
    env["BESTRONG_ENV_FILE"] = os.devnull
    trees = {"now": str(ROOT)}
    if args.baseline:
        trees = {"before": str(Path(args.baseline).resolve()), **trees}

    def run(tree: str, directory: Path, count: bool) -> dict:
        proc = subprocess.run(
            [sys.executable, __file__, "--driver", tree, str(directory), url, "1" if count else "0"],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode:
            sys.exit(f"verify failed ({tree}, {directory.name}):\n{proc.stderr}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if not result["ok"]:
            sys.exit(f"verify reported problems ({tree}, {directory.name}): the generated files should pass")
        return result

    results: dict[tuple[str, int], dict] = {}
    for n in args.n:
        directory = work / f"n{n}"
        generate(directory, n)
        samples: dict[str, list[dict]] = {label: [] for label in trees}
        for _ in range(args.repeat):
            for label, tree in trees.items():
                samples[label].append(run(tree, directory, False))
        for label, tree in trees.items():
            counted = run(tree, directory, True)
            results[label, n] = {
                "wall_ms": statistics.median(s["wall_ms"] for s in samples[label]),
                "cpu_ms": statistics.median(s["cpu_ms"] for s in samples[label]),
                "server_ms": statistics.median(s["server_ms"] for s in samples[label]),
                "queries": counted["queries"],
                "round_trips": counted["round_trips"],
            }
            r = results[label, n]
            print(
                f"N={n:4d} {label:>6}: {r['wall_ms']:6.1f} ms wall, {r['cpu_ms']:5.1f} + {r['server_ms']:5.1f} ms CPU, "
                f"{r['queries']:6.1f} queries, {r['round_trips']:6.1f} round trips per migration",
                flush=True,
            )
    print(f"\nper migration, median of {args.repeat} (wall ms / verify's CPU ms / server's CPU ms / queries):")
    print("    N  " + "".join(f"{label:>32}" for label in trees))
    for n in args.n:
        cells = [results[label, n] for label in trees]
        print(
            f"{n:5d}  "
            + "".join(
                f"{c['wall_ms']:9.1f} {c['cpu_ms']:7.1f} {c['server_ms']:7.1f} {c['queries']:7.1f}" for c in cells
            )
        )


if __name__ == "__main__":
    main()
