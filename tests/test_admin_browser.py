"""End to end in a real headless Chromium: log in, open the ledger, see it is read-only.

Uses Debian's ``chromium`` and ``chromium-driver`` packages (no browser download)
driven by Selenium, against pytest-django's ``live_server``.
"""
from __future__ import annotations

import os
import shutil
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from tests.conftest import migration, write_files

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1280,1000")
LIST_URL = "/admin/dbmigrations/schemamigration/"
PASSWORD = "correct-horse-battery-9"

pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
)


@pytest.fixture
def browser(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def applied(transactional_db, settings, tmp_path):
    """Two applied migrations and a third one pending on disk."""
    directory = write_files(tmp_path / "migrations", {
        "001_create_e2e_a.sql": migration("001_create_e2e_a", "CREATE TABLE IF NOT EXISTS e2e_a (id int);"),
        "002_create_e2e_b.sql": migration("002_create_e2e_b", "CREATE TABLE IF NOT EXISTS e2e_b (id int);"),
    })
    settings.SQL_MIGRATIONS_DIR = directory
    call_command("apply_sql_migrations", stdout=StringIO(), stderr=StringIO(), no_color=True)
    write_files(directory, {"003_add_e2e_c.sql": migration("003_add_e2e_c", "CREATE TABLE e2e_c (id int);")})
    yield directory
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS schema_migrations, e2e_a, e2e_b, e2e_c")


def test_staff_sees_a_read_only_ledger(browser, live_server, applied, django_user_model, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    django_user_model.objects.create_user("teammate", "t@example.com", PASSWORD, is_staff=True)
    wait = WebDriverWait(browser, 30)
    browser.get(f"{live_server.url}/admin/login/?next={LIST_URL}")
    browser.find_element(By.ID, "id_username").send_keys("teammate")
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "result_list")))

    screenshot = tmp_path / "admin-schema-migrations.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000

    versions = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr th")]
    assert versions == ["001", "002"]
    states = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#result_list .sqlm-state")]
    assert states == ["ok", "ok"]
    assert "003_add_e2e_c.sql" in browser.find_element(By.ID, "sql-pending").text
    assert_read_only(browser)

    browser.find_element(By.LINK_TEXT, "001").click()
    wait.until(ec.url_contains("/001/change/"))
    assert "001_create_e2e_a.sql" in browser.find_element(By.ID, "content").text
    assert browser.save_screenshot(str(tmp_path / "admin-schema-migration-001.png"))
    assert_read_only(browser)


def assert_read_only(browser):
    """No Add link, no Save/Delete button, no action dropdown on the page."""
    from selenium.webdriver.common.by import By

    assert browser.find_elements(By.CSS_SELECTOR, "a.addlink") == []
    assert [a for a in browser.find_elements(By.TAG_NAME, "a") if a.text.strip().lower().startswith("add")] == []
    assert browser.find_elements(By.CSS_SELECTOR, "[name=_save], [name=_continue], [name=_addanother]") == []
    assert [b for b in browser.find_elements(By.CSS_SELECTOR, "input[type=submit], button")
            if b.get_attribute("value") in ("Save", "Delete") or b.text.strip() in ("Save", "Delete")] == []
    assert browser.find_elements(By.CSS_SELECTOR, "a.deletelink, select[name=action]") == []
