"""seed_dev: order, idempotency, rollback, the production guard, the schema check, --plan."""

from __future__ import annotations

import socket
import threading

import pytest
from psycopg import sql

from tests.conftest import SHIPPED_MIGRATIONS, SHIPPED_SEEDS, migration, write_files

LOG_TABLE = migration("001_seed_log", "CREATE TABLE seed_log (id serial PRIMARY KEY, name text UNIQUE NOT NULL);")


def seed(name: str, body: str, *, wrap: bool = True) -> str:
    """A seed file in the spec's format."""
    header = f"-- Seed: {name}\n-- Environment: development\n-- Description: test seed {name}\n\n"
    return header + (f"BEGIN;\n\n{body.strip()}\n\nCOMMIT;\n" if wrap else body.strip() + "\n")


def log(name: str) -> str:
    return f"INSERT INTO seed_log (name) VALUES ('{name}') ON CONFLICT (name) DO NOTHING;"


@pytest.fixture(autouse=True)
def development_env(monkeypatch):
    """In-process commands read os.environ: make it a developer's, whatever the CI sets."""
    for name in ("NODE_ENV", "VERCEL", "VERCEL_ENV"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project(tmp_path, call):
    """A migrations dir with the seed_log table (applied) and an empty seeds dir."""
    migrations = write_files(tmp_path / "migrations", {"001_seed_log.sql": LOG_TABLE})
    seeds = tmp_path / "seeds"
    (seeds / "development").mkdir(parents=True)
    (seeds / "production").mkdir()
    assert call("apply_sql_migrations", migrations=migrations).returncode == 0
    return migrations, seeds


def logged(database) -> list[str]:
    if "seed_log" not in database.tables():
        return []
    return [r[0] for r in database.query("SELECT name FROM seed_log ORDER BY id")]


def contents(database) -> dict[str, list[str]]:
    """Every public table's rows, as text, sorted: the whole database's data."""
    result = {}
    for table in sorted(database.tables()):
        query = sql.SQL("SELECT t::text FROM {} t ORDER BY 1").format(sql.Identifier(table))
        result[table] = [r[0] for r in database.query(query)]
    return result


# --- the shipped seeds -------------------------------------------------------------------------


def test_shipped_seeds_are_idempotent(call, database):
    assert call("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS).returncode == 0
    first = call("seed_dev", migrations=SHIPPED_MIGRATIONS, seeds=SHIPPED_SEEDS)
    assert first.returncode == 0, first.output
    after_first = contents(database)
    counts = {t: len(rows) for t, rows in after_first.items()}
    assert counts["admin_users"] == 2 and counts["clients"] == 3
    assert counts["questionnaires"] == 3 and counts["recommendations"] == 3 and counts["workouts"] == 9
    assert "Seeding 001_seed_admin_users … OK: 2 row(s) changed" in first.stdout
    assert "Seeding 002_seed_sample_clients … OK: 18 row(s) changed" in first.stdout
    assert "Seeded 2 file(s): 20 row(s) changed." in first.stdout

    second = call("seed_dev", migrations=SHIPPED_MIGRATIONS, seeds=SHIPPED_SEEDS)
    assert second.returncode == 0, second.output
    assert "Seeding 001_seed_admin_users … OK: 0 row(s) changed" in second.stdout
    assert "Seeding 002_seed_sample_clients … OK: 0 row(s) changed" in second.stdout
    assert "Seeded 2 file(s): 0 row(s) changed." in second.stdout
    assert contents(database) == after_first


def test_shipped_seeds_as_a_user_runs_them(manage, database):
    assert manage("apply_sql_migrations", migrations=SHIPPED_MIGRATIONS).returncode == 0
    result = manage("seed_dev", migrations=SHIPPED_MIGRATIONS, seeds=SHIPPED_SEEDS)
    assert result.returncode == 0, result.output
    assert "Seeded 2 file(s): 20 row(s) changed." in result.stdout
    emails = [r[0] for r in database.query("SELECT email FROM admin_users ORDER BY email")]
    assert emails == ["admin@example.com", "test@example.com"]


# --- order, counts, file rules -----------------------------------------------------------------


def test_numeric_order_not_string_order(call, database, project):
    migrations, seeds = project
    names = ["100_c", "002_a", "1000_e", "010_b", "999_d"]
    write_files(seeds / "development", {f"{n}.sql": seed(n, log(n)) for n in names})
    result = call("seed_dev", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    expected = ["002_a", "010_b", "100_c", "999_d", "1000_e"]
    assert logged(database) == expected
    printed = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("Seeding")]
    assert printed == expected


def test_rows_count_inserts_and_updates_and_no_ledger(call, database, project):
    migrations, seeds = project
    write_files(
        seeds / "development",
        {
            "001_three.sql": seed(
                "001_three",
                "INSERT INTO seed_log (name) VALUES ('a'), ('b'), ('c') "
                "ON CONFLICT (name) DO NOTHING;\nUPDATE seed_log SET name = name;",
            ),
            "002_unwrapped.sql": seed("002_unwrapped", log("d"), wrap=False),
            "003_do_block.sql": seed(
                "003_do_block",
                "DO $$ BEGIN INSERT INTO seed_log (name) VALUES ('e') ON CONFLICT (name) DO NOTHING; END $$;",
            ),
        },
    )
    first = call("seed_dev", migrations=migrations, seeds=seeds)
    assert first.returncode == 0, first.output
    assert "001_three … OK: 6 row(s) changed" in first.stdout  # 3 inserted + 3 updated
    assert "002_unwrapped … OK: 1 row(s) changed" in first.stdout
    assert "003_do_block … OK: 0 row(s) changed" in first.stdout
    assert "(writes inside DO blocks are not counted)" in first.stdout
    assert logged(database) == ["a", "b", "c", "d", "e"]
    # No ledger: the second run executes every file again (the UPDATE now touches all 5 rows).
    second = call("seed_dev", migrations=migrations, seeds=seeds)
    assert "001_three … OK: 5 row(s) changed" in second.stdout
    assert "002_unwrapped … OK: 0 row(s) changed" in second.stdout
    assert "Seeded 3 file(s): 5 row(s) changed." in second.stdout
    assert logged(database) == ["a", "b", "c", "d", "e"]


def test_production_seeds_are_never_run(call, database, project):
    migrations, seeds = project
    write_files(seeds / "development", {"001_dev.sql": seed("001_dev", log("dev"))})
    write_files(seeds / "production", {"001_prod.sql": seed("001_prod", log("prod"))})
    result = call("seed_dev", migrations=migrations, seeds=seeds)
    assert result.returncode == 0, result.output
    assert logged(database) == ["dev"]
    assert "prod" not in result.stdout


def test_no_seeds_is_not_an_error(call, database, project):
    migrations, seeds = project
    result = call("seed_dev", migrations=migrations, seeds=seeds)
    assert result.returncode == 0
    assert "No development seeds in" in result.stdout


@pytest.mark.parametrize(
    "files, where, message",
    [
        (
            {"001_ok.sql": seed("001_ok", log("ok")), "002_Bad.sql": seed("002_bad", log("x"))},
            "002_Bad.sql",
            "invalid file name",
        ),
        (
            {
                "001_ok.sql": seed("001_ok", log("ok")),
                "002_typo.sql": seed("002_typo", "INSERT INTO seed_log\nVALUS (1);"),
            },
            "002_typo.sql:8:1",
            'syntax error at or near "VALUS"',
        ),
        (
            {"001_ok.sql": seed("001_ok", log("ok")), "001_ok.down.sql": "DELETE FROM seed_log;"},
            "001_ok.down.sql",
            "down files",
        ),
        (
            {"001_ok.sql": seed("001_ok", log("ok")), "002_empty.sql": seed("002_empty", "-- nothing yet")},
            "002_empty.sql",
            "empty file",
        ),
        (
            {
                "001_ok.sql": seed("001_ok", log("ok")),
                "002_index.sql": seed("002_index", "CREATE INDEX CONCURRENTLY i ON seed_log (name);", wrap=False),
            },
            "002_index.sql:5:1",
            "each seed file runs in one transaction",
        ),
    ],
)
def test_invalid_seed_files_refused_before_running_any(call, database, tmp_path, files, where, message):
    migrations = write_files(tmp_path / "migrations", {"001_seed_log.sql": LOG_TABLE})
    assert call("apply_sql_migrations", migrations=migrations).returncode == 0
    seeds = tmp_path / "seeds"
    write_files(seeds / "development", files)
    result = call("seed_dev", migrations=migrations, seeds=seeds)
    assert result.returncode == 2, result.output
    assert where in result.stderr and message in result.stderr
    assert logged(database) == []


# --- failure ----------------------------------------------------------------------------------


def test_failure_rolls_back_the_file_and_stops(call, database, tmp_path):
    migrations = write_files(tmp_path / "migrations", {"001_seed_log.sql": LOG_TABLE})
    assert call("apply_sql_migrations", migrations=migrations).returncode == 0
    seeds = tmp_path / "seeds"
    write_files(
        seeds / "development",
        {
            "001_first.sql": seed("001_first", log("first")),
            # Line 7 inserts (succeeds), line 8 violates the unique key.
            "002_broken.sql": seed(
                "002_broken",
                "INSERT INTO seed_log (name) VALUES ('kept?');\nINSERT INTO seed_log (name) VALUES ('first');",
            ),
            "003_later.sql": seed("003_later", log("later")),
        },
    )
    result = call("seed_dev", migrations=migrations, seeds=seeds)
    assert result.returncode == 1, result.output
    assert "002_broken.sql:8:1: ERROR 23505: duplicate key value violates unique constraint" in result.stderr
    assert "DETAIL: Key (name)=(first) already exists." in result.stderr
    assert "Committed before it: 001_first. Not run: 003_later." in result.stderr
    assert "Seeding 002_broken … FAILED" in result.stdout
    assert "003_later" not in result.stdout
    assert logged(database) == ["first"]


# --- the production guard ---------------------------------------------------------------------


class Listener:
    """A TCP port that counts the connections made to it (and closes them at once)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def url(self) -> str:
        return f"postgresql://u:secret@127.0.0.1:{self.port}/x"

    def close(self):
        self.stopped.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener():
    probe = Listener()
    yield probe
    probe.close()


REFUSED = [
    ({"NODE_ENV": "production"}, [], "NODE_ENV=production"),
    ({"NODE_ENV": "Production"}, [], "NODE_ENV=Production"),
    ({"NODE_ENV": "production"}, ["--allow-env", "production"], "NODE_ENV=production"),
    ({"VERCEL_ENV": "production"}, [], "VERCEL_ENV=production"),
    ({"VERCEL_ENV": "production", "NODE_ENV": "development"}, [], "VERCEL_ENV=production"),
    ({"VERCEL": "1"}, [], "VERCEL=1"),
    ({"VERCEL": "1", "NODE_ENV": "development", "VERCEL_ENV": "development"}, [], "VERCEL=1"),
    ({"NODE_ENV": "staging"}, [], "NODE_ENV=staging is not a development environment"),
    ({"NODE_ENV": "staging"}, ["--allow-env", "qa"], "--allow-env staging"),
    ({"VERCEL_ENV": "preview"}, [], "VERCEL_ENV=preview is not a development environment"),
    ({"NODE_ENV": "production"}, ["--plan"], "NODE_ENV=production"),
]


@pytest.mark.parametrize("env, args, reason", REFUSED)
def test_guard_refuses_before_connecting(call, listener, tmp_path, env, args, reason):
    seeds = write_files(tmp_path / "seeds" / "development", {"001_a.sql": seed("001_a", log("a"))}).parent
    result = call("seed_dev", *args, seeds=seeds, env=env, database_url=listener.url())
    assert result.returncode == 2, result.output
    assert "seed_dev refused" in result.stderr and reason in result.stderr
    assert "Nothing was changed" in result.stderr
    assert listener.accepted == 0
    assert "secret" not in result.output and "connect" not in result.output


def test_guard_at_a_dead_port(call, tmp_path):
    seeds = write_files(tmp_path / "seeds" / "development", {"001_a.sql": seed("001_a", log("a"))}).parent
    result = call(
        "seed_dev", seeds=seeds, env={"NODE_ENV": "production"}, database_url="postgresql://u:secret@127.0.0.1:1/x"
    )
    assert result.returncode == 2
    assert "seed_dev refused in production (NODE_ENV=production)" in result.stderr
    assert "secret" not in result.output and "cannot connect" not in result.output


def test_the_probe_sees_a_connection_when_not_guarded(call, listener, tmp_path):
    """Control for the guard tests: without the guard, the command does reach the port."""
    seeds = write_files(tmp_path / "seeds" / "development", {"001_a.sql": seed("001_a", log("a"))}).parent
    result = call("seed_dev", seeds=seeds, env={"NODE_ENV": "development"}, database_url=listener.url())
    assert result.returncode == 2
    assert listener.accepted >= 1
    assert "cannot connect" in result.stderr and "secret" not in result.output


@pytest.mark.parametrize(
    "env, args",
    [
        ({}, []),
        ({"NODE_ENV": ""}, []),
        ({"NODE_ENV": "development"}, []),
        ({"NODE_ENV": "test"}, []),
        ({"VERCEL_ENV": "development"}, []),
        ({"NODE_ENV": "staging"}, ["--allow-env", "staging"]),
        ({"VERCEL_ENV": "preview", "NODE_ENV": "staging"}, ["--allow-env", "staging", "--allow-env", "preview"]),
    ],
)
def test_development_environments_run(call, database, tmp_path, env, args):
    migrations = write_files(tmp_path / "migrations", {"001_seed_log.sql": LOG_TABLE})
    assert call("apply_sql_migrations", migrations=migrations).returncode == 0
    seeds = write_files(tmp_path / "seeds" / "development", {"001_a.sql": seed("001_a", log("a"))}).parent
    result = call("seed_dev", *args, migrations=migrations, seeds=seeds, env=env)
    assert result.returncode == 0, result.output
    assert logged(database) == ["a"]


# --- the schema must be there -----------------------------------------------------------------


def test_pending_migrations_refused(call, database, tmp_path):
    migrations = write_files(
        tmp_path / "migrations",
        {
            "001_seed_log.sql": LOG_TABLE,
            "002_more.sql": migration("002_more", "CREATE TABLE more (id int);"),
        },
    )
    assert call("apply_sql_migrations", target="001", migrations=migrations).returncode == 0
    seeds = write_files(tmp_path / "seeds" / "development", {"001_a.sql": seed("001_a", log("a"))}).parent
    result = call("seed_dev", migrations=migrations, seeds=seeds)
    assert result.returncode == 2, result.output
    assert "1 migration(s) pending (002_more)" in result.stderr
    assert "apply_sql_migrations" in result.stderr
    assert logged(database) == []  # the seed would have worked: it was refused, not failed
    assert call("apply_sql_migrations", migrations=migrations).returncode == 0
    assert call("seed_dev", migrations=migrations, seeds=seeds).returncode == 0
    assert logged(database) == ["a"]


def test_never_migrated_database_refused(call, database):
    result = call("seed_dev", migrations=SHIPPED_MIGRATIONS, seeds=SHIPPED_SEEDS)
    assert result.returncode == 2, result.output
    assert "5 migration(s) pending (001_initial_schema," in result.stderr
    assert "relation" not in result.output
    assert database.tables() == set()  # not even the ledger was created


# --- --plan -----------------------------------------------------------------------------------


def test_plan_lists_without_connecting(call, listener):
    result = call("seed_dev", "--plan", seeds=SHIPPED_SEEDS, database_url=listener.url())
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Would run 2 development seed(s) from ")
    assert lines[1:] == ["  001_seed_admin_users  (1 statement(s))", "  002_seed_sample_clients  (4 statement(s))"]
    assert listener.accepted == 0
    assert "Seeding" not in result.output
