"""Benchmark of apply_sql_migrations: bulk speed vs psql, memory, no-op time, round trips over a slow link.

    .venv/bin/python bench/apply_bench.py [--sizes 10,100,1000,5000] [--repeat 3] [--delay-ms 5]

Prints, in one run, for each size N (rounds interleaved, medians):
  * applying N generated migrations as a process vs `psql -1 -f` of the same SQL concatenated (the limit:
    one transaction for everything), as a ratio; and vs `psql -f` of the files as they are (each file's
    own BEGIN;…COMMIT;: one transaction, so one commit, per migration, like the runner);
  * where the time goes: the client's CPU (the Python process or psql), the server's CPU (every server
    process), and the time the server spent flushing WAL to disk (`fdatasync` at each COMMIT);
  * the runner's peak memory (maximum resident set size of the process);
then the whole-process time of a no-op run (nothing pending), and round trips after connecting, counted by
a loopback proxy that adds DELAY ms each way: per applied migration, and for a no-op run; psql's count on
the same files for comparison.
Targets: 1 round trip per migration, <= 5 for a no-op run, N=1000 within 1.1x psql -1 and N=100 within 1.5x,
memory flat in N, no-op under 1 s.
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
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pgproxy import LatencyProxy  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


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


def per_file(directory: Path) -> str:
    """The migration files one after the other, wrappers kept: one transaction per file."""
    return "\n".join(path.read_text() for path in sorted(directory.glob("*.sql")))


@dataclass
class Run:
    """One process: wall seconds, its own CPU seconds, its server processes' CPU seconds (the backends of its
    connections) and every server process's, WAL flushes, peak RSS."""

    wall: float
    client_cpu: float
    backend_cpu: float
    server_cpu: float
    wal_syncs: int
    wal_sync_s: float
    maxrss_mib: float


