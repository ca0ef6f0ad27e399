"""Server failures outside a file's ordinary statements: deferred constraints, lost sessions, server lock_timeout."""

from dbmigrations.executor import LOCK_KEY
from tests.conftest import migration, write_files

DEFERRED = """CREATE TABLE IF NOT EXISTS d (v int, CONSTRAINT d_v_key UNIQUE (v) DEFERRABLE INITIALLY DEFERRED);
INSERT INTO d VALUES (1), (1);"""


def test_deferred_constraint_failing_at_commit_is_a_failure_not_a_concurrent_apply(call, database, migrations_dir):
    write_files(migrations_dir, {"001_deferred.sql": migration("001_deferred", DEFERRED)})
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1, result.output
    assert "concurrently" not in result.output
    assert "Applying 001_deferred … FAILED" in result.stdout
    assert f"{migrations_dir / '001_deferred.sql'}:9:1: ERROR 23505" in result.stderr
    assert "Raised at COMMIT by a deferred constraint" in result.stderr
    assert "Traceback" not in result.stderr
    assert database.tables() == {"schema_migrations"} and database.versions() == []


def test_deferred_constraint_in_a_down_file(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration(
                "001_t",
                "CREATE TABLE IF NOT EXISTS d (v int, CONSTRAINT d_v_key UNIQUE (v) DEFERRABLE INITIALLY DEFERRED);",
            ),
            "001_t.down.sql": migration("001_t", "INSERT INTO d VALUES (1), (1);\nDROP TABLE IF EXISTS e;"),
        },
    )
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    result = call("rollback_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1, result.output
    assert "001_t.down.sql:9:1: ERROR 23505" in result.stderr and "Traceback" not in result.stderr
    assert database.versions() == ["001"] and database.query("SELECT count(*) FROM d") == [(0,)]


def test_a_migration_that_ends_its_own_session_is_one_line_exit_1(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_kill.sql": migration(
                "001_kill", "CREATE TABLE IF NOT EXISTS k (id int);\nSELECT pg_terminate_backend(pg_backend_pid());"
            )
        },
    )
    result = call("apply_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.stderr
    assert "terminating connection" in result.stderr or "database error" in result.stderr
    assert database.versions() == [] and "k" not in database.tables()


def test_servers_own_lock_timeout_while_another_runner_holds_the_lock(call, database, migrations_dir):
    write_files(migrations_dir, {"001_a.sql": migration("001_a", "CREATE TABLE IF NOT EXISTS a (id int);")})
    url = database.url + ("&" if "?" in database.url else "?") + "options=-c%20lock_timeout%3D300"
    with database.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        result = call("apply_sql_migrations", migrations=migrations_dir, database_url=url)
    assert result.returncode == 2, result.output
    assert "gave up waiting for the migration lock (the server's lock_timeout)" in result.stderr
    assert "Traceback" not in result.stderr and "a" not in database.tables()


def non_loopback_address() -> str | None:
    import socket

    import psutil

    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_reset_checks_the_server_it_really_reached(manage, database, pg_server):
    """An empty host leaves the choice to libpq (PGHOST): the live connection is checked before dropping."""
    import pytest

    from bench.pgproxy import LatencyProxy

    address = non_loopback_address()
    if address is None or not pg_server.host.startswith("/"):
        pytest.skip("needs a non-loopback IPv4 address on this machine and the embedded test server")
    proxy = LatencyProxy(pg_server.host, None, delay_ms=0, listen_host=address)  # "another machine"
    database.query("CREATE TABLE keep (id int)")
    url = f"postgresql://{pg_server.user}@/{database.name}"  # no host: libpq takes PGHOST
    result = manage("reset_db", "--no-input", database_url=url, env={"PGHOST": address, "PGPORT": str(proxy.port)})
    assert result.returncode == 2, result.output
    assert f"reached the server at {address}, which is not on this machine" in result.stderr
    assert "keep" in database.tables()
    allowed = manage(
        "reset_db", "--no-input", "--allow-remote", database_url=url, env={"PGHOST": address, "PGPORT": str(proxy.port)}
    )
    assert allowed.returncode == 0, allowed.output
    assert "keep" not in database.tables()


def test_reset_prompt_names_the_server_reached(manage, database):
    database.query("CREATE TABLE keep (id int)")
    result = manage("reset_db", input="no\n")
    assert result.returncode == 0
    assert "(server " in result.stdout and "Reset cancelled." in result.stdout
    assert "keep" in database.tables()


def test_a_missing_migrations_folder_is_refused_not_a_green_no_op(call, database, tmp_path):
    result = call("apply_sql_migrations", migrations=tmp_path / "migratoins")
    assert result.returncode == 2
    assert f"the migrations folder {tmp_path / 'migratoins'} does not exist (SQL_MIGRATIONS_DIR)" in result.stderr
    assert database.tables() == set()


def test_failed_rollback_step_closes_its_progress_line(call, database, migrations_dir):
    write_files(
        migrations_dir,
        {
            "001_t.sql": migration("001_t", "CREATE TABLE IF NOT EXISTS t (id int);"),
            "001_t.down.sql": migration("001_t", "DROP TABLE nosuch;"),
        },
    )
    assert call("apply_sql_migrations", migrations=migrations_dir).returncode == 0
    result = call("rollback_sql_migrations", migrations=migrations_dir)
    assert result.returncode == 1
    assert "Rolling back 001_t … FAILED" in result.stdout
    assert "001_t.down.sql:8:1: ERROR 42P01" in result.stderr
    assert database.versions() == ["001"] and "t" in database.tables()
