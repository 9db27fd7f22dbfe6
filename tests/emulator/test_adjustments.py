"""ApplyOfflineConversionAdjustments through Microsoft's REST SDK (msads). Bodies the SDK
refuses to build go to the emulator as raw JSON (``post``)."""

from __future__ import annotations

import json

import pytest
import requests

from include.msads_emulator.testing import CAMPAIGN, http_session, strict_parse
from tests.emulator.support import ago, batch_errors, conversion, upload

ADJUST_PATH = "/CampaignManagement/v13/OfflineConversionAdjustments/Apply"


@pytest.fixture
def uploaded(emu, cm, tenant):
    """A click and an accepted conversion an hour old; returns (click id, conversion time)."""
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})
    when = ago(emu, hours=1)
    assert batch_errors(upload(cm, [conversion(tenant, when, MicrosoftClickId=click,
                                               ConversionValue=20)])) == []
    return click, when


def adjust(cm, rows):
    return cm.ApplyOfflineConversionAdjustments({"OfflineConversionAdjustments": rows})


def post(emu, cm, rows) -> requests.Response:
    """Adjustments the SDK would not send, POSTed as JSON with the tenant's headers."""
    with http_session(emu) as session:
        return session.post(emu.base_url + ADJUST_PATH, timeout=30,
                            headers={**cm.headers, "Content-Type": "application/json"},
                            data=json.dumps({"OfflineConversionAdjustments": rows}).encode())


def adjustment(tenant, click, when, adjusted_at, kind="Restate", **fields):
    row = {"AdjustmentTime": adjusted_at.isoformat(), "AdjustmentType": kind,
           "ConversionName": tenant.goal_name, "ConversionTime": when.isoformat(),
           "MicrosoftClickId": click}
    row.update(fields)
    return row


def test_restate_and_retract_apply_to_the_original(emu, cm, tenant, uploaded):
    click, when = uploaded
    result = adjust(cm, [adjustment(tenant, click, when, ago(emu, minutes=30),
                                    AdjustmentValue=15.0, AdjustmentCurrencyCode="EUR")])
    assert result.partial_errors == []  # an empty list, not an absent field
    [row] = emu.admin.conversions()
    assert (row["restated_value"], row["restated_currency"]) == (15.0, "EUR")
    assert batch_errors(adjust(cm, [adjustment(tenant, click, when, ago(emu, minutes=10),
                                               "Retract")])) == []
    assert emu.admin.conversions()[0]["retracted_at"] is not None
    kinds = [(a["adjustment_type"], a["original_id"]) for a in emu.admin.adjustments()]
    assert kinds == [("Restate", row["id"]), ("Retract", row["id"])]


def test_an_adjustment_without_an_original_is_accepted_and_recorded(emu, cm, tenant, uploaded):
    click, when = uploaded
    other_time = ago(emu, hours=2)
    assert batch_errors(adjust(cm, [adjustment(tenant, click, other_time, ago(emu, minutes=5),
                                               "Retract")])) == []
    [row] = emu.admin.adjustments()
    assert (row["original_id"], row["applied"]) == (None, False)
    assert (row["not_applied_reason"], row["duplicate_of"]) == ("AdjustmentOriginalNotFound",
                                                                None)
    assert emu.admin.conversions()[0]["retracted_at"] is None


def test_adjustment_rules(emu, cm, tenant, uploaded):
    click, when = uploaded
    later = ago(emu, minutes=30)
    rows = [
        adjustment(tenant, click, when, later, "Undo"),
        adjustment(tenant, click, when, later, AdjustmentValue=1),
        adjustment(tenant, click, when, ago(emu, hours=2), AdjustmentValue=1),
        adjustment(tenant, click, when, ago(emu, minutes=-5), AdjustmentValue=1),
        adjustment(tenant, click, when, later, "Retract", AdjustmentValue=1),
        adjustment(tenant, click, when, later),
        adjustment(tenant, click, when, later, AdjustmentValue=-3),
        adjustment(tenant, click, when, later, AdjustmentValue=3, AdjustmentCurrencyCode="EURO"),
        adjustment(tenant, click, when, later, ConversionName="Unknown", AdjustmentValue=3),
    ]
    rows[1].pop("AdjustmentTime")
    assert [(i, c) for i, c, _ in batch_errors(adjust(cm, rows))] == [
        (0, 5618), (1, 5619), (2, 5620), (3, 5622), (4, 5624), (5, 5625), (6, 5610),
        (7, 5611), (8, 5606)]
    assert emu.admin.adjustments() == []


