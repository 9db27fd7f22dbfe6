"""ApplyOfflineConversionAdjustments through the real bingads SDK."""

from __future__ import annotations

import pytest

from tests.emulator.support import ago, batch_errors, conversion, upload


@pytest.fixture
def uploaded(emu, cm, tenant):
    """A click and an accepted conversion an hour old; returns (click id, conversion time)."""
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})
    when = ago(emu, hours=1)
    assert batch_errors(upload(cm, [conversion(tenant, when, MicrosoftClickId=click,
                                               ConversionValue=20)])) == []
    return click, when


def adjust(cm, rows):
    return cm.ApplyOfflineConversionAdjustments(
        OfflineConversionAdjustments={"OfflineConversionAdjustment": rows})


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
    assert result == "" and batch_errors(result) == []
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
    assert row["original_id"] is None


def test_adjustment_rules(emu, cm, tenant, uploaded):
    click, when = uploaded
    later = ago(emu, minutes=30)
    rows = [
        adjustment(tenant, click, when, later, "Undo"),
        {**adjustment(tenant, click, when, later, AdjustmentValue=1), "AdjustmentTime": None},
        adjustment(tenant, click, when, ago(emu, hours=2), AdjustmentValue=1),
        adjustment(tenant, click, when, ago(emu, minutes=-5), AdjustmentValue=1),
        adjustment(tenant, click, when, later, "Retract", AdjustmentValue=1),
        adjustment(tenant, click, when, later),
        adjustment(tenant, click, when, later, AdjustmentValue=-3),
        adjustment(tenant, click, when, later, AdjustmentValue=3, AdjustmentCurrencyCode="EURO"),
        adjustment(tenant, click, when, later, ConversionName="Unknown", AdjustmentValue=3),
        {**adjustment(tenant, click, when, later, AdjustmentValue=1),
         "AdjustmentTime": "yesterday"},
    ]
    rows[1].pop("AdjustmentTime")
    assert [(i, c) for i, c, _ in batch_errors(adjust(cm, rows))] == [
        (0, 5618), (1, 5619), (2, 5620), (3, 5622), (4, 5624), (5, 5625), (6, 5610),
        (7, 5611), (8, 5606), (9, 5621)]
    assert emu.admin.adjustments() == []


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
