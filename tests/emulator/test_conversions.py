"""ApplyOfflineConversions through Microsoft's REST SDK (msads): Microsoft's rules, codes and
indexes. Bodies the SDK refuses to build go to the emulator as raw JSON (``post``)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, timedelta, timezone

import pytest
import requests
from openapi_client.exceptions import ApiException
from openapi_client.models.campaign.apply_offline_conversions_request import (
    ApplyOfflineConversionsRequest,
)
from openapi_client.models.campaign.offline_conversion import OfflineConversion

from include.msads_emulator.testing import CAMPAIGN, http_session, strict_parse
from tests.emulator.support import (
    ago,
    batch_errors,
    conversion,
    emu_now,
    fault_codes,
    fault_of,
    outcome,
    upload,
)

SHA = hashlib.sha256(b"someone@example.com").hexdigest()
APPLY_PATH = "/CampaignManagement/v13/OfflineConversions/Apply"


@pytest.fixture
def click(emu, tenant):
    return emu.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})


def post(emu, cm, body: str) -> requests.Response:
    """A JSON text the SDK would not send (a string for a number, a null item, garbage),
    POSTed to ApplyOfflineConversions with the tenant's headers."""
    with http_session(emu) as session:
        return session.post(emu.base_url + APPLY_PATH, data=body.encode(), timeout=30,
                            headers={**cm.headers, "Content-Type": "application/json"})


def post_rows(emu, cm, rows: list):
    """Raw items that the emulator answers with 200: the SDK's response model of the answer."""
    answer = post(emu, cm, json.dumps({"OfflineConversions": rows}))
    assert answer.status_code == 200, answer.text
    return strict_parse(CAMPAIGN, "ApplyOfflineConversions", 200, answer.text)


def test_an_accepted_conversion_reads_back_through_the_admin_api(emu, cm, tenant, click):
    when = ago(emu, hours=1)
    result = upload(cm, [conversion(tenant, when, MicrosoftClickId=click, ConversionValue=19.99,
                                    ConversionCurrencyCode="EUR")])
    assert result.partial_errors == []  # an empty list, not an absent field
    assert cm.tracking_id
    [logged] = emu.admin.requests(operation="ApplyOfflineConversions", bodies=False)
    assert logged["tracking_id"] == cm.tracking_id
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
    first = result.partial_errors[0]
    assert first.message == "The conversion name do not match an existing offline conversion goal."
    assert first.type == "BatchError"
    assert len(emu.admin.conversions()) == 2
    assert [r["code"] for r in emu.admin.rejections()] == [5606, 5604]


def test_more_than_1000_items_is_an_operation_error_fault(emu, cm, tenant, click):
    now = emu_now(emu)
    rows = [conversion(tenant, now - timedelta(minutes=i + 1), MicrosoftClickId=click)
            for i in range(1001)]
    with pytest.raises(ApiException) as caught:
        upload(cm, rows)
    status, fault = fault_of(caught)
    assert status == 400 and fault["Type"] == "ApiFaultDetail"
    assert [(e["Code"], e["ErrorCode"]) for e in fault["OperationErrors"]] == [
        (5601, "OfflineConversionsLimitExceeded")]
    assert fault["BatchErrors"] == []
    assert fault["TrackingId"] == cm.tracking_id
    assert emu.admin.conversions() == []


def test_exactly_1000_items_are_accepted(emu, cm, tenant, click):
    now = emu_now(emu)
    rows = [conversion(tenant, now - timedelta(seconds=i + 1), MicrosoftClickId=click)
            for i in range(1000)]
    assert batch_errors(upload(cm, rows)) == []
    assert len(emu.admin.conversions()) == 1000


@pytest.mark.parametrize("request_fields", [{"OfflineConversions": []}, {}],
                         ids=["empty list", "no list"])
def test_an_empty_or_missing_list_is_an_operation_error(cm, request_fields):
    with pytest.raises(ApiException) as caught:
        cm.ApplyOfflineConversions(request_fields)
    assert fault_of(caught)[0] == 400
    assert fault_codes(caught) == [(5600, "OfflineConversionsNullOrEmpty")]


