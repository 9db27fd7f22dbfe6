"""Refunds and cancellations reach Microsoft: restate and retract, through the real SDK and the
emulator, with one recorded outcome per adjustment and goal. Every time is relative to the
emulator's clock."""

from __future__ import annotations

import itertools
from datetime import timedelta

import psycopg
import pytest

_ids = itertools.count(1)
HOUR = timedelta(hours=1)


def adjust(s, event_id: str, kind: str, value: float | None = None, *,
           at: timedelta = timedelta(minutes=-10), currency: str | None = None,
           adjustment_id: str | None = None) -> str:
    """Insert one adjustment ``at`` from the emulator's now; returns its id."""
    adjustment_id = adjustment_id or f"adj-{next(_ids)}"
    with psycopg.connect(s.warehouse.url) as conn:
        conn.execute("INSERT INTO conversion_adjustments (adjustment_id, event_id, "
                     "adjustment_type, adjusted_value, currency_code, adjusted_at) VALUES "
                     "(%s, %s, %s, %s, %s, %s)",
                     (adjustment_id, event_id, kind, value, currency, s.now() + at))
    return adjustment_id


def outcomes(s, adjustment_id: str) -> list[tuple]:
    with psycopg.connect(s.warehouse.url) as conn:
        return conn.execute("SELECT goal_id, status, reason FROM msads.adjustment_results "
                            "WHERE adjustment_id = %s ORDER BY goal_id",
                            (adjustment_id,)).fetchall()


def reason(s, adjustment_id: str) -> str:
    rows = outcomes(s, adjustment_id)
    assert len(rows) == 1, rows
    return rows[0][2]


def received(s) -> list[dict]:
    return s.emu.admin.adjustments(account_id=s.tenant.account_id)


def uploaded_purchase(s, **fields) -> str:
    event_id = s.event("Purchase", **fields)
    s.run()
    assert s.reason(event_id) == ["uploaded"]
    return event_id


def test_a_refund_retracts_the_conversion_microsoft_counted(shop):
    s = shop
    event_id = uploaded_purchase(s)
    refund = adjust(s, event_id, "retract")
    summary = s.run()
    assert outcomes(s, refund) == [(s.purchase_goal, "uploaded", "uploaded")]
    assert summary["adjustments"] == {"uploaded": 1}
    [sent] = received(s)
    assert sent["adjustment_type"] == "Retract" and sent["adjustment_value"] is None
    [conversion] = s.emu.admin.conversions(account_id=s.tenant.account_id)
    assert conversion["retracted_at"] is not None


def test_a_partial_refund_restates_the_value_in_the_originals_currency(shop):
    s = shop
    event_id = uploaded_purchase(s, value=80, currency_code="EUR")
    partial = adjust(s, event_id, "restate", 55.5)
    s.run()
    assert reason(s, partial) == "uploaded"
    [sent] = received(s)
    assert (sent["adjustment_type"], sent["adjustment_value"], sent["currency"]) == (
        "Restate", 55.5, "EUR")
    [conversion] = s.emu.admin.conversions(account_id=s.tenant.account_id)
    assert conversion["restated_value"] == 55.5


def test_an_adjustment_of_an_email_only_conversion_is_found_by_its_hash(shop):
    s = shop
    s.emu.admin.update_goal(s.purchase_goal, enhanced_conversions=True)
    from include.msads_capi.goals.refresh import refresh_account

    refresh_account(s.warehouse, s.client, s.account, now=s.now())
    event_id = uploaded_purchase(s, email=" Buyer@Example.com ")
    refund = adjust(s, event_id, "retract")
    s.run()
    assert reason(s, refund) == "uploaded"
    [sent] = received(s)
    [conversion] = s.emu.admin.conversions(account_id=s.tenant.account_id)
    assert sent["hashed_email"] == conversion["hashed_email"] and sent["click_id"] is None
    assert conversion["retracted_at"] is not None


def test_an_adjustment_waits_for_its_pending_original_then_follows_it(shop):
    s = shop
    event_id = s.event("Purchase", event_time=s.now() + timedelta(minutes=2))  # held a little
    refund = adjust(s, event_id, "retract", at=timedelta(minutes=3))
    s.run()
    assert s.reason(event_id) == ["not_due_yet"]
    assert outcomes(s, refund) == [(0, "deferred", "original_not_uploaded")]
    assert received(s) == []
    s.emu.admin.advance(20 * 60)
    s.run()
    assert s.reason(event_id) == ["uploaded"]
    assert reason(s, refund) == "original_not_uploaded"  # planned before the upload went
    s.run()  # the next minute's run
    assert reason(s, refund) == "uploaded"


def test_an_adjustment_of_an_event_never_uploaded_gets_its_own_reason(shop):
    s = shop
    skipped = s.event("Signup")  # not mapped: never uploaded
    refund = adjust(s, skipped, "retract")
    unknown = adjust(s, "no-such-event", "retract")
    s.run()
    assert reason(s, refund) == "original_not_uploaded"
    assert reason(s, unknown) == "original_not_uploaded"
    assert received(s) == []


