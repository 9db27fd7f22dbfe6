"""The real Airflow api-server with the project's plugin, a warehouse of its own, and Chromium.

The server runs as Airflow runs it (``airflow api-server``, simple auth manager with an admin
and a viewer) against a warehouse database made for this module; the tests drive it over HTTP
and in Debian's Chromium through playwright. Without Chromium the browser tests skip and say how
to get it; ``.ci/run`` installs it and sets ``MSADS_REQUIRE_BROWSER=1``, so CI fails rather than
skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.msads_capi import spaces
from include.msads_capi.goals.records import record_goals
from include.msads_capi.microsoft.client import RemoteGoal
from include.msads_capi.warehouse import Warehouse, transaction
from tests.conftest import _drop_db, _fresh_db, _with_database, free_port

PROJECT = Path(__file__).resolve().parents[2]
USERS = {"admin": "admin-pw", "viewer": "viewer-pw"}
ACCOUNT, PURCHASE, LEAD = 4101, 7701, 7702
CHROMIUM = os.environ.get("MSADS_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")


@dataclass
class AirflowUI:
    base: str
    warehouse: Warehouse

    @property
    def page_url(self) -> str:
        return f"{self.base}/msads-capi/"

    def token(self, user: str = "admin") -> str:
        body = json.dumps({"username": user, "password": USERS[user]}).encode()
        req = urllib.request.Request(f"{self.base}/auth/token", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["access_token"]

    def request(self, path: str, *, user: str | None = None, data: bytes | None = None,
                headers: dict | None = None) -> tuple[int, str]:
        """(status, body) of a request to the page, as ``user`` (anonymous when None)."""
        headers = dict(headers or {})
        if user:
            headers["Cookie"] = f"_token={self.token(user)}"
        req = urllib.request.Request(f"{self.base}/msads-capi{path}", data=data,
                                     headers=headers, method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def seed(warehouse: Warehouse) -> None:
    """A Space with CAPI off, a linked account and its goals, as goal refresh records them."""
    with transaction(warehouse) as conn:
        spaces.add_space(conn, "shop", name="Shop US", currency="USD", region="US")
        spaces.link_account(conn, ACCOUNT, customer_id=88, space="shop", name="Shop ads")
        goal = dict(status="Active", scope="Account", count_type="All", window_minutes=43200,
                    revenue_type="VariableValue", revenue_value=None, revenue_currency="USD",
                    category="Purchase", enhanced_conversions=True, externally_attributed=False)
        record_goals(conn, ACCOUNT, [RemoteGoal(PURCHASE, "Purchase", **goal),
                                     RemoteGoal(LEAD, "Lead", **goal)], datetime.now(UTC))


@pytest.fixture(scope="module")
def airflow_ui(pg_server_url, template_db, tmp_path_factory):
    """``airflow api-server`` with the plugin, on a free port, for the tests of one module."""
    name = _fresh_db(pg_server_url, template_db)
    warehouse = Warehouse(_with_database(pg_server_url, name), "ui tests")
    seed(warehouse)
    home = tmp_path_factory.mktemp("airflow-ui")
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps(USERS))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__PLUGINS_FOLDER=str(PROJECT / "plugins"),
               AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
               AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin,viewer:viewer",
               AIRFLOW__API__WORKERS="1", PYTHONPATH=str(PROJECT),
               MSADS_WAREHOUSE_URL=warehouse.url)
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    log = (home / "api-server.log").open("w")
    proc = subprocess.Popen([airflow, "api-server", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the api-server did not start:\n"
                                       + (home / "api-server.log").read_text()[-3000:]) from None
                time.sleep(1)
        yield AirflowUI(base, warehouse)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        _drop_db(pg_server_url, name)


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium driven by playwright; skipped, with how to get it, when missing."""
    if not CHROMIUM:
        if os.environ.get("MSADS_REQUIRE_BROWSER"):
            pytest.fail("MSADS_REQUIRE_BROWSER is set but Chromium is missing: apt-get install "
                        "chromium (or make browsers)")
        pytest.skip("browser tests need Chromium: run `make browsers` (Debian's chromium "
                    "package), or set MSADS_CHROMIUM to a Chromium binary")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def sign_in(page, ui: AirflowUI, user: str = "admin") -> None:
    """Sign in through Airflow's own login form, then open the page from the menu's route."""
    page.goto(f"{ui.base}/plugin/msads-capi")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(USERS[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/plugin/msads-capi")
