"""What the page shows after real pipeline runs: outcomes per window with each reason's fix,
the rejection rate, a token about to expire, a renamed goal to confirm, and no personal data.

The app runs in-process on the shop fixture's warehouse and emulator, with the clock the test
controls; who the user is (Airflow's login, in test_page.py) is given here.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from urllib.parse import urlencode

import psycopg
import pytest
from fastapi.testclient import TestClient

from include.msads_capi import outcomes
from include.msads_capi.console.app import Console, Viewer, create_app
from include.msads_capi.microsoft.tokens import REFRESH_TOKEN_LIFETIME


@pytest.fixture
def page(shop):
    clock = {"now": shop.now()}
    console = Console(_admin, lambda: shop.warehouse, b"test-secret", clock=lambda: clock["now"])
    client = TestClient(create_app(console), base_url="http://testserver")

    def get(path: str = "/", at: timedelta = timedelta(0)) -> str:
        clock["now"] = shop.now() + at
        resp = client.get(path)
        assert resp.status_code == 200, resp.text
        return resp.text

    get.client = client
    return get


async def _admin(request) -> Viewer:
    return Viewer("admin", True, "1")


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _totals(html: str, window: str) -> list[str]:
    table = html.split('data-testid="totals"')[1].split("</table>")[0]
    row = [r for r in table.split("<tr>") if f"last {window}" in r][0]
    return re.findall(r"<td>([^<]*)</td>", row)[1:]


def test_outcomes_per_window_with_the_rejection_rate_and_each_reasons_fix(shop, page):
    good = [shop.event() for _ in range(3)]
    bad = shop.event(msclkid="bogus-click")
    shop.event("Newsletter")  # not mapped
    shop.run()
    assert shop.reason(bad) == ["rejected:OfflineConversionMicrosoftClickIdInvalid"]
    assert all(shop.reason(e) == ["uploaded"] for e in good)
    html = page()
    # uploaded, rejected, skipped, deferred, failed, rejection rate
    assert _totals(html, "hour") == ["3", "1", "1", "0", "0", "25.0%"]
    text = _text(html)
    assert outcomes.REASONS[outcomes.NOT_MAPPED].fix in text
    assert outcomes.words("rejected:OfflineConversionMicrosoftClickIdInvalid")[1] in text
    assert "Rejections in the last hour, per account" in text
    # Two hours later they have left the last hour, not the last day or week.
    later = page(at=timedelta(hours=2))
    assert _totals(later, "hour") == ["0", "0", "0", "0", "0", "-"]
    assert _totals(later, "day") == ["3", "1", "1", "0", "0", "25.0%"]
    assert _totals(page(at=timedelta(days=8)), "week") == ["0", "0", "0", "0", "0", "-"]


def test_pending_work_is_counted(shop, page):
    with psycopg.connect(shop.warehouse.url) as conn:
        conn.execute("INSERT INTO msads.results (event_id, account_id, goal_id, status, reason, "
                     "next_attempt_at) VALUES ('waiting-1', %s, %s, 'pending', 'retry', now()), "
                     "('waiting-2', %s, %s, 'pending', 'retry', now())",
                     (shop.account.account_id, shop.purchase_goal) * 2)
    html = page()
    assert re.search(r'data-testid="pending">2<', html)


def test_a_refresh_token_warns_fourteen_days_before_it_expires(shop, page):
    from include.msads_capi.microsoft.tokens import TokenStore

    store = TokenStore(shop.warehouse)
    issued = shop.now()
    store.save("msads_default", "refresh-token-value", profile="ads@example.test", now=issued)
    quiet = page(at=REFRESH_TOKEN_LIFETIME - timedelta(days=15))
    assert 'data-testid="token-warning"' not in quiet
    warned = _text(page(at=REFRESH_TOKEN_LIFETIME - timedelta(days=13)))
    assert "the refresh token of msads_default expires in 12 day(s)" in warned
    assert "refresh-token-value" not in warned


def test_a_renamed_goal_waits_for_confirmation_with_a_button(shop, page):
    from include.msads_capi.goals.refresh import refresh_account

    # Renamed in Microsoft Advertising's web UI (the emulator's admin API does not rename).
    shop.emu.store.execute("UPDATE goals SET name = 'Purchase (web)' WHERE id = ?",
                           (shop.purchase_goal,))
    refresh_account(shop.warehouse, shop.client, shop.account, now=shop.now())
    html = page()
    row = [r for r in html.split('data-testid="mappings"')[1].split("<tr>") if "Purchase" in r][0]
    assert "renamed" in row and "Confirm renamed goal" in row
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
    mapping_id = re.search(r'/mappings/(\d+)"', row).group(1)
    resp = page.client.post(f"/mappings/{mapping_id}", content=urlencode(
        {"csrf": token, "do": "confirm"}), headers={
            "Content-Type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert resp.status_code == 303
    row = [r for r in page().split('data-testid="mappings"')[1].split("<tr>")
           if "Purchase (web)" in r][0]
    assert "verified" in row and "Confirm renamed goal" not in row


def test_the_page_never_shows_an_email_or_phone(shop, page):
    email, phone = "Pat.Buyer@Example.org", "+44 20 7946 0991"
    ev = shop.event(email=email, phone=phone)
    shop.run()
    html = page(f"/?event_id={ev}").lower()
    assert 'data-testid="why"' in html and "email: usable (sent as its sha-256 hash)" in html
    for raw in (email.lower(), "pat.buyer", "7946 0991", "79460991", "2079460991"):
        assert raw not in html
