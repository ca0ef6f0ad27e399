"""rollback_sql_migrations: down files, ledger rows, refusals, the lock."""

import shutil
import time

import pytest

from dbmigrations import snapshot
from dbmigrations.executor import LOCK_KEY
from dbmigrations.session import Session
from tests.conftest import SHIPPED_MIGRATIONS, clean_env, migration, spawn_manage, write_files

SHIPPED = ["001", "002", "003", "004", "005"]
THIS_DATABASE = (
    "database = (SELECT oid FROM pg_database WHERE datname = current_database())"  # pg_locks is cluster-wide
)


def schema(database):
    with database.connect() as connection:
        return snapshot.take(Session(connection))


def shipped_copy(tmp_path, *, without=()):
    """The shipped migrations in a directory of the test's own, minus the named files."""
    directory = tmp_path / "shipped"
    shutil.copytree(SHIPPED_MIGRATIONS, directory)
    for name in without:
        (directory / name).unlink()
    return directory


def apply(call, migrations, *args):
    result = call("apply_sql_migrations", *args, migrations=migrations)
    assert result.returncode == 0, result.output
    return result


@pytest.mark.parametrize("version", SHIPPED)
def test_up_down_up_round_trip_of_each_shipped_migration(call, database, version):
    previous = SHIPPED[: SHIPPED.index(version)]
    if previous:
        apply(call, SHIPPED_MIGRATIONS, "--target", previous[-1])
    before = schema(database)
    apply(call, SHIPPED_MIGRATIONS, "--target", version)
    after_up = schema(database)
    assert snapshot.differences(before, after_up), "the migration changed nothing"

    result = call("rollback_sql_migrations", migrations=SHIPPED_MIGRATIONS)
    assert result.returncode == 0, result.output
    assert f"Rolling back {version}_" in result.stdout
    assert database.versions() == previous
    assert snapshot.differences(before, schema(database)) == []

    apply(call, SHIPPED_MIGRATIONS, "--target", version)
    assert snapshot.differences(after_up, schema(database)) == []
    assert database.versions() == previous + [version]


def test_everything_down_leaves_only_the_ledger_and_up_again_rebuilds_the_same_schema(call, database):
    empty = schema(database)
    apply(call, SHIPPED_MIGRATIONS)
    full = schema(database)
    result = call("rollback_sql_migrations", "--to", "0", migrations=SHIPPED_MIGRATIONS)
    assert result.returncode == 0, result.output
    assert "Rolled back 5, 0 still applied." in result.stdout
    assert database.tables() == {"schema_migrations"}
    assert snapshot.differences(empty, schema(database)) == []
    apply(call, SHIPPED_MIGRATIONS)
    assert snapshot.differences(full, schema(database)) == []


def test_steps_rolls_back_newest_first(call, database):
    apply(call, SHIPPED_MIGRATIONS)
    result = call("rollback_sql_migrations", "--steps", "2", migrations=SHIPPED_MIGRATIONS)
    assert result.returncode == 0, result.output
    out = result.stdout
    assert out.index("Rolling back 005_add_index_to_questionnaires") < out.index("Rolling back 004_add_status")
    assert "Rolled back 2, 3 still applied." in out
    assert database.versions() == ["001", "002", "003"]
    columns = database.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'recommendations'")
    assert ("status",) not in columns


def test_to_keeps_that_version_applied(call, database):
    apply(call, SHIPPED_MIGRATIONS)
    result = call("rollback_sql_migrations", "--to", "002", migrations=SHIPPED_MIGRATIONS)
    assert result.returncode == 0, result.output
    assert database.versions() == ["001", "002"]
    assert "workouts" in database.tables() and "recommendation_jobs" not in database.tables()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--to", "7"), "--to 7: no migration file or ledger row has that version"),
        (("--steps", "6"), "--steps 6: only 5 migration(s) are applied"),
        (("--steps", "0"), "--steps 0: must be at least 1"),
    ],
)
def test_a_target_that_names_nothing_is_refused(call, database, args, message):
    apply(call, SHIPPED_MIGRATIONS)
    result = call("rollback_sql_migrations", *args, migrations=SHIPPED_MIGRATIONS)
    assert result.returncode == 2
    assert message in result.stderr
    assert database.versions() == SHIPPED


def test_nothing_applied_is_nothing_to_do_and_creates_no_ledger(call, database):
    result = call("rollback_sql_migrations", migrations=SHIPPED_MIGRATIONS)
    assert result.returncode == 0, result.output
    assert "Nothing to roll back." in result.stdout
    assert database.tables() == set()


def test_missing_down_file_refuses_before_changing_anything(call, database, tmp_path):
    migrations = shipped_copy(tmp_path, without=["004_add_status_to_recommendations.down.sql"])
    apply(call, migrations)
    before = schema(database)
    result = call("rollback_sql_migrations", "--steps", "2", migrations=migrations)
    assert result.returncode == 2
    assert (
        "004_add_status_to_recommendations.sql: no down file (004_add_status_to_recommendations.down.sql)"
        in result.stderr
    )
    assert "nothing was changed" in result.stderr
    # 005 has a down file, but nothing runs when any step cannot.
    assert database.versions() == SHIPPED
    assert snapshot.differences(before, schema(database)) == []


def test_checksum_drift_refuses(call, database, tmp_path):
    migrations = shipped_copy(tmp_path)
    apply(call, migrations)
    up = migrations / "005_add_index_to_questionnaires.sql"
    up.write_text(up.read_text() + "\n-- edited after it was applied\n")
    result = call("rollback_sql_migrations", migrations=migrations)
    assert result.returncode == 2
    assert "005_add_index_to_questionnaires.sql: changed since it was applied" in result.stderr
    assert database.versions() == SHIPPED
    assert database.query("SELECT 1 FROM pg_indexes WHERE indexname = 'idx_questionnaires_client_id'") == [(1,)]


