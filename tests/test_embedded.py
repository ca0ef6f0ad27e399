"""The embedded default database: started on first use, reused by later runs."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import ROOT, SHIPPED_MIGRATIONS, clean_env
from tests.test_startup import MODULES_AT_EXIT


def run(*args, pgdata, program=("manage.py",)):
    env = clean_env(SQL_EMBEDDED_PGDATA=str(pgdata), SQL_MIGRATIONS_DIR=str(SHIPPED_MIGRATIONS))
    proc = subprocess.run(
        [sys.executable, *program, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    return proc


def test_embedded_server_starts_on_first_use_and_is_reused():
    # Outside pytest's tmp dir (see conftest.pg_server for why).
    pgdata = Path(tempfile.mkdtemp(prefix="bestrong-embedded-")) / "pgdata"
    try:
        first = run("apply_sql_migrations", pgdata=pgdata)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "embedded" in first.stderr and "DATABASE_URL" in first.stderr
        assert "Applied 5, skipped 0 already applied" in first.stdout
        assert (pgdata / "PG_VERSION").exists()

        second = run("apply_sql_migrations", pgdata=pgdata, program=("-c", MODULES_AT_EXIT))
        assert second.returncode == 0, second.stdout + second.stderr
        assert "Applied 0, skipped 5 already applied, 0 pending." in second.stdout
        # A running server is found from its postmaster.pid: pgserver only starts servers.
        modules = next(line for line in reversed(second.stderr.splitlines()) if line.startswith("MODULES "))
        assert not [m for m in modules.split() if m.split(".")[0] == "pgserver"]

        # Stopped, it starts again on the next use and still holds the first run's work.
        stop = run("embedded_db", "stop", pgdata=pgdata)
        assert "Stopped" in stop.stdout, stop.stdout + stop.stderr
        status = run("sql_migration_status", "--check", pgdata=pgdata)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "5 applied, 0 pending" in status.stdout
    finally:
        run("embedded_db", "stop", pgdata=pgdata)
        shutil.rmtree(pgdata.parent, ignore_errors=True)


def test_only_a_ready_server_that_runs_is_taken_from_its_postmaster_pid(tmp_path):
    from dbmigrations.embedded import running_socket_dir

    def postmaster(pid: int, status: str) -> Path:
        # PostgreSQL's layout: pid, data dir, start time, port, socket dir, listen address, shared memory, status.
        lines = [str(pid), str(tmp_path), "1700000000", "5432", "/run/sock", "", "  1  2", f"{status:<8}"]
        (tmp_path / "postmaster.pid").write_text("\n".join(lines) + "\n")
        return tmp_path

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert running_socket_dir(postmaster(alive.pid, "ready")) == "/run/sock"
        assert running_socket_dir(postmaster(alive.pid, "starting")) is None  # pgserver waits for it
    finally:
        alive.kill()
        alive.wait()
    assert running_socket_dir(postmaster(alive.pid, "ready")) is None  # left behind: pgserver starts a server
    (tmp_path / "postmaster.pid").unlink()
    assert running_socket_dir(tmp_path) is None