class Server:
    """The throwaway server, with the CPU of all its processes and its WAL flushes measurable."""

    def __init__(self, work: Path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver._commands import POSTGRES_BIN_PATH
        import psycopg

        self.bin = POSTGRES_BIN_PATH
        self.server = pgserver.get_server(work / "data", cleanup_mode="delete")
        info = self.server.get_postmaster_info()
        self.socket_dir = str(info.socket_dir)
        self.pid = int(info.pid)
        self.admin = psycopg.connect(f"postgresql://postgres@/postgres?host={self.socket_dir}", autocommit=True)
        # Only on this throwaway server: time each WAL flush (pg_stat_wal.wal_sync_time).
        self.admin.execute("ALTER SYSTEM SET track_wal_io_timing = on")
        self.admin.execute("SELECT pg_reload_conf()")
        self.counter = iter(range(10**6))

    def fresh_db(self) -> str:
        name = f"bench_{next(self.counter)}"
        self.admin.execute(f'CREATE DATABASE "{name}"')
        return name

    def children(self) -> list[int]:
        found = []
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
        return found

    def cpu(self) -> float:
        """CPU seconds of the postmaster's ended children (backends reaped) and of its live ones."""
        fields = _stat(self.pid)
        total = (int(fields[13]) + int(fields[14])) / TICKS  # cutime, cstime
        for child in self.children():
            try:
                child_fields = _stat(child)
            except FileNotFoundError:
                continue
            total += (int(child_fields[11]) + int(child_fields[12])) / TICKS
        return total

    def wal(self) -> tuple[int, float]:
        syncs, ms = self.admin.execute("SELECT wal_sync, wal_sync_time FROM pg_stat_wal").fetchone()
        return int(syncs), float(ms) / 1000

    def settle(self, before: int) -> None:
        """Wait until the last client's backend has ended and been reaped (its CPU moves to cutime)."""
        deadline = time.monotonic() + 2
        while len(self.children()) > before and time.monotonic() < deadline:
            time.sleep(0.01)

    def url(self, name: str, via_proxy: LatencyProxy | None = None) -> str:
        if via_proxy:
            return f"postgresql://postgres@127.0.0.1:{via_proxy.port}/{name}?sslmode=disable"
        return f"postgresql://postgres@/{name}?host={self.socket_dir}"


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


class BackendWatch:
    """The CPU time of the server processes serving one database's clients, sampled every 10 ms while a
    command runs (a backend's title names its database; autovacuum's workers are left out): the
    server's work for that command alone, without the server's background processes."""

    def __init__(self, server: Server, database: str):
        self.server, self.title = server, f" {database} "
        self.seen: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> BackendWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()

    @property
    def cpu(self) -> float:
        return sum(self.seen.values())

    def _sample(self) -> None:
        ignored: set[int] = set()
        while True:
            finished = self.done.is_set()
            for pid in self.server.children():
                if pid in ignored:
                    continue
                try:
                    if pid not in self.seen:
                        title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                        if self.title not in title or "autovacuum" in title:
                            ignored.add(pid)
                            continue
                    on_cpu = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
                except (FileNotFoundError, ProcessLookupError):
                    continue
                self.seen[pid] = max(self.seen.get(pid, 0.0), on_cpu)
            if finished:
                return
            self.done.wait(0.01)


# Runs a command and writes its own peak memory and CPU time to a file. A forked child's peak memory
# counts the memory of the process it was forked from (before exec): forked from this small
# launcher rather than from the benchmark, the runner's and psql's figures are their own.
LAUNCHER = """
import os, sys, time
began = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{time.perf_counter() - began} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


class Failed(Exception):
    """A baseline that cannot do the job (psql -1 runs out of lock slots for thousands of tables)."""


def measure(server: Server, command: list[str], env: dict[str, str], database: str, *, may_fail: bool = False) -> Run:
    """Run ``command`` (working on ``database``) to completion; what it cost, client and server side."""
    baseline = len(server.children())
    cpu, (syncs, sync_s) = server.cpu(), server.wal()
    backends = BackendWatch(server, database)
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as usage, backends:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, usage.name, *command], env=env, stdout=out, stderr=out
        )
        wall, maxrss_kib, cpu_s = usage.read().split() if proc.returncode == 0 else ("0", "0", "0")
        if proc.returncode:
            out.seek(0)
            text = out.read().decode()
            if may_fail:
                server.settle(baseline)
                raise Failed(text.strip().splitlines()[0])
            sys.exit(f"{' '.join(command[:3])} failed: {text}")
    server.settle(baseline)
    after_syncs, after_sync_s = server.wal()
    return Run(
        float(wall),
        float(cpu_s),
        backends.cpu,
        server.cpu() - cpu,
        after_syncs - syncs,
        after_sync_s - sync_s,
        int(maxrss_kib) / 1024,
    )


# In-process: the CPU and wall time from apply_migrations() to the first migration's start (the files
# found, the ledger read, every pending file checked), in the checkout given as the first argument.
FIRST = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
import django
django.setup()
from dbmigrations import api
class Started(Exception):
    pass
def progress(event, payload):
    if event == "start":
        raise Started(f"{time.process_time() - cpu} {time.perf_counter() - wall}")
cpu, wall = time.process_time(), time.perf_counter()
try:
    api.apply_migrations(progress=progress)
except Started as started:
    print(started)
"""


FLOOR = "from django.db import connection\nwith connection.cursor() as c: c.execute('SELECT 1')"


def until_first(checkout: Path, env: dict[str, str]) -> tuple[float, float]:
    """CPU and wall seconds from the start of a run to its first migration's start."""
    env = {**env, "DJANGO_SETTINGS_MODULE": "bestrong.settings"}
    proc = subprocess.run(
        [sys.executable, "-c", FIRST, str(checkout)], env=env, capture_output=True, text=True, cwd=checkout
    )
    if proc.returncode:
        sys.exit(f"until_first failed: {proc.stderr}")
    cpu, wall = proc.stdout.split()
    return float(cpu), float(wall)


def median_run(runs: list[Run]) -> Run:
    return Run(*(statistics.median(getattr(r, f) for r in runs) for f in Run.__dataclass_fields__))


TARGETS = {100: 1.5, 1000: 1.1}


def _print_floor(runs: dict[str, list[Run]], reference: str, n: int) -> None:
    """The runner's time beyond the Django floor, against the reference; and the floor against what a target
    leaves beyond the reference (a ratio target t allows (t - 1) x the reference for start-up and everything)."""
    floor = statistics.median(r.wall for r in runs["Django floor"])
    limit = statistics.median(r.wall for r in runs[reference])
    beyond = statistics.median(
        (a.wall - f.wall) / b.wall for a, f, b in zip(runs["ours"], runs["Django floor"], runs[reference])
    )
    line = f"  ours beyond the Django floor: {beyond:4.2f}x {reference} (paired)"
    if n in TARGETS and reference == "psql -1":
        allowance = (TARGETS[n] - 1) * limit
        line += (
            f"; target {TARGETS[n]}x leaves {allowance:.2f} s beyond {reference} for start-up and the runner's own work: "
            f"the floor alone is {floor:.2f} s ({floor / allowance:.1f}x that)"
        )
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated numbers of migrations")
    parser.add_argument("--n", type=int, help="one size only (same as --sizes N)")
    parser.add_argument("--rt-n", type=int, default=50, help="migrations applied through the slow proxy")
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-round-trips", action="store_true", help="skip the slow-link part")
    parser.add_argument(
        "--compare",
        type=Path,
        nargs="+",
        default=[],
        metavar="CHECKOUT",
        help="also time the runner of other checkouts (e.g. the last release), labelled by folder name",
    )
    args = parser.parse_args()
    sizes = [args.n] if args.n else [int(s) for s in args.sizes.split(",")]

    work = Path(tempfile.mkdtemp(prefix="bestrong-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # after pgserver's own cleanup (LIFO)
    server = Server(work)

    # PYTHONDONTWRITEBYTECODE dropped: a process that cannot keep its .pyc files compiles the project's modules
    # again on every run, which a deploy (or a laptop) does once.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "POSTGRES_", "VERCEL", "NODE_ENV", "PYTHONDONTWRITEBYTECODE"))
    }
    env["BESTRONG_ENV_FILE"] = os.devnull

    apply = [sys.executable, str(ROOT / "manage.py"), "apply_sql_migrations", "-v", "0"]
    # The floor of any runner built as a Django command: a process with these settings that connects to the
    # same database and runs one statement.
    floor = [sys.executable, str(ROOT / "manage.py"), "shell", "-c", FLOOR]

    def apply_env(directory, dburl) -> dict[str, str]:
        return {**env, "DATABASE_URL": dburl, "SQL_MIGRATIONS_DIR": str(directory)}

    def psql(script_path, dburl, *, single: bool = True) -> list[str]:
        one = ["-1"] if single else []
        return [str(server.bin / "psql"), "-X", "-q", *one, "-v", "ON_ERROR_STOP=1", "-f", str(script_path), dburl]

    print(f"PostgreSQL {server.admin.info.server_version}, medians of {args.repeat} interleaved rounds")
    print(
        "  CPU: the client process (the runner or psql), the server processes of its connections, every server "
        "process; WAL flush: the server's fdatasync calls and their time"
    )
    noop_dir, noop_db = None, None
    for n in sizes:
        directory = work / f"m{n}"
        generate(directory, n)
        whole, files = work / f"all{n}.sql", work / f"files{n}.sql"
        whole.write_text(concatenated(directory))
        files.write_text(per_file(directory))
        runs: dict[str, list[Run]] = {"ours": [], "psql -1": [], "psql per file": [], "Django floor": []}
        for checkout in args.compare:
            runs[checkout.name] = []
        single_failed = None
        for _ in range(args.repeat):
            if single_failed is None:
                try:
                    db = server.fresh_db()
                    runs["psql -1"].append(measure(server, psql(whole, server.url(db)), env, db, may_fail=True))
                except Failed as error:
                    single_failed = str(error)
            db = server.fresh_db()
            runs["psql per file"].append(measure(server, psql(files, server.url(db), single=False), env, db))
            for checkout in args.compare:
                other = [sys.executable, str(checkout / "manage.py"), *apply[2:]]
                db = server.fresh_db()
                runs[checkout.name].append(measure(server, other, apply_env(directory, server.url(db)), db))
            name = server.fresh_db()
            runs["Django floor"].append(measure(server, floor, apply_env(directory, server.url(name)), name))
            runs["ours"].append(measure(server, apply, apply_env(directory, server.url(name)), name))
        if noop_dir is None or n == 1000:
            noop_dir, noop_db = directory, name
        medians = {k: median_run(v) for k, v in runs.items() if v}
        reference = "psql -1" if single_failed is None else "psql per file"
        limit = medians[reference].wall
        print(
            f"N={n}" + (f"   (psql -1 failed: {single_failed}; ratios against psql per file)" if single_failed else "")
        )
        for label, run in medians.items():
            walls = ", ".join(f"{r.wall:.2f}" for r in runs[label])
            # Load from other jobs only ever slows a round down: the fastest round is the least disturbed; and
            # the ratio within each round (both measured within seconds of each other), its median.
            fastest = min(r.wall for r in runs[label]) / min(r.wall for r in runs[reference])
            paired = statistics.median(a.wall / b.wall for a, b in zip(runs[label], runs[reference]))
            print(
                f"  {label:14s} {run.wall:7.2f} s {run.wall / limit:5.2f}x (fastest rounds {fastest:4.2f}x, "
                f"paired {paired:4.2f}x)  "
                f"CPU: client {run.client_cpu:5.2f} s, "
                f"its backend {run.backend_cpu:5.2f} s, server {run.server_cpu:5.2f} s  WAL flush {run.wal_syncs:5.0f}x "
                f"{run.wal_sync_s:5.2f} s  peak {run.maxrss_mib:4.0f} MiB  (walls {walls})"
            )

        _print_floor(runs, reference, n)

        firsts: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            for checkout in (ROOT, *args.compare):
                db = server.fresh_db()
                label = "ours" if checkout == ROOT else checkout.name
                firsts.setdefault(label, []).append(until_first(checkout, apply_env(directory, server.url(db))))
        print(
            "  before the first migration starts (files read, ledger read, every pending file checked): "
            + ", ".join(
                f"{label} {statistics.median(c for c, _ in values):.3f} s CPU / {statistics.median(w for _, w in values):.3f} s"
                for label, values in firsts.items()
            )
        )

    noop = median_run(
        [measure(server, apply, apply_env(noop_dir, server.url(noop_db)), noop_db) for _ in range(args.repeat)]
    )
    print(
        f"no-op apply, {len(list(noop_dir.glob('*.sql')))} files (whole process): {noop.wall:6.3f} s, "
        f"client CPU {noop.client_cpu:.2f} s, peak {noop.maxrss_mib:.0f} MiB   (target < 1 s)"
    )
    if args.no_round_trips:
        return

    small = work / "small"
    generate(small, args.rt_n)
    small_script = work / "small.sql"
    small_script.write_text(concatenated(small))
    proxy = LatencyProxy(server.socket_dir, None, args.delay_ms)

    def timed(command, command_env) -> float:
        began = time.perf_counter()
        proc = subprocess.run(command, env=command_env, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{command[2]} failed: {proc.stdout}{proc.stderr}")
        return time.perf_counter() - began

    name = server.fresh_db()
    proxy.reset()
    t_slow = timed(apply, apply_env(small, server.url(name, proxy)))
    rt_apply, rt_startup = proxy.round_trips, proxy.startup_round_trips
    proxy.reset()
    t_slow_noop = timed(apply, apply_env(small, server.url(name, proxy)))
    rt_noop = proxy.round_trips
    proxy.reset()
    t_slow_psql = timed(psql(small_script, server.url(server.fresh_db(), proxy)), env)
    rt_psql = proxy.round_trips
    print(
        f"round trips, {args.delay_ms:g} ms each way, {args.rt_n} migrations (after connecting; "
        f"start-up took {rt_startup}):"
    )
    print(
        f"  apply:  {rt_apply:4d} total = {(rt_apply - rt_noop) / args.rt_n:4.2f} per migration + {rt_noop} "
        f"(target 1 per migration)   {t_slow:5.2f} s"
    )
    print(f"  no-op:  {rt_noop:4d}   (target <= 5)   {t_slow_noop:5.2f} s")
    print(
        f"  psql -1 -f on the same SQL: {rt_psql} round trips   {t_slow_psql:5.2f} s"
        f"   (apply/psql time ratio {t_slow / t_slow_psql:4.2f}x)"
    )
    server.admin.close()


if __name__ == "__main__":
    main()
