"""ApplyOfflineConversions through the real bingads SDK: Microsoft's rules, codes and indexes."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from suds import WebFault

from tests.emulator.support import ago, batch_errors, conversion, emu_now, upload

SHA = hashlib.sha256(b"someone@example.com").hexdigest()


@pytest.fixture
def click(emu, tenant):
    return emu.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})


def test_an_accepted_conversion_reads_back_through_the_admin_api(emu, cm, tenant, click):
    when = ago(emu, hours=1)
    result = upload(cm, [conversion(tenant, when, MicrosoftClickId=click, ConversionValue=19.99,
                                    ConversionCurrencyCode="EUR")])
    assert result == ""  # suds unwraps an empty <PartialErrors/> to an empty Text
    assert batch_errors(result) == []
    assert cm.get_response_header()["TrackingId"]
    [row] = emu.admin.conversions()
    assert row["click_id"] == click and row["value"] == 19.99 and row["currency"] == "EUR"
    assert row["goal_id"] == tenant.goal_id and row["account_id"] == tenant.account_id
    assert row["conversion_time"] == when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(
        ".000000Z", "Z")


def test_errors_come_back_at_the_zero_based_index_of_the_failing_item(emu, cm, tenant, click):
    when = ago(emu, hours=1)
    rows = [conversion(tenant, when, MicrosoftClickId=click),
            conversion(tenant, when, ConversionName="No such goal", MicrosoftClickId=click),
            conversion(tenant, ago(emu, hours=2), MicrosoftClickId=click),
            conversion(tenant, when, MicrosoftClickId="not-a-click-id")]
    result = upload(cm, rows)
    assert batch_errors(result) == [(1, 5606, "OfflineConversionNameInvalid"),
                                    (3, 5604, "OfflineConversionMicrosoftClickIdInvalid")]
    first = result.BatchError[0]
    assert first.Message == "The conversion name do not match an existing offline conversion goal."
    assert first.Type == "BatchError"
    assert len(emu.admin.conversions()) == 2
    assert [r["code"] for r in emu.admin.rejections()] == [5606, 5604]


def test_more_than_1000_items_is_an_operation_error_fault(emu, cm, tenant, click):
    now = emu_now(emu)
    rows = [conversion(tenant, now - timedelta(minutes=i + 1), MicrosoftClickId=click)
            for i in range(1001)]
    with pytest.raises(WebFault) as caught:
        upload(cm, rows)
    detail = caught.value.fault.detail.ApiFaultDetail
    assert detail.OperationErrors.OperationError.Code == "5601"
    assert detail.OperationErrors.OperationError.ErrorCode == "OfflineConversionsLimitExceeded"
    assert detail.BatchErrors == ""
    assert emu.admin.conversions() == []


def test_exactly_1000_items_are_accepted(emu, cm, tenant, click):
    now = emu_now(emu)
    rows = [conversion(tenant, now - timedelta(seconds=i + 1), MicrosoftClickId=click)
            for i in range(1000)]
    assert batch_errors(upload(cm, rows)) == []
    assert len(emu.admin.conversions()) == 1000


def test_an_empty_list_is_an_operation_error(cm):
    with pytest.raises(WebFault) as caught:
        cm.ApplyOfflineConversions(OfflineConversions={"OfflineConversion": []})
    assert caught.value.fault.detail.ApiFaultDetail.OperationErrors.OperationError.Code == "5600"


@pytest.mark.parametrize("fields, code", [
    ({}, 5603),  # no click id and no hashed identifier
    ({"MicrosoftClickId": "f894f652ea334e739002f7167ab8f8e"}, 5604),  # 31 characters
    ({"MicrosoftClickId": "f894f652ea334e739002f7167ab8f8e3"}, 5604),  # never issued
    ({"MicrosoftClickId": "", "HashedEmailAddress": "someone@example.com"}, 5628),
    ({"HashedEmailAddress": SHA.upper()}, 5628),  # must be lowercase hex
    ({"HashedPhoneNumber": "+14255550100"}, 5629),
    ({"HashedPhoneNumber": SHA[:63]}, 5629),
])
def test_identity_rules(emu, cm, tenant, fields, code):
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), **fields)])
    assert [c for _, c, _ in batch_errors(result)] == [code]


def test_a_click_id_of_another_account_is_invalid(emu, cm, tenant):
    other = emu.admin.create_account(tenant.customer_id, "Other")
    foreign = emu.admin.issue_click(other["id"], click_time={"ago": 7200})
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=foreign)])
    assert batch_errors(result) == [(0, 5604, "OfflineConversionMicrosoftClickIdInvalid")]


def test_hashed_identifiers_replace_the_click_id_on_an_enhanced_goal(emu, cm, tenant):
    phone = hashlib.sha256(b"+14255550100").hexdigest()
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), HashedEmailAddress=SHA,
                                    HashedPhoneNumber=phone)])
    assert batch_errors(result) == []
    [row] = emu.admin.conversions()
    assert (row["hashed_email"], row["hashed_phone"], row["click_id"]) == (SHA, phone, None)


def test_hashed_identifiers_need_an_enhanced_conversions_goal(emu, cm, tenant):
    emu.admin.create_goal("Plain goal", account_id=tenant.account_id,
                          enhanced_conversions=False)
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), ConversionName="Plain goal",
                                    HashedEmailAddress=SHA)])
    assert batch_errors(result) == [(0, 5630, "NotEligibleForEnhancedConversions")]


@pytest.mark.parametrize("when, code", [
    (None, 5608),
    ("not-a-date", 5607),
    ("2026-13-01T00:00:00Z", 5607),
])
def test_conversion_time_must_be_given_and_valid(emu, cm, tenant, click, when, code):
    row = {"ConversionName": tenant.goal_name, "MicrosoftClickId": click}
    if when is not None:
        row["ConversionTime"] = when
    assert [c for _, c, _ in batch_errors(upload(cm, [row]))] == [code]


def test_conversion_time_rules(emu, cm, tenant):
    admin = emu.admin
    old_click = admin.issue_click(tenant.account_id, click_time={"ago": 100 * 86400})
    recent_click = admin.issue_click(tenant.account_id, click_time={"ago": 3600})
    ten_days = admin.issue_click(tenant.account_id, click_time={"ago": 10 * 86400})
    admin.create_goal("Week goal", account_id=tenant.account_id, window_minutes=7 * 1440,
                      created_at={"ago": 200 * 86400})
    rows = [
        conversion(tenant, ago(emu, minutes=-10), MicrosoftClickId=recent_click),  # future
        conversion(tenant, ago(emu, days=91), MicrosoftClickId=old_click),  # > 90 days
        conversion(tenant, ago(emu, hours=2), MicrosoftClickId=recent_click),  # before click
        conversion(tenant, ago(emu, days=8), ConversionName="Week goal",
                   MicrosoftClickId=old_click),  # older than the goal's 7-day window
        conversion(tenant, ago(emu, days=2), ConversionName="Week goal",
                   MicrosoftClickId=ten_days),  # 8 days after the click: outside the window
    ]
    assert [(i, c) for i, c, _ in batch_errors(upload(cm, rows))] == [
        (0, 5614), (1, 5609), (2, 5616), (3, 5609), (4, 5617)]


def test_a_goal_younger_than_two_hours_refuses_conversions_until_it_is_old_enough(
        emu, cm, tenant, click):
    emu.admin.create_goal("Fresh goal", account_id=tenant.account_id,
                          created_at={"ago": 2 * 3600 - 300})
    row = conversion(tenant, ago(emu, minutes=30), ConversionName="Fresh goal",
                     MicrosoftClickId=click)
    assert batch_errors(upload(cm, [row])) == [(0, 5615, "OfflineConversionNotAcceptedForGoal")]
    emu.admin.advance(300)  # no sleeping: the emulator's clock moves
    assert batch_errors(upload(cm, [row])) == []


@pytest.mark.parametrize("value, code", [(-1, 5610), (1e12, 5610), ("abc", 5610),
                                         ("NaN", 5610), (0, None), (999999.5, None)])
def test_conversion_value_rules(emu, cm, tenant, click, value, code):
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click,
                                    ConversionValue=value)])
    assert [c for _, c, _ in batch_errors(result)] == ([code] if code else [])


@pytest.mark.parametrize("currency, ok", [
    ("EUR", True), ("USD", True), ("TRL", True), ("HRK", True), ("VEF", True),
    ("TRY", False),  # ISO 4217, but not on Microsoft's list
    ("usd", False), ("USDollar", False), ("XXX", False), ("", False)])
def test_currency_must_be_on_microsofts_conversion_currency_list(emu, cm, tenant, click,
                                                                  currency, ok):
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click,
                                    ConversionCurrencyCode=currency)])
    assert [c for _, c, _ in batch_errors(result)] == ([] if ok else [5611])


def test_duplicates_are_accepted_and_ignored(emu, cm, tenant, click):
    when = ago(emu, hours=1)
    first = conversion(tenant, when, MicrosoftClickId=click, ConversionValue=10)
    same_instant = conversion(tenant, when.astimezone().replace(microsecond=when.microsecond),
                              MicrosoftClickId=click, ConversionValue=12)
    hashed = conversion(tenant, when, HashedEmailAddress=SHA)
    assert batch_errors(upload(cm, [first, same_instant, hashed, hashed])) == []
    assert batch_errors(upload(cm, [first])) == []
    accepted, dups = emu.admin.conversions(), emu.admin.duplicates()
    assert len(accepted) == 2
    assert len(dups) == 3
    assert {d["original_id"] for d in dups} == {r["id"] for r in accepted}


def test_a_different_time_or_goal_is_not_a_duplicate(emu, cm, tenant, click):
    emu.admin.create_goal("Lead", account_id=tenant.account_id)
    when = ago(emu, hours=1)
    rows = [conversion(tenant, when, MicrosoftClickId=click),
            conversion(tenant, ago(emu, minutes=59), MicrosoftClickId=click),
            conversion(tenant, when, ConversionName="Lead", MicrosoftClickId=click)]
    assert batch_errors(upload(cm, rows)) == []
    assert len(emu.admin.conversions()) == 3 and emu.admin.duplicates() == []


def test_a_unique_goal_counts_only_the_first_conversion_of_a_click(emu, cm, tenant, click):
    emu.admin.create_goal("Signup", account_id=tenant.account_id, count_type="Unique",
                          category="Signup")
    rows = [conversion(tenant, ago(emu, hours=1), ConversionName="Signup",
                       MicrosoftClickId=click),
            conversion(tenant, ago(emu, minutes=30), ConversionName="Signup",
                       MicrosoftClickId=click)]
    assert batch_errors(upload(cm, rows)) == []
    assert [r["counted"] for r in emu.admin.conversions()] == [True, False]


def test_customer_goals_serve_every_account_of_the_customer(emu, cm, tenant):
    emu.admin.create_goal("Shared", customer_id=tenant.customer_id)
    other = emu.admin.create_goal("Elsewhere", account_id=emu.admin.create_account(
        tenant.customer_id)["id"])
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 7200})
    rows = [conversion(tenant, ago(emu, hours=1), ConversionName="Shared",
                       MicrosoftClickId=click),
            conversion(tenant, ago(emu, hours=1), ConversionName=other["name"],
                       MicrosoftClickId=click)]
    assert batch_errors(upload(cm, rows)) == [(1, 5606, "OfflineConversionNameInvalid")]


def test_factory_objects_and_naive_utc_datetimes_work_too(emu, cm, tenant, click):
    arr = cm.factory.create("ArrayOfOfflineConversion")
    oc = cm.factory.create("OfflineConversion")
    oc.ConversionName = tenant.goal_name
    oc.ConversionTime = emu_now(emu).replace(tzinfo=None, microsecond=0)
    oc.MicrosoftClickId = click
    arr.OfflineConversion.append(oc)
    assert batch_errors(cm.ApplyOfflineConversions(OfflineConversions=arr)) == []


def test_a_goal_just_added_through_the_api_refuses_conversions_for_two_hours(emu, cm, tenant,
                                                                             click):
    from tests.emulator.test_goals import add, offline_goal

    add(cm, offline_goal(cm, Name="Brand new"))
    row = conversion(tenant, ago(emu, minutes=30), ConversionName="Brand new",
                     MicrosoftClickId=click)
    assert batch_errors(upload(cm, [row])) == [(0, 5615, "OfflineConversionNotAcceptedForGoal")]
