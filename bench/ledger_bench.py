"""Benchmark of the ledger's statements in each migration's transaction: the row and the check after the file.

    .venv/bin/python bench/ledger_bench.py [--rows 1000 5000] [--n 300] [--repeat 3]

For a ledger of R rows, the server CPU (the backend's own, from /proc/PID/schedstat) of a
transaction holding only the runner's ledger statements for one migration (``ledger.record_applied``),
rolled back so that the ledger keeps its size, minus an empty transaction's: with the write counts
(``counted``, the default on any server with ``track_counts``) and with the digest of every row
(the fallback without ``track_counts``, and what every migration paid before).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--n", type=int, default=300, help="transactions per measurement")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    import psycopg

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bestrong.settings")
    os.environ["BESTRONG_ENV_FILE"] = os.devnull
    import django

    django.setup()
    from dbmigrations import ledger
    from dbmigrations.loader import migration_files
    from dbmigrations.runner import Transaction
    from dbmigrations.session import Part, Session

    work = Path(tempfile.mkdtemp(prefix="bestrong-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    server = pgserver.get_server(work / "data", cleanup_mode="delete")
    socket_dir = str(server.get_postmaster_info().socket_dir)
    (work / "m").mkdir()
    (work / "m" / "99999_bench.sql").write_text("-- Description: bench\nSELECT 1;\n")
    (file,) = migration_files(work / "m")

    def on_cpu(pid: int) -> float:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9

    print(f"server CPU per migration's ledger statements, µs (median of {args.repeat} x {args.n} transactions)")
    for rows in args.rows:
        with psycopg.connect(f"postgresql://postgres@/postgres?host={socket_dir}", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS rows_{rows}")
            admin.execute(f"CREATE DATABASE rows_{rows}")
        connection = psycopg.connect(f"postgresql://postgres@/rows_{rows}?host={socket_dir}", autocommit=True)
        session = Session(connection)
        session.batch([Part(("BEGIN", *ledger.create_statements(), "COMMIT"))])
        connection.execute(
            f"INSERT INTO {ledger.table()} (version, checksum, filename, description) SELECT lpad(g::text, 5, '0'), "
            "md5(g::text) || md5(g::text), g || '_x.sql', 'generated' FROM generate_series(1, %s) g",
            (rows,),
        )
        variants = {"empty transaction": None, "write counts": True, "digest of every row": False}
        found: dict[str, list[float]] = {name: [] for name in variants}
        pid = connection.info.backend_pid
        for _ in range(args.repeat):
            for name, counted in variants.items():
                transaction = Transaction()
                if counted is not None:
                    ledger.record_applied(transaction, file, applied_by="bench", counted=counted)
                batch = [Part(("BEGIN", *transaction.before, *transaction.after, "ROLLBACK"))]
                began = on_cpu(pid)
                for _ in range(args.n):
                    session.batch(batch)
                found[name].append((on_cpu(pid) - began) / args.n * 1e6)
        empty = statistics.median(found.pop("empty transaction"))
        cells = ", ".join(f"{name} {statistics.median(values) - empty:5.0f}" for name, values in found.items())
        print(f"  ledger of {rows:5d} rows: {cells}")
        connection.close()


if __name__ == "__main__":
    main()
