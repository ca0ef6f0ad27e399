"""The embedded default database: started on first use, reused by later runs."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import ROOT, SHIPPED_MIGRATIONS, clean_env


def run(*args, pgdata):
    env = clean_env(SQL_EMBEDDED_PGDATA=str(pgdata), SQL_MIGRATIONS_DIR=str(SHIPPED_MIGRATIONS))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
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

        second = run("apply_sql_migrations", pgdata=pgdata)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "Applied 0, skipped 5 already applied, 0 pending." in second.stdout

        # Stopped, it starts again on the next use and still holds the first run's work.
        stop = run("embedded_db", "stop", pgdata=pgdata)
        assert "Stopped" in stop.stdout, stop.stdout + stop.stderr
        status = run("sql_migration_status", "--check", pgdata=pgdata)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "5 applied, 0 pending" in status.stdout
    finally:
        run("embedded_db", "stop", pgdata=pgdata)
        shutil.rmtree(pgdata.parent, ignore_errors=True)