@pytest.mark.parametrize("text, code", [
    (lambda now: "yesterday", 5621),
    (lambda now: now.strftime("%Y-13-01T%H:%M:%SZ"), 5621),  # month 13
    (lambda now: "", 5619),
], ids=["text", "month 13", "empty"])
def test_an_adjustment_time_that_is_not_a_date_and_time_is_refused(emu, cm, tenant, uploaded,
                                                                   text, code):
    """The SDK refuses to build these (AdjustmentTime is a datetime), so they go raw."""
    click, when = uploaded
    good = adjustment(tenant, click, when, ago(emu, minutes=30), "Retract")
    bad = {**good, "AdjustmentTime": text(ago(emu, minutes=30))}
    answer = post(emu, cm, [good, bad])
    assert answer.status_code == 200, answer.text
    result = strict_parse(CAMPAIGN, "ApplyOfflineConversionAdjustments", 200, answer.text)
    assert [(i, c) for i, c, _ in batch_errors(result)] == [(1, code)]
    assert [a["item_index"] for a in emu.admin.adjustments()] == [0]


def test_an_adjustment_value_of_the_wrong_json_type_refuses_the_whole_request(emu, cm, tenant,
                                                                             uploaded):
    click, when = uploaded
    good = adjustment(tenant, click, when, ago(emu, minutes=30), "Retract")
    bad = adjustment(tenant, click, when, ago(emu, minutes=20), AdjustmentValue="15")
    answer = post(emu, cm, [good, bad])
    assert answer.status_code == 400
    fault = answer.json()
    assert fault["Type"] == "AdApiFaultDetail"
    [error] = fault["Errors"]
    assert (error["Code"], error["ErrorCode"]) == (100, "NullRequest")
    assert "AdjustmentValue" in error["Detail"]
    assert emu.admin.adjustments() == []
    assert emu.admin.conversions()[0]["retracted_at"] is None


def test_an_adjustment_of_an_unknown_well_formed_click_is_accepted(emu, cm, tenant):
    unknown = "0123456789abcdef0123456789abcdef"
    when = ago(emu, hours=1)
    rows = [adjustment(tenant, unknown, when, ago(emu, minutes=5), "Retract"),
            adjustment(tenant, "not-a-click", when, ago(emu, minutes=5), "Retract")]
    assert [(i, c) for i, c, _ in batch_errors(adjust(cm, rows))] == [(1, 5604)]
    [row] = emu.admin.adjustments()
    assert (row["click_id"], row["original_id"]) == (unknown, None)


def test_an_adjustment_more_than_90_days_after_the_conversion_time_is_refused(emu, cm, tenant):
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 95 * 86400})
    row = adjustment(tenant, click, ago(emu, days=91), ago(emu, days=1), "Retract")
    assert [(i, c) for i, c, _ in batch_errors(adjust(cm, [row]))] == [(0, 5609)]


# -- what became of each adjustment: applied, not applied (with Microsoft's reason) or a
# duplicate of one already applied (a retry after a lost answer, say)


def outcomes(emu, **filters) -> list[tuple[str, bool, str | None, int | None]]:
    """(type, applied, not_applied_reason, duplicate_of) of each adjustment, in order."""
    return [(a["adjustment_type"], a["applied"], a["not_applied_reason"], a["duplicate_of"])
            for a in emu.admin.adjustments(**filters)]


@pytest.mark.parametrize("together", [False, True], ids=["retried", "twice in one call"])
def test_an_identical_restate_sent_again_is_accepted_and_not_applied_again(emu, cm, tenant,
                                                                          uploaded, together):
    click, when = uploaded
    restate = adjustment(tenant, click, when, ago(emu, minutes=30), AdjustmentValue=15.0,
                         AdjustmentCurrencyCode="EUR")
    calls = [[restate, restate]] if together else [[restate], [restate]]
    for rows in calls:
        assert batch_errors(adjust(cm, rows)) == []
    first, _ = emu.admin.adjustments()
    assert outcomes(emu) == [("Restate", True, None, None),
                             ("Restate", False, None, first["id"])]
    [row] = emu.admin.conversions()
    assert (row["value"], row["restated_value"], row["restated_currency"]) == (20.0, 15.0, "EUR")


