"""runserver warns about pending SQL migrations, like Django does for its own."""
import subprocess
import sys
import time

from tests.conftest import ROOT, clean_env, migration, write_files


def test_runserver_warns_about_pending_sql_migrations(database, migrations_dir, tmp_path):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);")})
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    log = tmp_path / "runserver.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", "127.0.0.1:0"],
                                  cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "Quit the server" not in log.read_text():
                time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(timeout=10)
    text = log.read_text()
    assert "You have 1 unapplied SQL migration(s) in database 'default': 001_a." in text, text
    assert "apply_sql_migrations" in text
