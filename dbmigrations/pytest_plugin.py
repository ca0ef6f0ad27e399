"""pytest plugin: build pytest-django's test database from the SQL migrations (and seeds).

Installed with the package (entry point ``pytest11: dbmigrations``) and inert until
enabled, by ``--sql-migrations`` or ``sql_migrations = true`` in the ini file. Then
pytest-django's ``django_db_setup`` is extended, not replaced: the original creates
the test databases, and this one applies every pending SQL migration to them once
per session (``--reuse-db`` keeps them: only what is pending runs).

Development seeds: with ``--sql-seeds`` or ``sql_seeds = true`` they run once after the
migrations and are committed, so every test of the session sees them. A test marked
``@pytest.mark.sql_seeds`` (without those options) gets them inside its own transaction
(pytest-django's ``db``), rolled back with it: no other test sees its seed rows.
"""

from __future__ import annotations

import types

import pytest

APPLIED = pytest.StashKey[dict]()
ENABLE_HINT = "enable it with --sql-migrations or `sql_migrations = true` in the ini file"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dbmigrations", "SQL migrations (dbmigrations)")
    group.addoption(
        "--sql-migrations",
        action="store_true",
        dest="sql_migrations",
        default=None,
        help="Build the test database by applying the SQL migrations (SQL_MIGRATIONS_DIR).",
    )
    group.addoption(
        "--no-sql-migrations",
        action="store_false",
        dest="sql_migrations",
        help="Do not apply the SQL migrations, whatever the ini file says.",
    )
    group.addoption(
        "--sql-seeds",
        action="store_true",
        dest="sql_seeds",
        default=None,
        help="Also run the development seeds (SQL_SEEDS_DIR/development) after the migrations.",
    )
    parser.addini("sql_migrations", "Apply the SQL migrations to the test database.", type="bool", default=False)
    parser.addini("sql_seeds", "Also run the development seeds after the migrations.", type="bool", default=False)
    parser.addini(
        "sql_migrations_databases", "Database aliases to migrate (default: default).", type="args", default=["default"]
    )


def _flag(config: pytest.Config, name: str) -> bool:
    value = config.getoption(name)
    return bool(config.getini(name) if value is None else value)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sql_seeds: the test needs the development seeds (dbmigrations runs them "
        "inside the test's transaction, rolled back after it)",
    )
    if not _flag(config, "sql_migrations"):
        return
    if not config.pluginmanager.hasplugin("django"):
        raise pytest.UsageError(
            "sql_migrations needs pytest-django (pip install pytest-django), "
            "which builds the test database that the SQL migrations are applied to"
        )
    # Registered now, after every installed plugin (pytest-django included), so that this
    # django_db_setup overrides the original and can request it; and only when enabled.
    holder = types.ModuleType(f"{__name__}.enabled")
    holder.django_db_setup = pytest.fixture(scope="session", name="django_db_setup")(migrated_django_db_setup)
    holder.sql_seeds_for_marked_tests = pytest.fixture(autouse=True)(sql_seeds_for_marked_tests)
    config.pluginmanager.register(holder, "dbmigrations-django-db-setup")


def _wants_seeds(request: pytest.FixtureRequest) -> bool:
    """Session-wide (committed) seeds: only when asked for the whole session."""
    return _flag(request.config, "sql_seeds")


def sql_seeds_for_marked_tests(request: pytest.FixtureRequest):
    """Run the development seeds inside a ``@pytest.mark.sql_seeds`` test's own transaction."""
    if request.node.get_closest_marker("sql_seeds") is None or _wants_seeds(request):
        yield
        return
    marker = request.node.get_closest_marker("django_db")
    if "transactional_db" in request.fixturenames or (marker and marker.kwargs.get("transaction")):
        pytest.fail(
            "@pytest.mark.sql_seeds runs the seeds inside the test's transaction, which a transactional "
            "test does not have: use the `db` fixture, or --sql-seeds for the whole session",
            pytrace=False,
        )
    request.getfixturevalue("db")
    from django.db import connections

    from dbmigrations import loader

    alias = request.config.getini("sql_migrations_databases")[0]
    with connections[alias].cursor() as cursor:
        for file in loader.seed_files():
            for statement in file.source.script.statements:
                cursor.execute(statement.sql)
    yield


def _aliases(request: pytest.FixtureRequest) -> list[str]:
    """The configured aliases whose test database pytest-django created in this session."""
    configured = request.config.getini("sql_migrations_databases")
    try:  # private in pytest-django (4.9–4.x): which aliases the session's tests asked for
        from pytest_django.fixtures import _get_databases_for_setup
    except ImportError:  # pragma: no cover - a future pytest-django: migrate every configured alias
        return list(configured)
    created, _ = _get_databases_for_setup(request.session.items)
    return [alias for alias in configured if alias in created]


def migrate_test_database(alias: str, *, seeds: bool) -> list[str]:
    """Apply pending SQL migrations (then the development seeds) to ``alias``; return the applied versions."""
    from dbmigrations import api, loader
    from dbmigrations import seeds as dev_seeds
    from dbmigrations.plan import State

    api.apply_migrations(alias)
    if seeds:
        files = loader.seed_files()
        if files:
            dev_seeds.run_seeds(api.connect(alias), files)
    return [e.version for e in api.migration_status(alias) if e.state == State.APPLIED]


def migrated_django_db_setup(django_db_setup, django_db_blocker, request):
    """pytest-django's test databases, with the SQL migrations (and seeds) applied."""
    from dbmigrations.exceptions import DbMigrationsError

    applied = request.config.stash.setdefault(APPLIED, {})
    seeds, failure = _wants_seeds(request), None
    with django_db_blocker.unblock():
        for alias in _aliases(request):
            try:
                applied[alias] = migrate_test_database(alias, seeds=seeds)
            except DbMigrationsError as error:  # reported outside the except: no chained traceback
                failure = f"SQL migrations of the test database {alias!r} failed:\n{error}"
                break
    if failure:
        pytest.fail(failure, pytrace=False)
    yield


@pytest.fixture(scope="session")
def sql_migrations_applied(request) -> list[str]:
    """Versions applied to the default test database (e.g. ``["001", "002"]``), after setting it up."""
    if not _flag(request.config, "sql_migrations"):
        pytest.fail(f"sql_migrations_applied: the dbmigrations pytest plugin is off; {ENABLE_HINT}", pytrace=False)
    request.getfixturevalue("django_db_setup")
    applied = request.config.stash.get(APPLIED, {})
    alias = request.config.getini("sql_migrations_databases")[0]
    if alias not in applied:
        pytest.fail(
            f"sql_migrations_applied: no test database was created for {alias!r} (request the `db` "
            "fixture or mark the test with @pytest.mark.django_db)",
            pytrace=False,
        )
    return applied[alias]