def test_a_pending_originals_adjustment_is_held_and_gives_up_after_a_day(shop):
    s = shop
    event_id = s.event("Purchase", msclkid=None, email=None, phone=None)  # no identifier
    s.run()
    assert s.reason(event_id) == ["no_identifier"]
    refund = adjust(s, event_id, "retract")
    s.run()
    assert reason(s, refund) == "original_not_uploaded"
    with psycopg.connect(s.warehouse.url) as conn:
        status = conn.execute("SELECT status FROM msads.adjustment_results WHERE "
                              "adjustment_id = %s", (refund,)).fetchone()[0]
    assert status == "skipped"  # the original ended: nothing to wait for


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("refund", 10, "invalid_adjustment"),
    ("restate", None, "invalid_adjustment"),
    ("restate", -5, "invalid_value"),
])
def test_a_bad_adjustment_is_skipped_with_the_fix_and_nothing_else_is_lost(shop, kind, value,
                                                                            expected):
    s = shop
    event_id = uploaded_purchase(s)
    bad = adjust(s, event_id, kind, value)
    good_event = uploaded_purchase(s)
    good = adjust(s, good_event, "retract")
    s.run()
    assert reason(s, bad) == expected
    assert reason(s, good) == "uploaded"
    with psycopg.connect(s.warehouse.url) as conn:
        fix = conn.execute("SELECT what_to_do FROM msads.adjustment_outcomes WHERE "
                           "adjustment_id = %s", (bad,)).fetchone()[0]
    assert fix


def test_an_adjustment_dated_before_its_conversion_is_refused_here(shop):
    s = shop
    event_id = uploaded_purchase(s, event_time=s.now() - HOUR)
    early = adjust(s, event_id, "retract", at=-2 * HOUR)
    ahead = adjust(s, event_id, "retract", at=timedelta(hours=3))
    s.run()
    assert reason(s, early) == "adjustment_before_conversion"
    assert reason(s, ahead) == "adjustment_in_future"
    assert received(s) == []


def test_retract_after_retract_and_restate_after_retract_are_not_sent(shop):
    s = shop
    event_id = uploaded_purchase(s)
    first = adjust(s, event_id, "retract", at=-20 * timedelta(minutes=1))
    s.run()
    again = adjust(s, event_id, "retract", at=-timedelta(minutes=5))
    restate = adjust(s, event_id, "restate", 10, at=-timedelta(minutes=4))
    s.run()
    assert reason(s, first) == "uploaded"
    assert reason(s, again) == "already_retracted"
    assert reason(s, restate) == "restate_after_retract"
    assert len(received(s)) == 1


def test_of_several_restates_the_latest_wins(shop):
    s = shop
    event_id = uploaded_purchase(s, value=100)
    late = adjust(s, event_id, "restate", 60, at=-timedelta(minutes=5))
    early = adjust(s, event_id, "restate", 90, at=-timedelta(minutes=30))
    s.run()
    assert reason(s, late) == "uploaded"
    assert reason(s, early) == "superseded"
    older = adjust(s, event_id, "restate", 70, at=-timedelta(minutes=20))  # arrives later
    s.run()
    assert reason(s, older) == "superseded"
    [conversion] = s.emu.admin.conversions(account_id=s.tenant.account_id)
    assert conversion["restated_value"] == 60


def test_a_restate_before_a_retract_in_one_run_is_superseded_by_it(shop):
    s = shop
    event_id = uploaded_purchase(s)
    restate = adjust(s, event_id, "restate", 10, at=-timedelta(minutes=30))
    retract = adjust(s, event_id, "retract", at=-timedelta(minutes=10))
    s.run()
    assert reason(s, retract) == "uploaded"
    assert reason(s, restate) == "superseded"


def test_an_adjustment_goes_to_every_goal_its_original_was_uploaded_to(shop, msads):
    s = shop
    second = s.emu.admin.create_goal("Purchase again", account_id=s.tenant.account_id)
    from include.msads_capi.goals.refresh import refresh_account

    refresh_account(s.warehouse, s.client, s.account, now=s.now())
    assert msads("map", "add", "--account", str(s.tenant.account_id), "--goal",
                 str(second["id"]), "--event", "Purchase")[0] == 0
    s.emu.admin.advance(3 * 3600)  # the new goal is old enough for Microsoft
    event_id = s.event("Purchase")
    s.run()
    assert s.reason(event_id) == ["uploaded", "uploaded"]
    refund = adjust(s, event_id, "retract")
    s.run()
    assert sorted(outcomes(s, refund)) == sorted([
        (s.purchase_goal, "uploaded", "uploaded"), (second["id"], "uploaded", "uploaded")])
    assert {a["goal_id"] for a in received(s)} == {s.purchase_goal, second["id"]}


def test_a_whole_request_failure_is_retried_not_rejected(shop):
    s = shop
    event_id = uploaded_purchase(s)
    refund = adjust(s, event_id, "retract")
    s.emu.admin.add_fault("http_error", operation="ApplyOfflineConversionAdjustments",
                          http_status=503, count=10)  # more than the client's own retries
    s.run()
    assert outcomes(s, refund) == [(s.purchase_goal, "pending", "retry")]
    s.emu.admin.clear_faults()
    s.emu.admin.advance(5 * 60)
    s.run()
    assert reason(s, refund) == "uploaded"
    assert len(received(s)) == 1


def test_rerunning_a_finished_run_sends_no_adjustment_again(shop):
    s = shop
    event_id = uploaded_purchase(s)
    adjust(s, event_id, "retract")
    s.run(run_id="adj-run")
    s.run(run_id="adj-run")
    s.run()
    assert len(received(s)) == 1


def test_why_shows_the_adjustments_after_the_conversions_own_outcome(shop, msads):
    s = shop
    event_id = uploaded_purchase(s, value=80)
    partial = adjust(s, event_id, "restate", 50, at=-timedelta(minutes=30))
    refund = adjust(s, event_id, "retract", at=-timedelta(minutes=10))
    s.run()
    code, out, _ = msads("why", event_id)
    assert code == 0
    own = out.index("Outcome for goal")
    assert own < out.index(f"Adjustment {partial} (restate to 50") < out.index(
        f"Adjustment {refund} (retract")
    assert "superseded" in out and "uploaded (uploaded)" in out
    code, out, _ = msads("why", event_id, "--json")
    assert code == 0 and f'"adjustment_id": "{refund}"' in out
