"""The "Microsoft CAPI" page, used as a person uses it: in Chromium, inside the Airflow UI,
against the real api-server, its login and its permissions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest

from include.msads_capi import spaces
from include.msads_capi.warehouse import transaction
from tests.ui.conftest import ACCOUNT, LEAD, PROJECT, sign_in

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

SHOTS = os.environ.get("MSADS_SCREENSHOT_DIR")  # set to refresh the pictures in docs/


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


def _frame(page):
    """The page as the UI shows it: in the frame of the 'Microsoft CAPI' menu entry."""
    return page.frame_locator("iframe").first


def _space(ui, space_id: str = "shop") -> spaces.Space:
    with transaction(ui.warehouse) as conn:
        return spaces.get_space(conn, space_id)


def _mappings(ui) -> list[spaces.Mapping]:
    with transaction(ui.warehouse) as conn:
        return spaces.list_mappings(conn)


def _csrf(ui, user: str = "admin") -> str:
    status, html = ui.request("/", user=user)
    assert status == 200
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def test_signing_in_through_airflow_shows_the_page_in_the_menu(airflow_ui, browser_page):
    page = browser_page
    sign_in(page, airflow_ui)
    frame = _frame(page)
    frame.get_by_role("heading", name="Microsoft CAPI", level=1).wait_for()
    assert "signed in as admin" in frame.locator("body").inner_text()
    for section in ("Outcomes", "Event lookup", "Spaces", "Microsoft profiles and linked accounts",
                    "Goals, as last fetched", "Mappings"):
        frame.get_by_role("heading", name=section, level=2).wait_for()
    # The menu entry the plugin adds (Admin > Microsoft CAPI) leads to the same page.
    page.get_by_role("button", name="Admin").click()
    assert page.get_by_role("menuitem", name="Microsoft CAPI").count() == 1
    page.keyboard.press("Escape")
    _shot(page, "console-overview")


def test_turning_capi_on_and_off_keeps_the_mappings(airflow_ui, browser_page):
    page = browser_page
    sign_in(page, airflow_ui)
    frame = _frame(page)
    row = frame.get_by_test_id("spaces").locator("tr", has_text="shop")
    row.get_by_role("button", name="Turn on").click()
    frame.get_by_role("status").filter(has_text="Microsoft CAPI is on for Space shop").wait_for()
    assert _space(airflow_ui).capi_enabled
    before = len(_mappings(airflow_ui))
    frame.get_by_test_id("spaces").locator("tr", has_text="shop").get_by_role(
        "button", name="Turn off").click()
    frame.get_by_role("status").filter(
        has_text=f"Microsoft CAPI is off for Space shop; {before} mapping(s) kept").wait_for()
    assert not _space(airflow_ui).capi_enabled
    assert len(_mappings(airflow_ui)) == before


def test_adding_a_mapping_by_picking_the_account_then_the_goal(airflow_ui, browser_page):
    page = browser_page
    sign_in(page, airflow_ui)
    frame = _frame(page)
    frame.get_by_test_id("pick-account").get_by_label("1. Account").select_option(str(ACCOUNT))
    frame.get_by_test_id("pick-account").get_by_role("button", name="Choose").click()
    form = frame.get_by_test_id("add-mapping")
    form.get_by_label("2. Goal").select_option(label=f"Lead ({LEAD}, Active)")
    form.get_by_label("3. Event name").fill("SignUp")
    form.get_by_label("4. Send rule").select_option("attributed_only")
    _shot(page, "console-add-mapping")
    form.get_by_role("button", name="Add mapping").click()
    frame.get_by_role("status").filter(has_text="SignUp -> goal 7702 (Lead)").wait_for()
    added = [m for m in _mappings(airflow_ui) if m.event_name == "SignUp"]
    assert [(m.account_id, m.goal_id, m.send_rule, m.enabled) for m in added] == [
        (ACCOUNT, LEAD, "attributed_only", True)]
    row = frame.get_by_test_id("mappings").locator("tr", has_text="SignUp")
    assert "verified" in row.inner_text()
    row.get_by_role("button", name="Disable").click()
    frame.get_by_role("status").filter(has_text="is disabled").wait_for()
    assert not [m for m in _mappings(airflow_ui) if m.event_name == "SignUp"][0].enabled


def test_bad_input_gets_the_clis_error_next_to_its_field_and_changes_nothing(airflow_ui,
                                                                             browser_page):
    page = browser_page
    sign_in(page, airflow_ui)
    frame = _frame(page)
    before = _mappings(airflow_ui)
    frame.get_by_test_id("pick-account").get_by_role("button", name="Choose").click()
    form = frame.get_by_test_id("add-mapping")
    form.get_by_label("2. Goal").select_option(label=f"Lead ({LEAD}, Active)")
    form.get_by_label("3. Event name").fill("   ")
    form.get_by_role("button", name="Add mapping").click()
    error = frame.locator('[data-field="event"]')
    error.wait_for()
    # The same sentence as `msads map add --event ' '` prints.
    cli = subprocess.run([sys.executable, "-m", "include.msads_capi.cli", "map", "add",
                          "--account", str(ACCOUNT), "--goal", str(LEAD), "--event", " "],
                         capture_output=True, text=True, cwd=PROJECT,
                         env={**os.environ, "MSADS_WAREHOUSE_URL": airflow_ui.warehouse.url})
    assert cli.returncode == 2
    assert error.inner_text() == cli.stderr.strip().splitlines()[-1].removeprefix("msads: error: ")
    _shot(page, "console-error")
    # The values typed are still there to correct, and nothing was written.
    assert form.get_by_label("2. Goal").input_value() == str(LEAD)
    assert _mappings(airflow_ui) == before

    add = frame.get_by_test_id("space-add")
    add.get_by_label("Id").fill("shop-eu")
    add.get_by_label("Currency").fill("EURO")
    add.get_by_label("Phone region").fill("DE")
    add.get_by_role("button", name="Add Space").click()
    frame.locator('[data-field="currency"]').filter(has_text="EURO").wait_for()
    with transaction(airflow_ui.warehouse) as conn:
        assert [s.space_id for s in spaces.list_spaces(conn)] == ["shop"]


def test_looking_up_an_event_shows_msads_why_without_personal_data(airflow_ui, browser_page):
    email, phone = "Jane.Doe+ads@Example.com", "+1 (415) 555-0142"
    with psycopg.connect(airflow_ui.warehouse.url) as conn:
        conn.execute(
            "INSERT INTO conversion_events (event_id, space_id, event_name, event_time, value, "
            "email, phone) VALUES ('ord-1001', 'shop', 'Purchase', %s, 40, %s, %s)",
            (datetime.now(UTC) - timedelta(hours=2), email, phone))
    page = browser_page
    sign_in(page, airflow_ui)
    frame = _frame(page)
    frame.get_by_label("Event id").fill("ord-1001")
    frame.get_by_role("button", name="Why?").click()
    shown = frame.get_by_test_id("why").inner_text()
    cli = subprocess.run([sys.executable, "-m", "include.msads_capi.cli", "why", "ord-1001"],
                         capture_output=True, text=True, cwd=PROJECT, check=True,
                         env={**os.environ, "MSADS_WAREHOUSE_URL": airflow_ui.warehouse.url})
    assert shown.strip() == cli.stdout.strip()
    assert "[NO] Is CAPI turned on? Microsoft CAPI is off" in shown
    assert "email: usable (sent as its SHA-256 hash)" in shown
    _shot(page, "console-lookup")
    html = frame.locator("html").inner_html()
    for secret in (email, email.lower(), "jane.doe", "555-0142", "4155550142"):
        assert secret.lower() not in html.lower()

    frame.get_by_label("Event id").fill("no-such-event")
    frame.get_by_role("button", name="Why?").click()
    frame.get_by_role("alert").filter(has_text="no-such-event").wait_for()


def test_an_anonymous_request_is_refused(airflow_ui, browser_page):
    assert airflow_ui.request("/")[0] == 401
    assert airflow_ui.request("/?event_id=ord-1001")[0] == 401
    status, _ = airflow_ui.request("/spaces/shop/capi", data=b"state=on")
    assert status == 401
    assert not _space(airflow_ui).capi_enabled
    # A browser that has not signed in sees no part of the page.
    page = browser_page
    response = page.goto(airflow_ui.page_url)
    assert response.status == 401
    assert "Microsoft CAPI" not in page.content()


def test_a_viewer_reads_but_cannot_change(airflow_ui):
    status, html = airflow_ui.request("/", user="viewer")
    assert status == 200
    assert "read-only" in html and 'method="post"' not in html
    token = _csrf(airflow_ui, "admin")
    status, body = airflow_ui.request("/spaces/shop/capi", user="viewer",
                                      data=urlencode({"state": "on", "csrf": token}).encode())
    assert status == 403 and "Op or Admin" in body
    assert not _space(airflow_ui).capi_enabled


def test_changes_need_the_pages_token_and_the_same_site(airflow_ui):
    token = _csrf(airflow_ui)
    status, _ = airflow_ui.request("/spaces/shop/capi", user="admin", data=b"state=on")
    assert status == 403  # no token: a form from elsewhere
    status, _ = airflow_ui.request("/spaces/shop/capi", user="admin",
                                   data=urlencode({"state": "on", "csrf": "0" * 64}).encode())
    assert status == 403
    status, _ = airflow_ui.request(
        "/spaces/shop/capi", user="admin", data=urlencode({"state": "on", "csrf": token}).encode(),
        headers={"Origin": "http://attacker.example"})
    assert status == 403
    assert not _space(airflow_ui).capi_enabled
    status, _ = airflow_ui.request("/", user="admin")  # GET never changes anything
    assert status == 200 and not _space(airflow_ui).capi_enabled
