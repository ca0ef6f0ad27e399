"""Benchmark: does a migration blocked by a long transaction stall the application? Ours vs psql.

    .venv/bin/python bench/lock_stall_bench.py [--rows 200000] [--rate 200] [--hold 10] [--budget 20]

A throwaway PostgreSQL (pgserver) holds a table of ROWS rows. pgbench reads it by
primary key at a fixed RATE (8 clients), standing in for the application. In each
phase a long reader opens a transaction that reads the table (ACCESS SHARE) and
keeps it until HOLD seconds after the ALTER first waits, while ``ALTER TABLE accounts
ADD COLUMN`` is applied:

  * psql:        ``psql -f`` (what a plain runner does: wait in the lock queue);
  * runner:      ``apply_sql_migrations`` with its defaults (bounded lock waits, retried);
  * 8 deployers: eight ``apply_sql_migrations`` at once;
  * never ends:  the reader outlives the runner's retry budget (``--lock-retry-budget BUDGET``).

Prints the application's worst query latency per phase, the ratio to psql's, and
whether the migration was applied. Targets: worst stall <= lock_timeout + 0.5 s and
<= 0.3x psql's, migration applied once the reader ends; with a reader that never
ends, exit 1, nothing applied, the blocker named.

pgbench: pgserver ships one; else Debian's ``apt-get install postgresql-client``.
"""

from __future__ import annotations

import argparse
import atexit
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALTER = """-- Migration: 001_add_note
-- Description: Add a note to accounts
-- Created: 2024-01-01
-- Author: bench

BEGIN;

ALTER TABLE accounts ADD COLUMN IF NOT EXISTS note TEXT;

COMMIT;
"""