def test_a_retried_older_restate_does_not_undo_a_newer_one(emu, cm, tenant, uploaded):
    click, when = uploaded
    older = adjustment(tenant, click, when, ago(emu, minutes=30), AdjustmentValue=15.0)
    newer = adjustment(tenant, click, when, ago(emu, minutes=10), AdjustmentValue=30.0)
    for rows in ([older], [newer], [older]):
        assert batch_errors(adjust(cm, rows)) == []
    first, _, _ = emu.admin.adjustments()
    assert outcomes(emu) == [("Restate", True, None, None), ("Restate", True, None, None),
                             ("Restate", False, None, first["id"])]
    assert emu.admin.conversions()[0]["restated_value"] == 30.0


def test_a_restate_with_another_value_or_time_is_applied_and_the_last_wins(emu, cm, tenant, uploaded):
    click, when = uploaded
    same_time = ago(emu, minutes=30)
    for adjusted_at, value in ((same_time, 15.0), (same_time, 18.0),
                               (ago(emu, minutes=10), 25.0)):
        assert batch_errors(adjust(cm, [adjustment(tenant, click, when, adjusted_at,
                                                   AdjustmentValue=value)])) == []
        assert emu.admin.conversions()[0]["restated_value"] == value
    assert outcomes(emu) == [("Restate", True, None, None)] * 3


def test_a_retract_sent_again_is_a_duplicate_and_a_later_one_is_already_retracted(
        emu, cm, tenant, uploaded):
    click, when = uploaded
    retract = adjustment(tenant, click, when, ago(emu, minutes=30), "Retract")
    later = adjustment(tenant, click, when, ago(emu, minutes=10), "Retract")
    for rows in ([retract], [retract], [later]):
        assert batch_errors(adjust(cm, rows)) == []
    first, _, _ = emu.admin.adjustments()
    assert outcomes(emu) == [("Retract", True, None, None),
                             ("Retract", False, None, first["id"]),
                             ("Retract", False, "ConversionAlreadyRetracted", None)]
    assert emu.admin.conversions()[0]["retracted_at"] == first["adjustment_time"]


def test_a_restate_after_a_retract_changes_nothing(emu, cm, tenant, uploaded):
    click, when = uploaded
    restate = adjustment(tenant, click, when, ago(emu, minutes=10), AdjustmentValue=15.0)
    rows = [adjustment(tenant, click, when, ago(emu, minutes=30), "Retract"), restate, restate]
    assert batch_errors(adjust(cm, rows)) == []
    assert outcomes(emu) == [("Retract", True, None, None),
                             ("Restate", False, "ConversionAlreadyRetracted", None),
                             ("Restate", False, "ConversionAlreadyRetracted", None)]
    [row] = emu.admin.conversions()
    assert (row["value"], row["restated_value"], row["restated_currency"]) == (20.0, None, None)
    assert row["retracted_at"] is not None


def test_adjustments_can_be_counted_per_original(emu, cm, tenant, uploaded):
    """What a fault drill counts: per original, received, applied and absorbed duplicates."""
    click, when = uploaded
    other_click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})
    assert batch_errors(upload(cm, [conversion(tenant, when, MicrosoftClickId=other_click,
                                               ConversionValue=40)])) == []
    first, second = emu.admin.conversions()
    restate = adjustment(tenant, click, when, ago(emu, minutes=30), AdjustmentValue=15.0)
    retract = adjustment(tenant, other_click, when, ago(emu, minutes=30), "Retract")
    for rows in ([restate, retract], [restate], [restate, retract]):  # two retries
        assert batch_errors(adjust(cm, rows)) == []
    counts = {}
    for original in (first, second):
        rows = emu.admin.adjustments(original_id=original["id"])
        counts[original["id"]] = (len(rows), sum(r["applied"] for r in rows),
                                  sum(r["duplicate_of"] is not None for r in rows))
    assert counts == {first["id"]: (3, 1, 2), second["id"]: (2, 1, 1)}
