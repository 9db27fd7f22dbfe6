"""Microsoft's documented rules, end to end: the pipeline, the real SDK and the emulator.

Each test is an outcome that Microsoft decides differently from what the pipeline did before:
the goal's window counts from the click, a time a little ahead waits, goal state is used,
naive times and currencies get what Microsoft says, and fault codes mean what Microsoft says.
Every time is relative to the emulator's clock.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from include.msads_capi.goals.refresh import refresh_account
from include.msads_capi.identity import normalize_email
from include.msads_capi.microsoft.client import AdsClient
from include.msads_capi.pipeline import upload
from include.msads_capi.pipeline.run import run_once
from include.msads_capi.settings import PipelineConfig

APPLY = "ApplyOfflineConversions"
DAY = timedelta(days=1)


def _refresh(s) -> None:
    refresh_account(s.warehouse, s.client, s.account, now=s.now())


def _goal(s, msads, name: str, event: str, **fields) -> int:
    """A goal made in Microsoft Advertising, fetched, and mapped from ``event``."""
    goal = s.emu.admin.create_goal(name, account_id=s.tenant.account_id, **fields)
    _refresh(s)
    code, _, err = msads("map", "add", "--account", str(s.tenant.account_id), "--goal",
                         str(goal["id"]), "--event", event)
    assert code == 0, err
    return goal["id"]


def _row(s, event_id: str) -> dict:
    with psycopg.connect(s.warehouse.url) as conn:
        cur = conn.execute("SELECT status, reason, detail, next_attempt_at, ms_code "
                           "FROM msads.event_outcomes WHERE event_id = %s", (event_id,))
        rows = cur.fetchall()
    assert len(rows) == 1, rows
    return dict(zip(("status", "reason", "detail", "next_attempt_at", "ms_code"), rows[0],
                    strict=True))


def _click_of(s, event_id: str) -> str:
    with psycopg.connect(s.warehouse.url) as conn:
        return conn.execute("SELECT msclkid FROM conversion_events WHERE event_id = %s",
                            (event_id,)).fetchone()[0]


def test_the_goal_window_counts_from_the_click_and_only_90_days_are_checked(shop, msads):
    s = shop
    goal = _goal(s, msads, "Renewal", "Renewal", window_minutes=30 * 1440)
    # 45 days old, 5 days after its click: inside the 30-day window that starts at the click
    late = s.event("Renewal", event_time=s.now() - 45 * DAY, msclkid=s.click(hours_ago=50 * 24))
    # no click id: only the 90 days apply (Microsoft matches the hash to ana's click, which
    # the emulator issued with her identity, 2 days before)
    s.emu.admin.issue_click(s.tenant.account_id, click_time=(s.now() - 62 * DAY).isoformat(),
                            hashed_email=normalize_email("ana@example.com").sha256)
    hashed = s.event("Renewal", event_time=s.now() - 60 * DAY, email="ana@example.com")
    too_old = s.event("Renewal", event_time=s.now() - 91 * DAY,
                      msclkid=s.click(hours_ago=92 * 24))
    s.run()
    assert s.reason(late) == ["uploaded"]
    assert s.reason(hashed) == ["uploaded"]
    assert s.reason(too_old) == ["outside_window"]
    assert "90 days" in _row(s, too_old)["detail"]
    received = s.emu.admin.conversions(goal_id=goal)
    assert len(received) == 2 and all(c["counted"] for c in received), received


def test_a_time_a_little_ahead_waits_for_its_moment_and_far_ahead_is_skipped(shop):
    s = shop
    when = s.now() + timedelta(minutes=2)
    soon = s.event(event_time=when)
    far = s.event(event_time=s.now() + timedelta(hours=2))
    s.run()
    held = _row(s, soon)
    assert (held["status"], held["reason"]) == ("deferred", "not_due_yet")
    assert abs((held["next_attempt_at"] - when).total_seconds()) < 1  # at its own time
    assert s.reason(far) == ["future_time"]
    assert s.emu.admin.conversions() == [] and s.emu.admin.rejections() == []
    s.emu.admin.advance(60)
    s.run()  # not yet due: nothing sent
    assert s.reason(soon) == ["not_due_yet"] and s.emu.admin.conversions() == []
    s.emu.admin.advance(90)
    s.run()
    assert s.reason(soon) == ["uploaded"] and len(s.emu.admin.conversions()) == 1


def test_microsoft_saying_the_time_is_in_the_future_defers_the_row(shop):
    s = shop
    event = s.event(event_time=s.now() + timedelta(seconds=60))

    def ahead():  # this machine's clock runs two minutes ahead of Microsoft's
        return s.now() + timedelta(minutes=2)

    def run(run_id: str) -> dict:
        return run_once(s.warehouse, lambda account: s.client, run_id, PipelineConfig(),
                        clock=ahead)

    run("ahead-1")
    held = _row(s, event)
    assert (held["status"], held["reason"], held["ms_code"]) == ("deferred", "not_due_yet",
                                                                 5614)
    assert s.emu.admin.conversions() == []
    s.emu.admin.advance(180)
    run("ahead-2")
    assert s.reason(event) == ["uploaded"]


def test_a_paused_goal_holds_its_events_until_it_is_active_again(shop, msads):
    s = shop
    s.emu.admin.update_goal(s.purchase_goal, status="Paused")
    _refresh(s)
    event = s.event()
    s.run()
    held = _row(s, event)
    assert (held["status"], held["reason"]) == ("deferred", "goal_paused")
    assert held["next_attempt_at"] <= s.now() + timedelta(minutes=15)
    assert s.emu.admin.conversions() == []
    code, out, _ = msads("why", event)
    assert code == 0 and "[NO] Is the goal active? goal" in out and "Paused" in out
    s.emu.admin.update_goal(s.purchase_goal, status="Active")
    _refresh(s)
    s.emu.admin.advance(16 * 60)
    s.run()
    assert s.reason(event) == ["uploaded"]
    assert [c["counted"] for c in s.emu.admin.conversions()] == [1]


def test_events_of_a_goal_paused_for_more_than_a_week_are_skipped(shop):
    s = shop
    s.emu.admin.update_goal(s.purchase_goal, status="Paused")
    _refresh(s)
    event = s.event()
    s.run()
    s.emu.admin.advance(7 * 86400 + 60)
    s.run()
    assert _row(s, event)["status"] == "skipped" and s.reason(event) == ["goal_paused"]
    assert s.emu.admin.conversions() == []


def test_hashed_only_events_for_a_goal_without_enhanced_conversions_get_a_reason(shop, msads):
    s = shop
    goal = _goal(s, msads, "Store visit", "Visit", enhanced_conversions=False)
    hashed = s.event("Visit", email="ana@example.com", phone="+1 650 253 0000")
    clicked = s.event("Visit", email="bob@example.com", msclkid=s.click())
    s.run()
    assert s.reason(hashed) == ["enhanced_conversions_off"]
    assert s.reason(clicked) == ["uploaded"]
    assert [c["click_id"] for c in s.emu.admin.conversions(goal_id=goal)] == [
        _click_of(s, clicked)]
    code, out, _ = msads("why", hashed)
    assert code == 0 and "[NO] Can the goal use a hashed email or phone?" in out
    assert "web UI" in out


def test_externally_attributed_goals_get_credit_and_model_from_the_events_table(shop, msads):
    s = shop
    goal = _goal(s, msads, "Modelled sale", "Sale", externally_attributed=True)
    good = s.event("Sale", external_attribution_credit=0.4,
                   external_attribution_model="house-mmm")
    no_model = s.event("Sale", external_attribution_credit=0.4)
    too_much = s.event("Sale", external_attribution_credit=1.5,
                       external_attribution_model="house-mmm")
    # a goal that does not use external attribution gets neither field, even when filled
    plain = s.event("Purchase", external_attribution_credit=0.4,
                    external_attribution_model="house-mmm")
    s.run()
    assert s.reason(good) == ["uploaded"] and s.reason(plain) == ["uploaded"]
    assert s.reason(no_model) == ["attribution_missing"]
    assert "external_attribution_model" in _row(s, no_model)["detail"]
    assert s.reason(too_much) == ["attribution_invalid"]
    [sent] = s.emu.admin.conversions(goal_id=goal)
    assert (sent["external_attribution_credit"], sent["external_attribution_model"],
            sent["counted"]) == (0.4, "house-mmm", 1)
    [other] = s.emu.admin.conversions(goal_id=s.purchase_goal)
    assert other["external_attribution_credit"] is None and other["counted"] == 1


def test_currencies_follow_microsofts_list_not_all_of_iso_4217(shop, msads):
    s = shop
    lira = s.event(value=10, currency_code="TRY")  # ISO 4217, not on Microsoft's list
    kuna = s.event(value=10, currency_code="HRK")  # on Microsoft's list
    s.run()
    assert s.reason(lira) == ["invalid_value"] and "'TRY'" in _row(s, lira)["detail"]
    assert s.reason(kuna) == ["uploaded"]
    assert [c["currency"] for c in s.emu.admin.conversions()] == ["HRK"]
    code, _, err = msads("space", "add", "istanbul", "--currency", "TRY", "--region", "TR")
    assert code != 0 and "TRY" in err and "conversions" in err


@pytest.mark.parametrize("code", [513, 514])
def test_513_and_514_are_refused_requests_not_unknown_accounts(shop, code):
    s = shop
    events = [s.event() for _ in range(3)]
    s.emu.admin.add_fault("operation_error", code=code, operation=APPLY, count=1)
    summary = s.run()
    assert [s.reason(e) for e in events] == [["uploaded"]] * 3, summary
    with psycopg.connect(s.warehouse.url) as conn:
        assert conn.execute("SELECT status FROM msads.accounts").fetchone() == ("active",)


def test_a_bug_in_our_code_fails_at_once_and_is_never_retried(shop, sleeper, monkeypatch):
    s = shop
    event = s.event()

    def broken(client, operation, kwargs):
        raise AttributeError("'NoneType' object has no attribute 'OfflineConversion'")

    monkeypatch.setattr(AdsClient, "_invoke", staticmethod(broken))
    with pytest.raises(AttributeError):
        s.run()
    assert sleeper.waits == []  # not taken for Microsoft being unreachable
    assert _row(s, event)["status"] == "pending"  # kept: the next run takes it again


def test_a_type_error_building_a_request_is_not_a_refusal(shop, sleeper, monkeypatch):
    s = shop
    event = s.event()

    def broken(row):
        raise TypeError("unsupported operand type(s)")

    monkeypatch.setattr(upload, "conversion", broken)
    with pytest.raises(TypeError):
        s.run()
    assert sleeper.waits == [] and s.emu.admin.requests(operation=APPLY) == []
    assert _row(s, event)["status"] == "pending"


@pytest.mark.parametrize("code", [0, 5612])
def test_a_batch_error_0_or_5612_retries_its_row_and_rejects_nothing(shop, code):
    s = shop
    events = [s.event() for _ in range(3)]
    click = _click_of(s, events[1])
    s.emu.admin.add_fault("batch_error", code=code, operation=APPLY, body_contains=click,
                          count=1)
    s.run()
    assert s.reason(events[0]) == ["uploaded"] and s.reason(events[2]) == ["uploaded"]
    waiting = _row(s, events[1])
    assert (waiting["status"], waiting["reason"], waiting["ms_code"]) == ("pending", "retry",
                                                                           code)
    s.emu.admin.advance(2 * 60)
    s.run()
    assert s.reason(events[1]) == ["uploaded"]
    assert len(s.emu.admin.conversions()) == 3 and s.emu.admin.duplicates() == []