def latencies(prefix: str) -> tuple[float, float, int, int]:
    """From pgbench's per-transaction logs: the worst query latency (s), the worst counted from the query's
    scheduled start (it then includes the wait of the client's queued queries), how many of those took
    over 0.5 s, and how many queries ran."""
    worst = worst_scheduled = 0.0
    slow = count = 0
    for path in glob.glob(prefix + ".*"):
        for line in Path(path).read_text().splitlines():
            fields = line.split()
            if len(fields) >= 7 and fields[2].isdigit():
                # pgbench -R counts "time" from the scheduled start; the last field is the client's own lag.
                scheduled = int(fields[2]) / 1e6
                worst = max(worst, scheduled - int(fields[6]) / 1e6)
                worst_scheduled = max(worst_scheduled, scheduled)
                slow += scheduled > 0.5
                count += 1
    return worst, worst_scheduled, slow, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=200, help="application queries per second (pgbench -R)")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the long reader keeps its transaction")
    parser.add_argument("--budget", type=float, default=20.0, help="the runner's retry budget in the never-ends phase")
    parser.add_argument("--ddl-lock-timeout", type=float, default=None, help="passed to the runner (default: its own)")
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import POSTGRES_BIN_PATH
    import psycopg

    work = Path(tempfile.mkdtemp(prefix="bestrong-lockbench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # after pgserver's own cleanup (LIFO)
    server = pgserver.get_server(work / "data", cleanup_mode="delete")
    socket_dir = str(server.get_postmaster_info().socket_dir)
    url = f"postgresql://postgres@/postgres?host={socket_dir}"
    pgbench = shutil.which("pgbench", path=str(POSTGRES_BIN_PATH)) or shutil.which("pgbench")
    psql = shutil.which("psql", path=str(POSTGRES_BIN_PATH)) or shutil.which("psql")
    if not pgbench or not psql:
        sys.exit("pgbench/psql not found: apt-get install postgresql-client")

    admin = psycopg.connect(url, autocommit=True)
    admin.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, owner text NOT NULL)")
    admin.execute("INSERT INTO accounts SELECT i, i %% 1000, 'owner ' || i FROM generate_series(1, %s) i", (args.rows,))
    admin.execute("VACUUM ANALYZE accounts")
    migrations = work / "migrations"
    migrations.mkdir()
    (migrations / "001_add_note.sql").write_text(ALTER)
    workload = work / "select.sql"
    workload.write_text(f"\\set id random(1, {args.rows})\nSELECT balance FROM accounts WHERE id = :id;\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "POSTGRES_", "VERCEL", "NODE_ENV"))}
    env.update(BESTRONG_ENV_FILE=os.devnull, DATABASE_URL=url, SQL_MIGRATIONS_DIR=str(migrations), PYTHONUNBUFFERED="1")
    runner_args = [] if args.ddl_lock_timeout is None else ["--ddl-lock-timeout", str(args.ddl_lock_timeout)]

    def reset() -> None:
        admin.execute("ALTER TABLE accounts DROP COLUMN IF EXISTS note")
        admin.execute("DROP TABLE IF EXISTS schema_migrations")

    def applied() -> bool:
        return bool(
            admin.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'note'"
            ).fetchall()
        )

    def phase(name: str, commands: list[list[str]], hold: float | None) -> dict:
        """Run the workload; at 1 s open the reader, at 2 s start ``commands``; the reader ends after ``hold``
        seconds (None: when the commands have exited)."""
        reset()
        prefix = str(work / f"log-{name.replace(' ', '-')}")
        duration = int(2 + (hold if hold is not None else args.budget + 5) + 4)
        bench = subprocess.Popen(
            [
                pgbench,
                "-n",
                "-f",
                str(workload),
                "-c",
                "8",
                "-j",
                "2",
                "-R",
                str(args.rate),
                "-T",
                str(duration),
                "-l",
                f"--log-prefix={prefix}",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        reader = psycopg.connect(url, application_name="long-report")
        reader.execute("SELECT count(*) FROM accounts")  # ACCESS SHARE until it ends
        reader_pid = reader.info.backend_pid
        time.sleep(1)
        began = time.monotonic()
        # Niced: on a 2-core machine, eight starting Pythons would otherwise starve pgbench itself.
        procs = [
            subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                preexec_fn=lambda: os.nice(10),
            )
            for command in commands
        ]
        outputs = [None] * len(procs)

        def collect(i):
            outputs[i] = procs[i].communicate()[0]

        threads = [threading.Thread(target=collect, args=(i,)) for i in range(len(procs))]
        for thread in threads:
            thread.start()
        if hold is not None:
            # Count the hold from the first ALTER in the lock queue: eight Python processes take seconds to start.
            while (
                time.monotonic() - began < 60
                and not admin.execute(
                    "SELECT 1 FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock' "
                    "AND relation = 'accounts'::regclass"
                ).fetchall()
            ):
                time.sleep(0.02)
            time.sleep(hold)
            reader.rollback()
        for thread in threads:
            thread.join()
        finished = time.monotonic() - began
        reader.rollback()
        reader.close()
        bench.wait()
        worst, scheduled, slow, count = latencies(prefix)
        return {
            "name": name,
            "worst": worst,
            "scheduled": scheduled,
            "slow": slow,
            "count": count,
            "codes": [p.returncode for p in procs],
            "outputs": outputs,
            "applied": applied(),
            "took": finished,
            "reader": reader_pid,
        }

    apply = [sys.executable, str(ROOT / "manage.py"), "apply_sql_migrations", *runner_args]
    results = [
        phase(
            "psql",
            [[psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(migrations / "001_add_note.sql"), url]],
            args.hold,
        ),
        phase("runner", [apply], args.hold),
        phase("8 deployers", [apply] * 8, args.hold),
        phase("never ends", [[*apply, "--lock-retry-budget", str(args.budget)]], None),
    ]
    baseline = results[0]["worst"]
    version = admin.info.server_version
    admin.close()

    timeout = args.ddl_lock_timeout if args.ddl_lock_timeout is not None else 1.0
    print(
        f"PostgreSQL {version}, {args.rows} rows, {args.rate} queries/s (8 clients), reader holds "
        f"{args.hold:g} s after the ALTER first waits, runner's lock_timeout {timeout:g} s"
    )
    print(
        f"{'phase':<12} {'worst query':>11} {'vs psql':>8} {'from schedule':>13} {'late > 0.5 s':>14} "
        f"{'exit codes':>12} {'applied':>8} {'took':>7}"
    )
    for r in results:
        codes = ",".join(map(str, sorted(set(r["codes"])))) + (f" (x{len(r['codes'])})" if len(r["codes"]) > 1 else "")
        print(
            f"{r['name']:<12} {r['worst']:>9.2f} s {r['worst'] / baseline:>7.2f}x {r['scheduled']:>11.2f} s "
            f"{r['slow']:>5d} of {r['count']:<5d} {codes:>12} {str(r['applied']):>8} {r['took']:>5.1f} s"
        )
    runner, deployers, never = results[1], results[2], results[3]
    ok = lambda good: "ok" if good else "MISSED"  # noqa: E731
    print(
        f"target: runner's worst <= lock_timeout + 0.5 s ({timeout + 0.5:g} s): {ok(runner['worst'] <= timeout + 0.5)}; "
        f"<= 0.3x psql's: {ok(runner['worst'] <= 0.3 * baseline)}; applied once the reader ended: "
        f"{ok(runner['applied'] and runner['codes'] == [0])}"
    )
    once = sum(out.count("OK (") for out in deployers["outputs"])
    print(f"8 deployers: applied by {once} of them, the others skipped it: {ok(once == 1 and deployers['applied'])}")
    named = f"pid {never['reader']} " in (never["outputs"][0] or "")
    print(
        f"reader never ends: exit {never['codes'][0]}, applied {never['applied']}, blocker named {named}: "
        f"{ok(never['codes'] == [1] and not never['applied'] and named)}"
    )
    if os.environ.get("BENCH_VERBOSE"):
        for out in deployers["outputs"]:
            print(out)
    print("\nrunner's output in the never-ends phase:")
    print("\n".join("  " + line for line in (never["outputs"][0] or "").splitlines()[-6:]))


if __name__ == "__main__":
    main()
