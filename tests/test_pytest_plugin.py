"""The pytest plugin, run by pytest itself (pytester) on a small generated Django project."""

from __future__ import annotations

import os
import textwrap
import uuid
from importlib.metadata import entry_points

import pytest

from tests.conftest import CLEARED_ENV, migration, write_files

pytest_plugins = ["pytester"]

SETTINGS = """
import os
from pathlib import Path

from dbmigrations.database import database_settings

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "sample"
INSTALLED_APPS = ["dbmigrations"]
DATABASES = {"default": database_settings({"DATABASE_URL": os.environ["SAMPLE_DATABASE_URL"]})}
USE_TZ = True
"""

HELPERS = """
from django.db import connection


def sql(query):
    with connection.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchall() if cursor.description else []


def tables():
    return {r[0] for r in sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
"""

SEED = """-- Seed: 001_seed_members
BEGIN;
INSERT INTO members (name) SELECT n FROM (VALUES ('ada'), ('grace')) v(n)
WHERE NOT EXISTS (SELECT 1 FROM members);
COMMIT;
"""


def test_the_plugin_is_installed_as_a_pytest11_entry_point():
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("dbmigrations") == "dbmigrations.pytest_plugin", (
        "the package is not installed with its entry point: run `pip install -e .`"
    )


class Sample:
    """A Django project in the pytester directory, pointed at a database name unique to the test."""

    def __init__(self, pytester: pytest.Pytester, pg_server):
        self.pytester = pytester
        self.server = pg_server
        self.name = f"plug_{uuid.uuid4().hex[:10]}"
        self.test_name = f"test_{self.name}"
        pytester.makepyfile(sample_settings=SETTINGS, helpers=HELPERS)
        write_files(
            pytester.path / "migrations",
            {
                "001_members.sql": migration(
                    "001_members", "CREATE TABLE IF NOT EXISTS members (id serial PRIMARY KEY, name text);"
                ),
                "002_member_email.sql": migration(
                    "002_member_email", "ALTER TABLE members ADD COLUMN IF NOT EXISTS email text;"
                ),
            },
        )
        write_files(pytester.path / "seeds" / "development", {"001_seed_members.sql": SEED})

    def ini(self, *lines: str) -> None:
        self.pytester.makeini("\n".join(["[pytest]", "DJANGO_SETTINGS_MODULE = sample_settings", *lines]))

    def tests(self, source: str) -> None:
        self.pytester.makepyfile(test_sample=textwrap.dedent(source))

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist", *args, timeout=240
        )

    def databases(self) -> set[str]:
        with self.server.connect() as admin:
            return {
                r[0]
                for r in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"%{self.name}%",))
            }


@pytest.fixture
def sample(pytester, pg_server, monkeypatch):
    for name in (*CLEARED_ENV, "DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER"):
        monkeypatch.delenv(name, raising=False)
    project = Sample(pytester, pg_server)
    monkeypatch.setenv("SAMPLE_DATABASE_URL", pg_server.url(project.name))
    monkeypatch.setenv("BESTRONG_ENV_FILE", os.devnull)
    yield project
    with pg_server.connect() as admin:  # --reuse-db runs leave their test database behind
        for name in project.databases():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_enabled_by_ini_builds_the_test_database_from_the_sql_migrations(sample):
    sample.ini("sql_migrations = true")
    sample.tests("""
        from helpers import sql, tables

        def test_schema_comes_from_the_sql_files(db, sql_migrations_applied):
            assert sql_migrations_applied == ["001", "002"]
            assert {"members", "schema_migrations"} <= tables()
            assert sql("SELECT column_name FROM information_schema.columns "
                       "WHERE table_name = 'members' ORDER BY 1") == [("email",), ("id",), ("name",)]
            assert sql("SELECT count(*) FROM members") == [(0,)]  # no seeds unless asked

        def test_writes_are_rolled_back_between_tests(db):
            sql("INSERT INTO members (name) VALUES ('x')")

        def test_after_the_write(db):
            assert sql("SELECT count(*) FROM members") == [(0,)]
    """)
    result = sample.run("--strict-markers")
    result.assert_outcomes(passed=3)
    assert sample.databases() == set()  # pytest-django dropped the test database; the real one was never made


