"""ApplyOfflineConversions through the real bingads SDK: Microsoft's rules, codes and indexes."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from suds import WebFault

from tests.emulator.support import ago, batch_errors, conversion, emu_now, outcome, upload

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
    ({"MicrosoftClickId": ""}, 5603),
    ({"MicrosoftClickId": "f894f652ea334e739002f7167ab8f8e"}, 5604),  # 31 characters
    ({"MicrosoftClickId": "g894f652ea334e739002f7167ab8f8e3"}, 5604),  # not hexadecimal
])
def test_a_missing_or_malformed_click_id_is_refused(emu, cm, tenant, fields, code):
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), **fields)])
    assert [c for _, c, _ in batch_errors(result)] == [code]


def test_an_unknown_well_formed_click_id_is_accepted_and_not_attributed(emu, cm, tenant):
    result = upload(cm, [conversion(tenant, ago(emu, hours=1),
                                    MicrosoftClickId="f894f652ea334e739002f7167ab8f8e3")])
    assert batch_errors(result) == []
    assert outcome(emu) == [(False, "NoMatchingClickFound")]


def test_a_click_id_of_another_account_is_accepted_and_not_counted(emu, cm, tenant):
    other = emu.admin.create_account(tenant.customer_id, "Other")
    foreign = emu.admin.issue_click(other["id"], click_time={"ago": 7200})
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=foreign)])
    assert batch_errors(result) == []
    assert outcome(emu) == [(False, "AccountMismatch")]


@pytest.mark.parametrize("fields, reason", [
    ({"HashedEmailAddress": "someone@example.com"}, "ConversionEmailAddressIsNotHashed"),
    ({"HashedPhoneNumber": "+14255550100"}, "ConversionPhoneNumberIsNotHashed"),
    ({"HashedPhoneNumber": SHA[:63]}, "ConversionPhoneNumberIsNotHashed"),
])
def test_identifiers_that_are_not_sha256_hex_are_accepted_and_not_counted(emu, cm, tenant,
                                                                          fields, reason):
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), **fields)])
    assert batch_errors(result) == []
    assert outcome(emu) == [(False, reason)]


def test_upper_case_hex_hashes_are_accepted_and_counted(emu, cm, tenant):
    phone = hashlib.sha256(b"+14255550100").hexdigest().upper()
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), HashedEmailAddress=SHA.upper(),
                                    HashedPhoneNumber=phone)])
    assert batch_errors(result) == []
    assert outcome(emu) == [(True, None)]


def test_hashed_identifiers_replace_the_click_id_on_an_enhanced_goal(emu, cm, tenant):
    phone = hashlib.sha256(b"+14255550100").hexdigest()
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), HashedEmailAddress=SHA,
                                    HashedPhoneNumber=phone)])
    assert batch_errors(result) == []
    [row] = emu.admin.conversions()
    assert (row["hashed_email"], row["hashed_phone"], row["click_id"]) == (SHA, phone, None)
    assert (row["counted"], row["not_counted_reason"]) == (True, None)


def test_hashed_identifiers_alone_count_only_on_an_enhanced_conversions_goal(emu, cm, tenant,
                                                                            click):
    emu.admin.create_goal("Plain goal", account_id=tenant.account_id,
                          enhanced_conversions=False)
    rows = [conversion(tenant, ago(emu, hours=1), ConversionName="Plain goal",
                       HashedEmailAddress=SHA),
            conversion(tenant, ago(emu, hours=1), ConversionName="Plain goal",
                       HashedEmailAddress=SHA, MicrosoftClickId=click)]
    assert batch_errors(upload(cm, rows)) == []
    assert outcome(emu) == [(False, "NotEligibleForEnhancedConversions"), (True, None)]


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
    rows = [
        conversion(tenant, ago(emu, minutes=-10), MicrosoftClickId=recent_click),  # future
        conversion(tenant, ago(emu, seconds=-1), MicrosoftClickId=recent_click),  # future
        conversion(tenant, ago(emu, days=91), MicrosoftClickId=old_click),  # > 90 days
        conversion(tenant, ago(emu, hours=2), MicrosoftClickId=recent_click),  # before click
    ]
    assert [(i, c) for i, c, _ in batch_errors(upload(cm, rows))] == [
        (0, 5614), (1, 5614), (2, 5609), (3, 5616)]


def test_the_goal_window_runs_from_the_click_not_from_the_upload(emu, cm, tenant):
    """45 days old, 5 days after its click, on a 30-day goal: within 90 days and within the
    window after the click, so accepted and counted."""
    admin = emu.admin
    admin.create_goal("Month goal", account_id=tenant.account_id, window_minutes=30 * 1440,
                      created_at={"ago": 200 * 86400})
    click = admin.issue_click(tenant.account_id, click_time={"ago": 50 * 86400})
    row = conversion(tenant, ago(emu, days=45), ConversionName="Month goal",
                     MicrosoftClickId=click)
    assert batch_errors(upload(cm, [row])) == []
    assert outcome(emu) == [(True, None)]


def test_more_than_90_days_old_is_refused_whatever_the_goal_window(emu, cm, tenant):
    admin = emu.admin
    admin.create_goal("Long goal", account_id=tenant.account_id, window_minutes=129600,
                      created_at={"ago": 200 * 86400})
    click = admin.issue_click(tenant.account_id, click_time={"ago": 95 * 86400})
    row = conversion(tenant, ago(emu, days=91), ConversionName="Long goal",
                     MicrosoftClickId=click)
    assert batch_errors(upload(cm, [row])) == [(0, 5609, "OfflineConversionTimeOutOfWindow")]


def test_a_conversion_more_than_the_window_after_its_click_is_accepted_and_not_counted(
        emu, cm, tenant):
    admin = emu.admin
    admin.create_goal("Month goal", account_id=tenant.account_id, window_minutes=30 * 1440,
                      created_at={"ago": 200 * 86400})
    click = admin.issue_click(tenant.account_id, click_time={"ago": 45 * 86400})
    row = conversion(tenant, ago(emu, days=5), ConversionName="Month goal",
                     MicrosoftClickId=click)  # 40 days after the click
    assert batch_errors(upload(cm, [row])) == []
    assert outcome(emu) == [(False, "OutsideGoalLookbackWindow")]


def test_microsofts_worked_example(emu, cm, tenant):
    """OfflineConversion.ConversionTime: three clicks on April 30, a 30-day goal, an upload on
    July 31 (92 days later): the April 30 conversion is refused (more than 90 days old), May 15
    counts, June 15 is accepted and not counted (outside April 30 through May 29)."""
    admin = emu.admin
    admin.create_goal("Example goal", account_id=tenant.account_id, window_minutes=43200,
                      created_at={"ago": 200 * 86400})
    clicked = 92 * 86400
    one, two, three = (admin.issue_click(tenant.account_id, click_time={"ago": clicked})
                       for _ in range(3))
    rows = [conversion(tenant, ago(emu, days=92), ConversionName="Example goal",
                       MicrosoftClickId=one),
            conversion(tenant, ago(emu, days=77), ConversionName="Example goal",
                       MicrosoftClickId=two),
            conversion(tenant, ago(emu, days=46), ConversionName="Example goal",
                       MicrosoftClickId=three)]
    assert batch_errors(upload(cm, rows)) == [(0, 5609, "OfflineConversionTimeOutOfWindow")]
    assert [(r["click_id"], r["counted"], r["not_counted_reason"])
            for r in emu.admin.conversions()] == [(two, True, None),
                                                 (three, False, "OutsideGoalLookbackWindow")]


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
    assert outcome(emu) == [(True, None)] * 3 and emu.admin.duplicates() == []


def test_an_all_goal_counts_every_conversion_time_of_a_click(emu, cm, tenant, click):
    rows = [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click),
            conversion(tenant, ago(emu, minutes=30), MicrosoftClickId=click)]
    assert batch_errors(upload(cm, rows)) == []
    assert outcome(emu) == [(True, None), (True, None)]


def test_a_unique_goal_counts_the_earliest_conversion_of_a_click(emu, cm, tenant, click):
    emu.admin.create_goal("Signup", account_id=tenant.account_id, count_type="Unique",
                          category="Signup")
    rows = [conversion(tenant, ago(emu, hours=1), ConversionName="Signup",
                       MicrosoftClickId=click),
            conversion(tenant, ago(emu, minutes=30), ConversionName="Signup",
                       MicrosoftClickId=click)]
    assert batch_errors(upload(cm, rows)) == []
    assert outcome(emu) == [(True, None), (False, "NotFirstConversionForUniqueGoal")]


def test_a_unique_goal_counts_the_earliest_even_when_it_arrives_last(emu, cm, tenant, click):
    emu.admin.create_goal("Signup", account_id=tenant.account_id, count_type="Unique",
                          category="Signup")
    later = conversion(tenant, ago(emu, minutes=30), ConversionName="Signup",
                       MicrosoftClickId=click)
    earlier = conversion(tenant, ago(emu, hours=2), ConversionName="Signup",
                         MicrosoftClickId=click)
    assert batch_errors(upload(cm, [later])) == []
    assert outcome(emu) == [(True, None)]
    assert batch_errors(upload(cm, [earlier])) == []
    assert outcome(emu) == [(False, "NotFirstConversionForUniqueGoal"), (True, None)]


def test_a_unique_goal_without_a_click_goes_by_the_hashed_identity(emu, cm, tenant):
    emu.admin.create_goal("Signup", account_id=tenant.account_id, count_type="Unique",
                          category="Signup")
    other = hashlib.sha256(b"other@example.com").hexdigest()
    rows = [conversion(tenant, ago(emu, minutes=10), ConversionName="Signup",
                       HashedEmailAddress=SHA),
            conversion(tenant, ago(emu, minutes=20), ConversionName="Signup",
                       HashedEmailAddress=SHA),
            conversion(tenant, ago(emu, minutes=30), ConversionName="Signup",
                       HashedEmailAddress=other)]
    assert batch_errors(upload(cm, rows)) == []
    assert outcome(emu) == [(False, "NotFirstConversionForUniqueGoal"), (True, None),
                            (True, None)]


def test_a_paused_goal_accepts_conversions_and_counts_none(emu, cm, tenant, click):
    emu.admin.update_goal(tenant.goal_id, status="Paused")
    row = conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click)
    assert batch_errors(upload(cm, [row])) == []
    emu.admin.update_goal(tenant.goal_id, status="Active")
    row = conversion(tenant, ago(emu, minutes=30), MicrosoftClickId=click)
    assert batch_errors(upload(cm, [row])) == []
    assert outcome(emu) == [(False, "GoalNotFoundOrInactive"), (True, None)]


def test_external_attribution_needs_both_fields_and_a_credit_from_0_to_1(emu, cm, tenant,
                                                                         click):
    emu.admin.create_goal("Attributed", account_id=tenant.account_id,
                          externally_attributed=True)
    when = ago(emu, hours=1)

    def row(minutes, **fields):
        return conversion(tenant, when + timedelta(minutes=minutes), ConversionName="Attributed",
                          MicrosoftClickId=click, **fields)

    rows = [row(0, ExternalAttributionCredit=0.25, ExternalAttributionModel="Linear"),
            row(1, ExternalAttributionCredit=0.5),
            row(2, ExternalAttributionModel="Linear"),
            row(3, ExternalAttributionCredit=1.5, ExternalAttributionModel="Linear"),
            row(4, ExternalAttributionCredit=-0.1, ExternalAttributionModel="Linear")]
    assert batch_errors(upload(cm, rows)) == []
    assert outcome(emu) == [(True, None),
                            (False, "ExternalAttributionRequiredFieldEmpty"),
                            (False, "ExternalAttributionRequiredFieldEmpty"),
                            (False, "ExternalAttributionCreditValueInvalid"),
                            (False, "ExternalAttributionCreditValueInvalid")]
    first = emu.admin.conversions()[0]
    assert (first["external_attribution_credit"], first["external_attribution_model"]) == (
        0.25, "Linear")


def test_external_attribution_on_a_goal_that_does_not_use_it(emu, cm, tenant, click):
    rows = [conversion(tenant, ago(emu, minutes=50), MicrosoftClickId=click,
                       ExternalAttributionCredit=0.5),
            conversion(tenant, ago(emu, minutes=40), MicrosoftClickId=click,
                       ExternalAttributionModel="Linear"),
            conversion(tenant, ago(emu, minutes=30), MicrosoftClickId=click)]
    assert batch_errors(upload(cm, rows)) == []
    assert outcome(emu) == [(False, "GoalNotEligibleForExternalAttribution"),
                            (False, "GoalNotEligibleForExternalAttribution"),
                            (True, None)]


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