def test_a_null_item_is_refused_at_its_own_index(emu, cm, tenant, click):
    """The SDK leaves null items out of the list it sends (shifting the indexes), so only a
    raw body carries one; the emulator answers 5602 at the null item's index."""
    row = conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click)
    result = post_rows(emu, cm, [None, row])
    assert batch_errors(result) == [(0, 5602, "OfflineConversionIsNull")]
    [stored] = emu.admin.conversions()
    assert stored["click_id"] == click


@pytest.mark.parametrize("body, detail", [
    ('{"OfflineConversions": [ROW, {"ConversionName": "x", "ConversionValue": "12.5"}]}',
     "ConversionValue"),
    ('{"OfflineConversions": [ROW, {"ConversionName": "x", "ConversionValue": "abc"}]}',
     "ConversionValue"),
    ('{"OfflineConversions": [ROW, {"ConversionName": "x", "MicrosoftClickId": 12345}]}',
     "MicrosoftClickId"),
    ('{"OfflineConversions": [ROW, "not an object"]}', "OfflineConversions[1]"),
    ('{"OfflineConversions": ROW}', "OfflineConversions"),
    ('{"OfflineConversions": [ROW', "not JSON"),
], ids=["number as string", "text as number", "number as click id", "string item",
        "object for list", "truncated JSON"])
def test_a_value_of_the_wrong_json_type_refuses_the_whole_request(emu, cm, tenant, click,
                                                                 body, detail):
    """A body that cannot be read into the request object is a 400 NullRequest fault, and
    none of its items is kept, not even the valid ones."""
    row = json.dumps(conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click))
    answer = post(emu, cm, body.replace("ROW", row))
    assert answer.status_code == 400
    fault = answer.json()
    assert fault["Type"] == "AdApiFaultDetail"
    [error] = fault["Errors"]
    assert (error["Code"], error["ErrorCode"]) == (100, "NullRequest")
    assert detail in error["Detail"]
    assert answer.headers["TrackingId"] == fault["TrackingId"]
    assert emu.admin.conversions() == [] and emu.admin.rejections() == []


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
    emu.admin.issue_click(tenant.account_id, click_time={"ago": 7200}, hashed_email=SHA)
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), HashedEmailAddress=SHA.upper(),
                                    HashedPhoneNumber=phone)])
    assert batch_errors(result) == []
    assert outcome(emu) == [(True, None)]


def test_hashed_identifiers_replace_the_click_id_on_an_enhanced_goal(emu, cm, tenant):
    phone = hashlib.sha256(b"+14255550100").hexdigest()
    emu.admin.issue_click(tenant.account_id, click_time={"ago": 7200}, hashed_email=SHA,
                          hashed_phone=phone)
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


def test_hashed_identifiers_count_only_when_they_are_a_clickers_within_the_window(
        emu, cm, tenant):
    """Without a click id, a conversion counts when one of its hashes is the identity of a
    click issued for this account, before the conversion and within the goal's window."""
    admin = emu.admin
    admin.create_goal("Week goal", account_id=tenant.account_id, window_minutes=7 * 1440,
                      created_at={"ago": 30 * 86400})
    phone, stranger, late, early, foreign = (
        hashlib.sha256(f"{n}@example.com".encode()).hexdigest()
        for n in ("phone", "stranger", "late", "early", "foreign"))
    other = admin.create_account(tenant.customer_id, "Other")
    admin.issue_click(tenant.account_id, click_time={"ago": 2 * 86400}, hashed_phone=phone)
    admin.issue_click(tenant.account_id, click_time={"ago": 3600}, hashed_email=late)
    admin.issue_click(tenant.account_id, click_time={"ago": 20 * 86400}, hashed_email=early)
    admin.issue_click(other["id"], click_time={"ago": 2 * 86400}, hashed_email=foreign)
    when = ago(emu, days=1)
    rows = [conversion(tenant, when, ConversionName="Week goal", HashedEmailAddress=stranger,
                       HashedPhoneNumber=phone),  # one hash is enough
            conversion(tenant, when, ConversionName="Week goal", HashedEmailAddress=stranger),
            conversion(tenant, when, ConversionName="Week goal", HashedEmailAddress=late),
            conversion(tenant, when, ConversionName="Week goal", HashedEmailAddress=early),
            conversion(tenant, when, ConversionName="Week goal", HashedEmailAddress=foreign)]
    assert batch_errors(upload(cm, rows)) == []
    assert outcome(emu) == [(True, None), (False, "NoMatchingClickFound"),
                            (False, "NoMatchingClickFound"),
                            (False, "OutsideGoalLookbackWindow"),
                            (False, "NoMatchingClickFound")]


