"""Start-up benchmark: the commands that have little to do, against a Django floor measured in the same run.

    .venv/bin/python bench/startup_bench.py [--n 1000] [--repeat 15] [--steps 100] [--baseline DIR] [--instructions]

Generates N migrations with down files (apply_bench's shapes) in a temp dir, applies them to
a database of a temporary server, then times whole processes, round-robin (one of each per
round, so a busy moment of the shared machine touches them all alike):
  * the floor: `manage.py shell --no-imports -c "<SELECT 1>"`, a Django process with the project's
    settings that connects and runs `SELECT 1` (settings, apps, models, the management machinery);
  * the same without the management machinery: `django.setup()` + `SELECT 1` in a script;
  * Django alone: that script with this app left out of INSTALLED_APPS (what the app adds to every
    process, runserver and gunicorn workers included, is the difference);
  * `apply_sql_migrations` with nothing pending (N files on disk, all applied);
  * `sql_migration_status`;
  * `rollback_sql_migrations --steps S`, up to its first step (the first "Rolling back" line): what
    it does before running anything. The S migrations are applied again after each round, untimed.
Prints medians of wall and CPU time (CPU: the process's user + system time, steadier on a loaded
machine; not for the rollback, which is stopped at its first step), and the medians of each round's
difference and ratio to that round's floor (a busy moment slows both alike); and the fastest wall time
of the rounds (the least disturbed) with its difference to the fastest floor. Target: a no-op apply at most the floor + 0.03 s.
With --baseline, the same commands of another checkout (the code before a change) run in the same
rounds, each compared with its own floor. With --instructions, each command (not the rollback) also runs once
under valgrind (cachegrind, no cache simulation) and its instruction count is printed with its difference
to its floor: a figure the machine's load does not change. The child processes write bytecode (.pyc) as a normal install does, and their output is piped with Python's
default buffering, whatever PYTHONDONTWRITEBYTECODE and PYTHONUNBUFFERED say here.
"""

from __future__ import annotations

import argparse
import atexit
import os
import re
import resource
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

