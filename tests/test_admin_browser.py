"""End to end in a real headless Chromium against the server users would run: gunicorn with the
production settings (WhiteNoise serving the admin's static files). Log in, open the ledger, see it
is styled and read-only.

Uses Debian's ``chromium`` and ``chromium-driver`` packages (no browser download), driven by Selenium.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT, clean_env, migration, write_files

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def production_server(database, tmp_path):
    """gunicorn serving bestrong.wsgi with NODE_ENV=production, over plain HTTP on loopback."""
    migrations = write_files(
        tmp_path / "migrations",
        {
            "001_create_e2e_a.sql": migration("001_create_e2e_a", "CREATE TABLE IF NOT EXISTS e2e_a (id int);"),
            "002_create_e2e_b.sql": migration("002_create_e2e_b", "CREATE TABLE IF NOT EXISTS e2e_b (id int);"),
        },
    )
    env = clean_env(
        DATABASE_URL=database.url,
        SQL_MIGRATIONS_DIR=str(migrations),
        NODE_ENV="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        # plain HTTP on loopback: no TLS to redirect to, cookies without the Secure flag
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_SECURE_COOKIES="0",
        DJANGO_SECURE_HSTS_SECONDS="0",
    )
    staff = (
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user('teammate', 't@example.com', '{PASSWORD}', is_staff=True)"
    )
    for args in (["migrate", "--no-input"], ["apply_sql_migrations"], ["shell", "-c", staff]):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    write_files(migrations, {"003_add_e2e_c.sql": migration("003_add_e2e_c", "CREATE TABLE e2e_c (id int);")})
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "bestrong.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/admin/login/", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"gunicorn exited: {server.stdout.read()}")
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_staff_sees_a_styled_read_only_ledger(browser, production_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(f"{production_server}/admin/login/?next={LIST_URL}")
    # The admin's stylesheet really applied (served by WhiteNoise under gunicorn, DEBUG off):
    # the header has the admin's colour, not the browser's transparent default.
    header = browser.execute_script("return getComputedStyle(document.getElementById('header')).backgroundColor")
    assert header not in ("rgba(0, 0, 0, 0)", "transparent", ""), header
    browser.find_element(By.ID, "id_username").send_keys("teammate")
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "result_list")))
    assert browser.save_screenshot(str(tmp_path / "admin-schema-migrations.png"))

    versions = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr th")]
    assert versions == ["001", "002"]
    states = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#result_list .sqlm-state")]
    assert states == ["ok", "ok"]
    assert "003_add_e2e_c.sql" in browser.find_element(By.ID, "sql-pending").text
    assert_read_only(browser)

    browser.find_element(By.LINK_TEXT, "001").click()
    wait.until(ec.url_contains("/001/change/"))
    assert "001_create_e2e_a.sql" in browser.find_element(By.ID, "content").text
    assert_read_only(browser)


def assert_read_only(browser):
    """No Add link, no Save/Delete button, no action dropdown on the page."""
    from selenium.webdriver.common.by import By

    assert browser.find_elements(By.CSS_SELECTOR, "a.addlink") == []
    assert [a for a in browser.find_elements(By.TAG_NAME, "a") if a.text.strip().lower().startswith("add")] == []
    assert browser.find_elements(By.CSS_SELECTOR, "[name=_save], [name=_continue], [name=_addanother]") == []
    assert [
        b
        for b in browser.find_elements(By.CSS_SELECTOR, "input[type=submit], button")
        if b.get_attribute("value") in ("Save", "Delete") or b.text.strip() in ("Save", "Delete")
    ] == []
    assert browser.find_elements(By.CSS_SELECTOR, "a.deletelink, select[name=action]") == []
