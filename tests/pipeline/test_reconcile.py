"""Microsoft's own view of every upload: reconciliation through the real SDK against the
emulator's offline conversion reports. Every time is relative to the emulator's clock."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg

from include.msads_capi.goals.refresh import refresh_account
from include.msads_capi.identity import normalize_email
from include.msads_capi.reconcile import reconcile_account

HOUR = 3600


def reconcile(s, days: int = 7):
    return reconcile_account(s.warehouse, s.client, s.account, s.now(), days)


def view(s, event_id: str) -> tuple:
    with psycopg.connect(s.warehouse.url) as conn:
        return conn.execute(
            "SELECT ms_status, ms_attributed, ms_unattributed, ms_reported_at IS NOT NULL "
            "FROM msads.results WHERE event_id = %s AND status = 'uploaded'",
            (event_id,)).fetchone()


def unknown_click() -> str:
    return "0123456789abcdef0123456789abcdef"  # well formed, never issued by Microsoft


def enhanced(s) -> None:
    """The shop's purchase goal with enhanced conversions on, as the product knows it."""
    s.emu.admin.update_goal(s.purchase_goal, enhanced_conversions=True)
    refresh_account(s.warehouse, s.client, s.account, now=s.now())


def clicked_by(s, email: str, hours_ago: float = 3) -> None:
    """A click the emulator issued to the person with this email (their hash, as sent)."""
    s.emu.admin.issue_click(s.tenant.account_id,
                            click_time=(s.now() - timedelta(hours=hours_ago)).isoformat(),
                            hashed_email=normalize_email(email).sha256)


def test_each_upload_gets_microsofts_view_counted_or_why_not(shop):
    s = shop
    enhanced(s)
    matched = s.event("Purchase")
    unmatched = s.event("Purchase", msclkid=unknown_click())
    # a hashed email that is no clicker's: accepted, not attributed
    stranger = s.event("Purchase", msclkid=None, email="nobody@example.com")
    s.run()
    assert s.reason(matched) == s.reason(unmatched) == s.reason(stranger) == ["uploaded"]
    summary = reconcile(s)
    assert view(s, matched) == ("Success", True, None, True)
    assert view(s, unmatched) == ("Success", False, "NoMatchingClickFound", True)
    assert view(s, stranger) == ("Success", False, "NoMatchingClickFound", True)
    assert (summary.uploaded, summary.reported, summary.attributed) == (3, 3, 1)
    assert summary.unattributed == {"NoMatchingClickFound": 2}


def test_the_report_gives_match_rates_by_identifier_and_the_top_reasons(shop, msads):
    s = shop
    enhanced(s)
    for _ in range(3):
        s.event("Purchase")
    s.event("Purchase", msclkid=unknown_click())
    clicked_by(s, "ana@example.com")
    s.event("Purchase", msclkid=None, email=" Ana@Example.com ")
    s.run()
    reconcile(s)
    code, out, _ = msads("report", "--since", "90d", "--json")
    assert code == 0
    [row] = json.loads(out)
    assert (row["accepted"], row["reported"], row["counted"], row["attributed"]) == (5, 5, 5, 4)
    assert row["match_rate"]["click"] == 0.75 and row["match_rate"]["phone"] is None
    assert row["match_rate"]["email"] == 1.0
    assert row["top_unattributed"] == [{"reason": "NoMatchingClickFound", "count": 1}]
    assert row["microsoft_totals"] == {"succeeded": 4, "unattributed": 1}
    code, out, _ = msads("report", "--since", "90d")
    assert "match rate by identifier: click 75%, email 100%" in out


def test_not_reported_yet_within_the_lag_is_never_an_alarm(shop, msads):
    s = shop
    s.emu.admin.update_settings(report_lag_seconds=30 * HOUR)  # longer than the product waits
    event_id = s.event("Purchase")
    s.run()
    summary = reconcile(s)
    assert view(s, event_id) == (None, None, None, False)
    assert (summary.waiting, summary.not_reported) == (1, 0)
    code, out, _ = msads("why", event_id)
    assert code == 0 and "[ok] Did Microsoft count it? not reported yet" in out
    s.emu.admin.advance(25 * HOUR)  # Microsoft has no file for that day yet: still no alarm
    assert reconcile(s).not_reported == 0 and view(s, event_id)[0] is None
    s.emu.admin.advance(6 * HOUR)  # Microsoft's report catches up
    reconcile(s)
    assert view(s, event_id) == ("Success", True, None, True)


def test_a_conversion_missing_from_its_days_file_after_the_lag_is_not_reported(shop):
    s = shop
    kept, lost = s.event("Purchase"), s.event("Purchase")
    s.run()
    with psycopg.connect(s.warehouse.url) as conn:  # as if Microsoft had lost this one
        conn.execute("UPDATE msads.results SET sent_ref = 'not-in-any-report' "
                     "WHERE event_id = %s", (lost,))
    assert reconcile(s).waiting == 1  # within the lag: not an alarm yet
    s.emu.admin.advance(25 * HOUR)
    summary = reconcile(s)
    assert view(s, lost) == ("NotReported", None, None, False)
    assert view(s, kept)[0] == "Success" and summary.not_reported == 1


def test_why_ends_with_microsofts_answer_and_what_to_do(shop, msads):
    s = shop
    event_id = s.event("Purchase", msclkid=unknown_click())
    s.run()
    reconcile(s)
    code, out, _ = msads("why", event_id)
    assert code == 0
    assert "[NO] Did Microsoft count it? no: Microsoft reports NoMatchingClickFound" in out
    assert "auto-tagging" in out


def test_reconciling_again_changes_nothing_and_sends_nothing(shop):
    s = shop
    event_id = s.event("Purchase")
    s.run()
    reconcile(s)
    first = view(s, event_id)
    sent = len(s.emu.admin.requests(operation="ApplyOfflineConversions"))
    reconcile(s)
    assert view(s, event_id) == first
    assert len(s.emu.admin.requests(operation="ApplyOfflineConversions")) == sent


def test_only_the_window_asked_for_is_reconciled(shop):
    s = shop
    old = s.event("Purchase")
    s.run()
    s.emu.admin.advance(3 * 24 * HOUR)
    new = s.event("Purchase", event_time=s.now() - timedelta(hours=1))
    s.run()
    summary = reconcile(s, days=1)
    assert summary.uploaded == 1
    assert view(s, new)[0] == "Success" and view(s, old) == (None, None, None, False)


def test_a_day_without_a_per_record_file_is_never_called_not_reported():
    from datetime import UTC, datetime

    from include.msads_capi.reconcile import ReconcileSummary, _view

    now = datetime.fromtimestamp(1_900_000_000, UTC)
    row = {"event_id": "e", "account_id": 1, "goal_id": 2,
           "decided_at": now - timedelta(days=3)}
    summary = ReconcileSummary(1)
    assert _view(row, None, now, summary, filed=False).ms_status is None
    assert _view(row, None, now, summary, filed=True).ms_status == "NotReported"
    assert (summary.waiting, summary.not_reported) == (1, 1)


def test_a_goal_paused_in_microsoft_after_the_last_refresh_counts_nothing(shop, msads):
    s = shop
    s.emu.admin.update_goal(s.purchase_goal, status="Paused")  # the ledger still thinks Active
    event_id = s.event("Purchase")
    s.run()
    assert s.reason(event_id) == ["uploaded"]
    reconcile(s)
    assert view(s, event_id) == ("Success", False, "GoalNotFoundOrInactive", True)
    code, out, _ = msads("why", event_id)
    assert "no: Microsoft reports GoalNotFoundOrInactive" in out and "enable it" in out