def test_ledger_row_without_any_file_refuses(call, database, tmp_path):
    migrations = shipped_copy(tmp_path)
    apply(call, migrations)
    for name in ("005_add_index_to_questionnaires.sql", "005_add_index_to_questionnaires.down.sql"):
        (migrations / name).unlink()
    result = call("rollback_sql_migrations", migrations=migrations)
    assert result.returncode == 2
    assert "005_add_index_to_questionnaires: in the ledger but its migration file is missing" in result.stderr
    assert database.versions() == SHIPPED


def test_plan_prints_the_down_files_and_changes_nothing(call, database):
    apply(call, SHIPPED_MIGRATIONS)
    result = call("rollback_sql_migrations", "--plan", "--to", "3", migrations=SHIPPED_MIGRATIONS)
    assert result.returncode == 0, result.output
    assert result.stdout.splitlines() == [
        "Would roll back 2 migration(s), newest first:",
        "  005_add_index_to_questionnaires.down.sql  (one transaction)",
        "  004_add_status_to_recommendations.down.sql  (one transaction)",
    ]
    assert database.versions() == SHIPPED


def test_plan_reports_the_same_refusals(call, database, tmp_path):
    migrations = shipped_copy(tmp_path, without=["005_add_index_to_questionnaires.down.sql"])
    apply(call, migrations)
    result = call("rollback_sql_migrations", "--plan", migrations=migrations)
    assert result.returncode == 2
    assert "no down file" in result.stderr


@pytest.mark.parametrize("variable", ["NODE_ENV", "VERCEL_ENV"])
def test_production_is_refused_unless_allowed(call, database, variable):
    apply(call, SHIPPED_MIGRATIONS)
    refused = call("rollback_sql_migrations", migrations=SHIPPED_MIGRATIONS, env={variable: "production"})
    assert refused.returncode == 2
    assert "rollback refused in production" in refused.stderr
    assert "new forward migration" in refused.stderr
    assert database.versions() == SHIPPED

    plan = call("rollback_sql_migrations", "--plan", migrations=SHIPPED_MIGRATIONS, env={variable: "production"})
    assert plan.returncode == 0, plan.output
    assert "005_add_index_to_questionnaires.down.sql" in plan.stdout

    allowed = call(
        "rollback_sql_migrations", "--allow-production", migrations=SHIPPED_MIGRATIONS, env={variable: "production"}
    )
    assert allowed.returncode == 0, allowed.output
    assert database.versions() == SHIPPED[:4]


def test_failing_down_file_names_file_and_line_and_keeps_everything(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_a.sql": migration("001_a", "CREATE TABLE a (id int);"),
            "001_a.down.sql": migration("001_a_down", "DROP TABLE a;\nDROP TABLE not_there;"),
        },
    )
    apply(call, migrations_dir)
    result = call("rollback_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1
    assert '001_a.down.sql:9:1: ERROR 42P01: table "not_there" does not exist' in result.stderr
    assert "a" in database.tables()
    assert database.versions() == ["001"]


def test_down_file_with_concurrently_runs_outside_a_transaction(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration("001_t", "CREATE TABLE t (id int);"),
            "002_t_index.sql": migration(
                "002_t_index", "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id ON t (id);", wrap=False
            ),
            "002_t_index.down.sql": migration(
                "002_t_index_down", "DROP INDEX CONCURRENTLY IF EXISTS t_id;", wrap=False
            ),
        },
    )
    apply(call, migrations_dir)
    result = call("rollback_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 0, result.output
    assert "not atomic: ran outside a transaction" in result.stdout
    assert database.query("SELECT 1 FROM pg_indexes WHERE indexname = 't_id'") == []
    assert database.versions() == ["001"]
    assert database.query(f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND {THIS_DATABASE}") == [(0,)]


def test_lock_timeout_gives_up_and_changes_nothing(call, database):
    apply(call, SHIPPED_MIGRATIONS)
    with database.connect() as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        result = call("rollback_sql_migrations", "--lock-timeout", "0.3", migrations=SHIPPED_MIGRATIONS)
    assert result.returncode == 2
    assert "gave up waiting for the migration lock after 0.3 s" in result.stderr
    assert database.versions() == SHIPPED


def test_version_rolled_back_by_another_runner_meanwhile_is_skipped_and_its_down_undone(database, call):
    apply(call, SHIPPED_MIGRATIONS)
    env = clean_env(DATABASE_URL=database.url, SQL_MIGRATIONS_DIR=str(SHIPPED_MIGRATIONS))
    with database.connect() as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        runner = spawn_manage("rollback_sql_migrations", env=env)
        deadline = time.monotonic() + 30
        waiting = f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND {THIS_DATABASE}"
        while not other.execute(waiting).fetchone()[0]:
            assert time.monotonic() < deadline and runner.poll() is None, runner.communicate()
            time.sleep(0.05)
        # The "other runner" removes the row (but, unlike a real rollback, keeps the index).
        other.execute("DELETE FROM schema_migrations WHERE version = '005'")
        other.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, out + err
    assert "skipped (rolled back concurrently by another runner)" in out
    # Our down file ran inside the transaction that was then rolled back: the index is still there.
    assert database.query("SELECT 1 FROM pg_indexes WHERE indexname = 'idx_questionnaires_client_id'") == [(1,)]
    assert database.versions() == SHIPPED[:4]