SELECT_1 = "from django.db import connection; connection.cursor().execute('select 1')"
SCRIPT = """
import os, sys
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bestrong.settings")
if WITHOUT_APP:
    from django.conf import settings
    import bestrong.settings as project
    names = {name: getattr(project, name) for name in dir(project) if name.isupper()}
    names["INSTALLED_APPS"] = [app for app in names["INSTALLED_APPS"] if app != "dbmigrations"]
    settings.configure(**names)
import django
django.setup()
SELECT_1
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one process; it must exit 0."""
    began, began_cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - began, children_cpu() - began_cpu
    if proc.returncode:
        raise SystemExit(f"{' '.join(command[1:4])} … failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return wall, cpu


def instructions(command: list[str], env: dict[str, str]) -> int:
    """Instructions one process executes (user space, every thread), counted by valgrind's cachegrind."""
    counting = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *command]
    proc = subprocess.run(counting, cwd=ROOT, env=env, capture_output=True, text=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if proc.returncode or not found:
        raise SystemExit(f"valgrind {' '.join(command[1:4])} … failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def until_first_step(command: list[str], env: dict[str, str], marker: str) -> float:
    """Wall seconds from the process's start to the first output line starting with ``marker``."""
    began = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = None
    for line in proc.stdout:
        if first is None and line.startswith(marker):
            first = time.perf_counter() - began
    proc.wait()
    if proc.returncode or first is None:
        raise SystemExit(f"{' '.join(command[1:4])} … failed ({proc.returncode}):\n{proc.stderr.read()}")
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--steps", type=int, default=100, help="migrations rolled back per round")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="another checkout of the project (e.g. `git worktree add /tmp/main main`), timed in the same rounds",
    )
    parser.add_argument(
        "--instructions", action="store_true", help="also count each command's instructions once (needs valgrind)"
    )
    args = parser.parse_args()
    if args.instructions and not shutil.which("valgrind"):
        parser.error("--instructions needs valgrind (apt-get install valgrind)")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    import psycopg

    work = Path(tempfile.mkdtemp(prefix="bestrong-startup-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # after pgserver's own cleanup (LIFO)
    server = pgserver.get_server(work / "data", cleanup_mode="delete")
    socket_dir = str(server.get_postmaster_info().socket_dir)
    with psycopg.connect(f"postgresql://postgres@/postgres?host={socket_dir}", autocommit=True) as admin:
        admin.execute("CREATE DATABASE bench")
        server_version = admin.info.server_version

    migrations = work / "migrations"
    generate(migrations, args.n)
    for up in migrations.glob("*.sql"):
        number = int(up.name.split("_")[0])
        (migrations / f"{up.stem}.down.sql").write_text(f"DROP TABLE bench_{number};\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DATABASE_URL", "POSTGRES_", "VERCEL", "NODE_ENV", "SQL_", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
        )
    }
    env.update(
        BESTRONG_ENV_FILE=os.devnull,
        DATABASE_URL=f"postgresql://postgres@/bench?host={socket_dir}",
        SQL_MIGRATIONS_DIR=str(migrations),
        SQL_SEEDS_DIR=str(work / "seeds"),
        XDG_CACHE_HOME=str(work / "cache"),
    )
    checkouts = {"": ROOT}
    if args.baseline:
        checkouts["baseline: "] = Path(args.baseline).resolve()
    scenarios: dict[str, tuple[str, list[str]]] = {}  # name → (its floor's name, command)
    rollbacks: dict[str, tuple[str, list[str]]] = {}
    for label, root in checkouts.items():
        python, manage = sys.executable, [sys.executable, str(root / "manage.py")]
        script = SCRIPT.replace("ROOT", repr(str(root))).replace("SELECT_1", SELECT_1)
        floor = f"{label}floor: manage.py shell, SELECT 1"
        scenarios[floor] = (floor, [*manage, "shell", "--no-imports", "-c", SELECT_1])
        scenarios[f"{label}django.setup() + SELECT 1"] = (floor, [python, "-c", script.replace("WITHOUT_APP", "False")])
        scenarios[f"{label}  the same, without this app"] = (
            floor,
            [python, "-c", script.replace("WITHOUT_APP", "True")],
        )
        scenarios[f"{label}no-op apply_sql_migrations"] = (floor, [*manage, "apply_sql_migrations"])
        scenarios[f"{label}sql_migration_status"] = (floor, [*manage, "sql_migration_status"])
        rollbacks[f"{label}rollback --steps {args.steps}, to 1st step"] = (
            floor,
            [*manage, "rollback_sql_migrations", "--steps", str(args.steps)],
        )
    apply = [sys.executable, str(ROOT / "manage.py"), "apply_sql_migrations", "-v", "0"]
    run(apply, env)
    for _, command in scenarios.values():  # warm: .pyc files, the OS file cache
        run(command, env)
    wall: dict[str, list[float]] = {name: [] for name in [*scenarios, *rollbacks]}
    cpu: dict[str, list[float]] = {name: [] for name in scenarios}
    for _ in range(args.repeat):
        for name, (_, command) in scenarios.items():
            seconds, used = run(command, env)
            wall[name].append(seconds)
            cpu[name].append(used)
        for name, (_, command) in rollbacks.items():
            wall[name].append(until_first_step(command, env, "Rolling back "))
            run(apply, env)  # the rolled-back migrations again, for the next round
    floors = {name: floor for name, (floor, _) in [*scenarios.items(), *rollbacks.items()]}

    def paired(times: dict[str, list[float]], name: str) -> tuple[float, float, float]:
        """Median time, median of the rounds' differences to the floor (a busy round touches both), ratio."""
        floor, own = times[floors[name]], times[name]
        difference = statistics.median(t - f for t, f in zip(own, floor, strict=True))
        return statistics.median(own), difference, statistics.median(t / f for t, f in zip(own, floor, strict=True))

    print(
        f"PostgreSQL {server_version}, {args.n} migrations with down files, all applied; "
        f"{args.repeat} round-robin rounds, whole processes; medians, and medians of each round's difference and ratio "
        "to its checkout's floor" + (f"; baseline: {checkouts['baseline: ']}" if args.baseline else "")
    )
    width = max(map(len, wall)) + 2
    print(
        f"{'':<{width}}{'wall':>8}{'- floor':>9}{'ratio':>7}{'CPU':>9}{'- floor':>9}{'ratio':>7}"
        f"{'wall min':>10}{'- floor':>9}"
    )
    for name in sorted(wall, key=lambda n: n.startswith("baseline")):
        cells = "{:8.3f}{:+9.3f}{:6.2f}x".format(*paired(wall, name))
        fastest = min(wall[name])  # the round least disturbed by other work
        least = f"{fastest:10.3f}{fastest - min(wall[floors[name]]):+9.3f}"
        cells += "{:9.3f}{:+9.3f}{:6.2f}x".format(*paired(cpu, name)) if name in cpu else " " * 25
        print(f"{name:<{width}}{cells}{least}")
    print("target: no-op apply_sql_migrations at most the floor + 0.030 s")
    if args.instructions:
        counts = {name: instructions(command, env) for name, (_, command) in scenarios.items()}
        print("\ninstructions (valgrind, one run each; the load does not change them)")
        for name in sorted(counts, key=lambda n: n.startswith("baseline")):
            beyond = counts[name] - counts[floors[name]]
            print(f"{name:<{width}}{counts[name] / 1e6:8.0f} M{beyond / 1e6:+9.0f} M")


if __name__ == "__main__":
    main()
