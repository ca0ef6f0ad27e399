"""runserver warns about pending SQL migrations, like Django does for its own, and never stops for a warning."""

import subprocess
import sys
import time

from tests.conftest import ROOT, clean_env, migration, write_files


def start_runserver(env: dict, log) -> str:
    """Start ``runserver`` until it serves (or 30 s pass), stop it, return what it printed."""
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", "127.0.0.1:0"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and server.poll() is None and "Quit the server" not in log.read_text():
                time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return log.read_text()


def test_runserver_warns_about_pending_sql_migrations(database, migrations_dir, tmp_path):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);")})
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    text = start_runserver(env, tmp_path / "runserver.log")
    assert "You have 1 unapplied SQL migration(s) in database 'default': 001_a." in text, text
    assert "apply_sql_migrations" in text


def test_runserver_names_modified_and_missing_files(manage, database, migrations_dir, tmp_path):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);"),
            "002_b.sql": migration("002_b", "CREATE TABLE IF NOT EXISTS b (id int);"),
        },
    )
    assert manage("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    (migrations_dir / "001_a.sql").write_text(migration("001_a", "CREATE TABLE IF NOT EXISTS a (id bigint);"))
    (migrations_dir / "002_b.sql").unlink()
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    text = start_runserver(env, tmp_path / "runserver.log")
    assert "Quit the server" in text, text
    assert "001_a.sql: (dbmigrations.W002) applied to database 'default' but changed on disk" in text, text
    assert "HINT: Never edit an applied migration" in text
    assert "002_b.sql: (dbmigrations.W003) recorded as applied in database 'default'" in text, text


def test_runserver_starts_with_an_unwritten_scaffold(manage, database, migrations_dir, tmp_path):
    assert manage("new_sql_migration", "add_things", migrations=migrations_dir).returncode == 0
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(migrations_dir))
    text = start_runserver(env, tmp_path / "runserver.log")
    assert "Quit the server" in text, text
    assert "001_add_things.sql: (dbmigrations.W006) empty file" in text
    assert "SystemCheckError" not in text and "(dbmigrations.E" not in text
    assert "You have 1 unapplied SQL migration(s) in database 'default': 001_add_things." in text