def test_a_missing_conversion_time_is_refused(emu, cm, tenant, click):
    row = {"ConversionName": tenant.goal_name, "MicrosoftClickId": click}
    assert batch_errors(upload(cm, [row])) == [(0, 5608, "OfflineConversionTimeNullOrEmpty")]


@pytest.mark.parametrize("text, code", [
    (lambda now: "not-a-date", 5607),
    (lambda now: now.strftime("%Y-13-01T%H:%M:%SZ"), 5607),  # month 13
    (lambda now: "", 5608),
], ids=["text", "month 13", "empty"])
def test_a_conversion_time_that_is_not_a_date_and_time_is_refused(emu, cm, tenant, click,
                                                                  text, code):
    """The SDK refuses to build these (ConversionTime is a datetime), so they go raw."""
    good = conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click)
    bad = {**good, "ConversionTime": text(ago(emu, hours=1))}
    result = post_rows(emu, cm, [good, bad])
    assert [(i, c) for i, c, _ in batch_errors(result)] == [(1, code)]
    assert len(emu.admin.conversions()) == 1


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


@pytest.mark.parametrize("value, code", [
    (-1, 5610), (1e12, 5610), (float("nan"), 5610), (float("inf"), 5610),
    (0, None), (999999.5, None)])
def test_conversion_value_rules(emu, cm, tenant, click, value, code):
    """NaN and Infinity: the SDK writes them as the bare tokens Python's json module
    does (not strict JSON); a value that is text is test_a_value_of_the_wrong_json_type."""
    result = upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click,
                                    ConversionValue=value)])
    assert [c for _, c, _ in batch_errors(result)] == ([code] if code else [])
    assert len(emu.admin.conversions()) == (0 if code else 1)


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
    # The same instant written with another offset.
    same_instant = conversion(tenant, when.astimezone(timezone(timedelta(hours=2))),
                              MicrosoftClickId=click, ConversionValue=12)
    assert same_instant["ConversionTime"] != first["ConversionTime"]
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
    emu.admin.issue_clicks(tenant.account_id, click_time={"ago": 3600},
                           identities=[{"hashed_email": SHA}, {"hashed_email": other}])
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


def test_sdk_models_and_naive_utc_datetimes_work_too(emu, cm, tenant, click):
    """The SDK's own models, with a datetime without a zone: the SDK sends it without an
    offset, and the emulator reads it as UTC."""
    naive = (emu_now(emu) - timedelta(minutes=5)).replace(tzinfo=None, microsecond=0)
    oc = OfflineConversion(ConversionName=tenant.goal_name, ConversionTime=naive,
                           MicrosoftClickId=click)
    request = ApplyOfflineConversionsRequest(OfflineConversions=[oc])
    assert batch_errors(cm.ApplyOfflineConversions(request)) == []
    [sent] = emu.admin.requests(operation="ApplyOfflineConversions")
    assert json.loads(sent["body"])["OfflineConversions"][0]["ConversionTime"] == \
        naive.isoformat()
    [row] = emu.admin.conversions()
    assert row["conversion_time"] == naive.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_goal_just_added_through_the_api_refuses_conversions_for_two_hours(emu, cm, tenant,
                                                                             click):
    added = cm.AddConversionGoals({"ConversionGoals": [{
        "Type": "OfflineConversion", "Name": "Brand new", "GoalCategory": "Purchase",
        "ConversionWindowInMinutes": 43200, "CountType": "All", "Scope": "Account",
        "Status": "Active", "Revenue": {"Type": "VariableValue", "Value": 0,
                                        "CurrencyCode": "USD"}}]})
    assert added.partial_errors == [] and added.conversion_goal_ids[0]
    row = conversion(tenant, ago(emu, minutes=30), ConversionName="Brand new",
                     MicrosoftClickId=click)
    assert batch_errors(upload(cm, [row])) == [(0, 5615, "OfflineConversionNotAcceptedForGoal")]
