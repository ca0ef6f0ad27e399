"""The admin's read-only view of schema_migrations, driven with Django's test client.

The ledger lives in pytest-django's test database (on the harness's PostgreSQL
server), created by the real ``apply_sql_migrations``. Raw-SQL tables survive
Django's flush, so the ``ledger`` fixture drops them afterwards.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from tests.conftest import migration, write_files

LIST_URL = "/admin/dbmigrations/schemamigration/"
PASSWORD = "correct-horse-battery-9"


def detail_url(version: str, action: str = "change") -> str:
    return f"{LIST_URL}{version}/{action}/"


def sql(query: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def ledger_rows() -> dict[str, str]:
    return dict(sql("SELECT version, description FROM schema_migrations"))


@pytest.fixture
def ledger(transactional_db, settings, tmp_path):
    """Applies five migrations, then changes the disk: 002 edited, 003 deleted, 004 added (pending).

    Returns the migrations directory. Ledger: 001 ok, 002 modified, 003 missing, 999 ok, 1000 ok.
    """
    directory = write_files(
        tmp_path / "migrations",
        {
            "001_create_admin_a.sql": migration("001_create_admin_a", "CREATE TABLE IF NOT EXISTS admin_a (id int);"),
            "002_create_admin_b.sql": migration("002_create_admin_b", "CREATE TABLE IF NOT EXISTS admin_b (id int);"),
            "003_create_admin_c.sql": migration("003_create_admin_c", "CREATE TABLE IF NOT EXISTS admin_c (id int);"),
            "999_create_widgets.sql": migration(
                "999_create_widgets",
                "CREATE TABLE IF NOT EXISTS admin_w (id int);",
                description="Adds the widgets table",
            ),
            "1000_create_admin_d.sql": migration("1000_create_admin_d", "CREATE TABLE IF NOT EXISTS admin_d (id int);"),
        },
    )
    settings.SQL_MIGRATIONS_DIR = directory
    call_command("apply_sql_migrations", stdout=StringIO(), stderr=StringIO(), no_color=True)
    (directory / "002_create_admin_b.sql").write_text(
        migration("002_create_admin_b", "CREATE TABLE IF NOT EXISTS admin_b (id bigint);"), encoding="utf-8"
    )
    (directory / "003_create_admin_c.sql").unlink()
    write_files(directory, {"004_add_pending.sql": migration("004_add_pending", "CREATE TABLE admin_p (id int);")})
    yield directory
    drop_ledger()


def drop_ledger():
    sql("DROP TABLE IF EXISTS schema_migrations, admin_a, admin_b, admin_c, admin_w, admin_d, admin_p")


@pytest.fixture
def staff_client(client, django_user_model):
    """A client logged in (through the login form's backend) as a staff user without model permissions."""
    django_user_model.objects.create_user("teammate", "teammate@example.com", PASSWORD, is_staff=True)
    assert client.login(username="teammate", password=PASSWORD)
    return client


def listed(response) -> dict[str, str]:
    """Version → file state of the rows the changelist rendered, in order."""
    return {obj.version: obj.file_state for obj in response.context["cl"].result_list}


def test_list_shows_rows_in_numeric_order_with_states_and_pending(staff_client, ledger):
    response = staff_client.get(LIST_URL)
    assert response.status_code == 200
    assert list(listed(response).items()) == [
        ("001", "ok"),
        ("002", "modified"),
        ("003", "missing"),
        ("999", "ok"),
        ("1000", "ok"),
    ]
    html = response.content.decode()
    assert html.index(">999<") < html.index(">1000<")  # numeric, not text order
    assert 'class="sqlm-state sqlm-modified">modified<' in html
    assert 'class="sqlm-state sqlm-missing">missing<' in html
    assert "Adds the widgets table" in html
    pending = html[html.index('id="sql-pending"') : html.index('id="changelist"')]
    assert "004_add_pending.sql" in pending and "merged branch" in pending
    assert "999_create_widgets" not in pending
    assert 'class="addlink"' not in html and 'name="action"' not in html


def test_short_checksum_is_shown_with_the_full_one_as_title(staff_client, ledger):
    full = sql("SELECT checksum FROM schema_migrations WHERE version = '001'")[0][0]
    html = staff_client.get(LIST_URL).content.decode()
    assert f'<code title="{full}">{full[:12]}</code>' in html


@pytest.mark.parametrize(
    "state, versions", [("ok", ["001", "999", "1000"]), ("modified", ["002"]), ("missing", ["003"])]
)
def test_filter_by_state(staff_client, ledger, state, versions):
    response = staff_client.get(LIST_URL, {"state": state})
    assert response.status_code == 200
    assert list(listed(response)) == versions


def test_filter_counts(staff_client, ledger):
    html = staff_client.get(LIST_URL, {"_facets": "1"}).content.decode()
    assert "ok (unchanged) (3)" in html and "modified since applied (1)" in html and "file missing (1)" in html


def test_filter_by_date(staff_client, ledger):
    # The bounds the filter's own "Today" link sends: aware local midnights.
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    todays = staff_client.get(LIST_URL, {"applied_at__gte": str(today), "applied_at__lt": str(today + timedelta(1))})
    assert list(listed(todays)) == ["001", "002", "003", "999", "1000"]
    earlier = staff_client.get(LIST_URL, {"applied_at__lt": str(today - timedelta(1))})
    assert listed(earlier) == {}


@pytest.mark.parametrize("query, versions", [("999", ["999"]), ("widgets", ["999"]), ("admin b", ["002"])])
def test_search_by_version_and_description(staff_client, ledger, query, versions):
    response = staff_client.get(LIST_URL, {"q": query})
    assert response.status_code == 200
    assert list(listed(response)) == versions


def test_sort_by_version_descending_is_numeric(staff_client, ledger):
    response = staff_client.get(LIST_URL, {"o": "-0"})  # column 0: version
    assert list(listed(response)) == ["1000", "999", "003", "002", "001"]


def test_detail_page_is_read_only(staff_client, ledger):
    response = staff_client.get(detail_url("002"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "002_create_admin_b.sql" in html and "modified" in html
    assert 'name="_save"' not in html and 'name="_continue"' not in html and "deletelink" not in html
    assert staff_client.get(detail_url("003")).status_code == 200  # a row whose file is gone


def test_app_index_lists_the_model_for_staff(staff_client, ledger):
    response = staff_client.get("/admin/")
    assert response.status_code == 200
    assert "Applied SQL migrations" in response.content.decode()


def assert_refused(response):
    """Logged-in staff and superusers get 403 for every write path (never a redirect that could hide a write)."""
    assert response.status_code == 403


@pytest.mark.parametrize("user", ["staff", "superuser"])
def test_every_write_path_is_refused(client, django_user_model, ledger, user):
    if user == "superuser":
        django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
        assert client.login(username="root", password=PASSWORD)
    else:
        django_user_model.objects.create_user("teammate", "t@example.com", PASSWORD, is_staff=True)
        assert client.login(username="teammate", password=PASSWORD)
    before = ledger_rows()
    assert client.get(LIST_URL + "add/").status_code == 403
    assert client.post(LIST_URL + "add/", {"version": "005", "description": "forged"}).status_code == 403
    assert (
        client.post(detail_url("001"), {"version": "001", "description": "changed", "_save": "Save"}).status_code == 403
    )
    assert client.get(detail_url("001", "delete")).status_code == 403
    assert client.post(detail_url("001", "delete"), {"post": "yes"}).status_code == 403
    action = {"action": "delete_selected", "_selected_action": ["001", "999"], "post": "yes", "index": "0"}
    assert client.post(LIST_URL, action).status_code == 403
    assert ledger_rows() == before and len(before) == 5


def test_anonymous_is_sent_to_login_and_changes_nothing(client, ledger):
    before = ledger_rows()
    for url in (LIST_URL, detail_url("001"), LIST_URL + "add/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next=")
    for response in (
        client.post(detail_url("001", "delete"), {"post": "yes"}),
        client.post(LIST_URL, {"action": "delete_selected", "_selected_action": ["001"], "post": "yes"}),
    ):
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next=")
    assert ledger_rows() == before


def test_non_staff_user_is_sent_to_login(client, django_user_model, ledger):
    django_user_model.objects.create_user("member", "m@example.com", PASSWORD)
    assert client.login(username="member", password=PASSWORD)
    response = client.get(LIST_URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_invalid_files_show_a_banner_and_keep_the_other_rows_states(staff_client, ledger):
    write_files(
        ledger,
        {
            "005_AddUsers.sql": "SELECT 1;\n",
            "006_broken.sql": "CREATE TABLE (;\n",
            "999_create_widgets.sql": b"-- caf\xe9\nSELECT 1;\n",
        },
    )  # applied, then saved as Latin-1
    response = staff_client.get(LIST_URL)
    assert response.status_code == 200
    html = response.content.decode()
    banner = html[html.index('id="sql-problems"') : html.index('id="changelist"')]
    assert "005_AddUsers.sql: invalid file name" in banner
    assert "006_broken.sql" in banner and "syntax error" in banner
    assert list(listed(response).items()) == [
        ("001", "ok"),
        ("002", "modified"),
        ("003", "missing"),
        ("999", "invalid"),
        ("1000", "ok"),
    ]
    pending = html[html.index('id="sql-pending"') : html.index('id="changelist"')]
    assert "004_add_pending.sql" in pending and "006_broken" not in pending
    assert staff_client.get(detail_url("001")).status_code == 200


def test_database_without_ledger_lists_every_file_as_pending(staff_client, transactional_db, settings, tmp_path):
    settings.SQL_MIGRATIONS_DIR = write_files(
        tmp_path / "m",
        {
            "001_first.sql": migration("001_first", "CREATE TABLE admin_a (id int);"),
            "002_second.sql": migration("002_second", "CREATE TABLE admin_b (id int);"),
        },
    )
    response = staff_client.get(LIST_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="sql-no-ledger"' in html
    assert "001_first.sql" in html and "002_second.sql" in html and "Pending: 2 files" in html
    assert listed(response) == {}
    assert "schema_migrations" not in connection.introspection.table_names()  # the admin created nothing


def test_spec_only_ledger_table_without_runner_columns(staff_client, transactional_db, settings, tmp_path):
    settings.SQL_MIGRATIONS_DIR = write_files(
        tmp_path / "m", {"001_first.sql": migration("001_first", "CREATE TABLE admin_a (id int);")}
    )
    try:
        sql(
            "CREATE TABLE schema_migrations (version VARCHAR(255) PRIMARY KEY, "
            "applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, checksum VARCHAR(64), description TEXT)"
        )
        sql("INSERT INTO schema_migrations (version, description) VALUES ('001', 'by hand')")
        response = staff_client.get(LIST_URL)
        assert response.status_code == 200
        assert listed(response) == {"001": "ok"}  # no recorded checksum: nothing to compare
        detail = staff_client.get(detail_url("001"))
        assert detail.status_code == 200 and "by hand" in detail.content.decode()
    finally:
        drop_ledger()


def test_admin_login_on_the_embedded_database_in_one_command(manage):
    """docs/admin-and-checks.md: Django's own tables, then a superuser, on a fresh embedded server."""
    env = {"DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    try:
        migrate = manage("migrate", "--no-input", database_url=None)
        assert migrate.returncode == 0, migrate.output
        assert "Applying auth.0001_initial... OK" in migrate.stdout
        assert "(dbmigrations.W001)" in migrate.stderr  # the SQL migrations are still pending: said so
        created = manage(
            "createsuperuser",
            "--no-input",
            "--username",
            "admin",
            "--email",
            "admin@example.com",
            database_url=None,
            env=env,
        )
        assert created.returncode == 0, created.output
        login = manage(
            "shell",
            "-c",
            "from django.contrib.auth import authenticate; "
            f"u = authenticate(username='admin', password='{PASSWORD}'); print(u.is_superuser, u.is_staff)",
            database_url=None,
        )
        assert login.stdout.strip().splitlines()[-1] == "True True", login.output
        tables = manage(
            "shell",
            "-c",
            "from django.db import connection; print('schema_migrations' in connection.introspection.table_names())",
            database_url=None,
        )
        assert tables.stdout.strip().splitlines()[-1] == "False"  # Django's migrate never creates the SQL ledger
    finally:
        manage("embedded_db", "stop", database_url=None)


def test_replaced_versions_and_fake_rows_are_shown(staff_client, ledger):
    write_files(
        ledger,
        {"002_create_admin_b.sql": migration("002_create_admin_b", "CREATE TABLE IF NOT EXISTS admin_b (id int);")},
    )
    call_command("apply_sql_migrations", "--fake", stdout=StringIO(), stderr=StringIO(), no_color=True)  # 004
    (ledger / "999_create_widgets.sql").unlink()  # a branch switch: another file now holds 999
    write_files(ledger, {"999_add_client_tags.sql": migration("999_add_client_tags", "CREATE TABLE admin_t (id int);")})
    response = staff_client.get(LIST_URL)
    assert list(listed(response).items()) == [
        ("001", "ok"),
        ("002", "ok"),
        ("003", "missing"),
        ("004", "ok"),
        ("999", "replaced"),
        ("1000", "ok"),
    ]
    html = response.content.decode()
    assert 'class="sqlm-state sqlm-replaced">replaced<' in html
    assert html.count("fake (baseline): not run") == 1
    detail = staff_client.get(detail_url("999")).content.decode()
    assert "999_add_client_tags.sql (the version was applied from 999_create_widgets.sql)" in detail


def test_a_migration_that_stopped_part_way_shows_as_partial(staff_client, transactional_db, settings, tmp_path):
    directory = write_files(
        tmp_path / "migrations",
        {
            "001_t.sql": migration("001_t", "CREATE TABLE IF NOT EXISTS admin_runs (id int);"),
            "002_idx.sql": migration(
                "002_idx",
                "INSERT INTO admin_runs VALUES (1);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS admin_runs_id ON nope (id);",
                wrap=False,
            ),
        },
    )
    settings.SQL_MIGRATIONS_DIR = directory
    with pytest.raises(CommandError):
        call_command("apply_sql_migrations", stdout=StringIO(), stderr=StringIO(), no_color=True)
    try:
        page = " ".join(staff_client.get(LIST_URL).content.decode().split())
        assert 'sql-pending-row"> <td>002</td>' in page
        assert "partial</span>: statement 1 of 2 ran before it stopped" in page
        assert "resumes after them" in page
    finally:
        sql("DROP TABLE IF EXISTS schema_migrations, schema_migrations_progress, admin_runs")