def test_seeds_by_option_and_by_marker(sample):
    sample.ini("sql_migrations = true")
    sample.tests("""
        import pytest
        from helpers import sql

        @pytest.mark.sql_seeds
        def test_marked(db):
            assert sql("SELECT name FROM members ORDER BY name") == [("ada",), ("grace",)]

        def test_unmarked_does_not_see_the_marked_tests_seeds(db):
            assert sql("SELECT count(*) FROM members") == [(0,)]

        @pytest.mark.sql_seeds
        def test_marked_again_gets_them_once(db):
            assert sql("SELECT count(*) FROM members") == [(2,)]

        @pytest.mark.sql_seeds
        @pytest.mark.django_db(transaction=True)
        def test_marked_transactional_is_told_what_to_do():
            pass
    """)
    result = sample.run("--strict-markers")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*sql_seeds runs the seeds inside the test's transaction*"])

    sample.tests("""
        from helpers import sql

        def test_seeded(db):
            assert sql("SELECT count(*) FROM members") == [(2,)]
    """)
    sample.run("--sql-seeds").assert_outcomes(passed=1)
    sample.run().assert_outcomes(failed=1)  # neither option nor marker: no seeds


def test_inert_unless_enabled(sample):
    sample.ini()
    sample.tests("""
        from helpers import tables

        def test_plain_pytest_django(db):
            assert "members" not in tables() and "schema_migrations" not in tables()

        def test_fixture_says_how_to_enable(db, sql_migrations_applied):
            pass
    """)
    result = sample.run()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*dbmigrations pytest plugin is off; enable it with --sql-migrations*"])

    sample.ini("sql_migrations = true")
    sample.run("--no-sql-migrations", "-k", "plain").assert_outcomes(passed=1)


def test_option_enables_and_a_conftest_can_extend_it_further(sample):
    sample.ini()
    sample.pytester.makeconftest("""
        import pytest
        from helpers import sql

        @pytest.fixture(scope="session")
        def django_db_setup(django_db_setup, django_db_blocker):
            with django_db_blocker.unblock():
                sql("INSERT INTO members (name, email) VALUES ('from conftest', 'c@example.com')")
    """)
    sample.tests("""
        from helpers import sql

        def test_conftest_ran_after_the_migrations(db, sql_migrations_applied):
            assert sql_migrations_applied == ["001", "002"]
            assert sql("SELECT name, email FROM members") == [("from conftest", "c@example.com")]
    """)
    sample.run("--sql-migrations").assert_outcomes(passed=1)


def test_a_failing_migration_errors_the_tests_naming_the_line(sample):
    sample.ini("sql_migrations = true")
    write_files(
        sample.pytester.path / "migrations",
        {"003_broken.sql": migration("003_broken", "ALTER TABLE no_such_table ADD COLUMN x int;")},
    )
    sample.tests("""
        def test_needs_db(db):
            pass
    """)
    result = sample.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*SQL migrations of the test database 'default' failed:*",
            '*/migrations/003_broken.sql:8:1: ERROR 42P01: relation "no_such_table" does not exist',
        ]
    )


def test_reuse_db_applies_only_what_is_pending(sample):
    sample.ini("sql_migrations = true")
    sample.tests("""
        from helpers import sql

        def test_versions(db, sql_migrations_applied):
            print("VERSIONS", sql_migrations_applied)
    """)
    assert "VERSIONS ['001', '002']" in sample.run("--reuse-db", "-s").stdout.str()
    assert sample.databases() == {sample.test_name}  # kept for the next run
    write_files(
        sample.pytester.path / "migrations",
        {"003_member_age.sql": migration("003_member_age", "ALTER TABLE members ADD COLUMN IF NOT EXISTS age int;")},
    )
    assert "VERSIONS ['001', '002', '003']" in sample.run("--reuse-db", "-s").stdout.str()
