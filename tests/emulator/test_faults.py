"""Faults on demand: throttling, internal and API errors, HTTP error pages, unreadable requests,
slow answers, chosen statuses, and faults that hit only requests holding some text."""

from __future__ import annotations

import json
import time

import pytest
from openapi_client.exceptions import ApiException

from include.msads_emulator.testing import campaign_client, http_session
from tests.emulator.support import ago, batch_errors, conversion, fault_of, upload


def list_goals(cm):
    return cm.GetConversionGoalsByIds({"ConversionGoalTypes": "OfflineConversion"})


def adapi_error(cm) -> tuple[int, dict]:
    """(HTTP status, first AdApiError) of the AdApiFaultDetail a goals query answers."""
    with pytest.raises(ApiException) as caught:
        list_goals(cm)
    status, fault = fault_of(caught)
    assert fault["Type"] == "AdApiFaultDetail"
    return status, fault["Errors"][0]


def error_page(cm) -> ApiException:
    """The SDK's exception for an answer that is an HTML page, not a REST fault."""
    with pytest.raises(ApiException) as caught:
        list_goals(cm)
    exc = caught.value
    assert exc.body.startswith("<!DOCTYPE html>") and exc.data is None
    with pytest.raises(ValueError):
        json.loads(exc.body)
    return exc


def test_throttling_for_the_next_n_calls(emu, cm, tenant):
    emu.admin.add_fault("throttle", count=2)
    for _ in range(2):
        status, error = adapi_error(cm)
        assert (error["Code"], error["ErrorCode"]) == (117, "CallRateExceeded")
        assert status == 400  # errors.py: every fault but sign-in (401) and code 0 (500)
    assert list_goals(cm).conversion_goals
    assert emu.admin.faults()[0]["hits"] == 2


def test_throttling_for_a_period_of_emulator_time(emu, cm, tenant):
    emu.admin.add_fault("throttle", for_seconds=60)
    assert adapi_error(cm)[1]["Code"] == 117
    assert adapi_error(cm)[1]["Code"] == 117
    emu.admin.advance(61)
    assert list_goals(cm).conversion_goals


def test_internal_error_is_code_0_on_http_500(emu, cm, tenant):
    emu.admin.add_fault("internal_error")
    status, error = adapi_error(cm)
    assert (status, error["Code"], error["ErrorCode"]) == (500, 0, "InternalError")


def test_a_fault_can_come_with_another_error_status_but_not_a_success(emu, cm, tenant):
    from include.msads_emulator import AdminError

    emu.admin.add_fault("throttle", http_status=503)
    status, error = adapi_error(cm)
    assert (status, error["Code"]) == (503, 117)
    # The SDK reads a 2xx answer as the operation's response: a fault on 200 would pass as
    # an empty success, which Microsoft's REST services never send.
    for kind in ("throttle", "operation_error", "deserialization"):
        with pytest.raises(AdminError, match="http_status") as caught:
            emu.admin.add_fault(kind, http_status=200, code=5612)
        assert caught.value.status == 400
    assert emu.admin.faults()[-1]["hits"] == 1 and len(emu.admin.faults()) == 1
    assert list_goals(cm).conversion_goals


def test_http_5xx_with_a_page_that_is_not_json(emu, cm, tenant):
    emu.admin.add_fault("http_error", count=3, http_status=503)
    for _ in range(3):
        exc = error_page(cm)
        assert (exc.status, exc.reason) == (503, "Service Unavailable")
    emu.admin.add_fault("http_error")
    exc = error_page(cm)
    assert (exc.status, exc.reason) == (500, "Internal Server Error")
    assert list_goals(cm).conversion_goals


@pytest.mark.parametrize("status, reason, words", [
    (404, "Not Found", "was not found"), (400, "Bad Request", "could not be understood")])
def test_http_4xx_with_a_page_that_is_not_json(emu, cm, tenant, status, reason, words):
    emu.admin.add_fault("http_error", http_status=status)
    exc = error_page(cm)
    assert (exc.status, exc.reason) == (status, reason)
    logged = emu.admin.requests()[-1]
    assert logged["status"] == status
    assert f"<title>{status} - {reason}</title>" in logged["response"]
    assert words in logged["response"]


def test_a_retired_api_version_is_code_303(emu, cm, tenant):
    emu.admin.add_fault("adapi_error", code=303)
    status, error = adapi_error(cm)
    assert (status, error["Code"], error["ErrorCode"]) == (400, 303,
                                                            "ApiVersionNoLongerSupported")
    assert error["Message"].startswith(
        "This version of the Bing Ads API is no longer supported.")


def test_one_item_can_make_every_request_it_is_in_unreadable(emu, cm, tenant):
    """A deserialization fault for any request whose body holds one poisoned item: the whole
    request cannot be read, so 100 NullRequest and no per-item BatchErrors, as when one value
    cannot be bound to the request object."""
    clicks = emu.admin.issue_clicks(tenant.account_id, 1000, click_time={"ago": 7200})
    poison = clicks[637]
    emu.admin.add_fault("deserialization", body_contains=poison, for_seconds=3600)
    when = ago(emu, hours=1)
    rows = [conversion(tenant, when, MicrosoftClickId=c) for c in clicks]
    for batch in (rows, rows[600:700]):
        with pytest.raises(ApiException) as caught:
            upload(cm, batch)
        status, fault = fault_of(caught)
        assert status == 400 and fault["Type"] == "AdApiFaultDetail"
        [error] = fault["Errors"]
        assert (error["Code"], error["ErrorCode"]) == (100, "NullRequest")
        assert "ApplyOfflineConversions" in error["Detail"] and poison in error["Detail"]
        assert "BatchErrors" not in fault
    assert emu.admin.conversions() == []
    assert batch_errors(upload(cm, rows[:637] + rows[638:])) == []
    assert len(emu.admin.conversions()) == 999
    assert emu.admin.faults()[0]["hits"] == 2


def test_body_contains_narrows_any_fault_kind(emu, cm, tenant):
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 7200})
    emu.admin.add_fault("throttle", body_contains="Poisoned goal")
    assert batch_errors(upload(cm, [conversion(tenant, ago(emu, hours=1),
                                               MicrosoftClickId=click)])) == []
    assert list_goals(cm).conversion_goals
    with pytest.raises(ApiException) as caught:
        upload(cm, [conversion(tenant, ago(emu, hours=1), ConversionName="Poisoned goal",
                               MicrosoftClickId=click)])
    assert fault_of(caught)[1]["Errors"][0]["Code"] == 117
    assert emu.admin.faults()[0]["hits"] == 1 and emu.admin.faults()[0]["remaining"] == 0


def test_a_batch_error_names_the_item_that_holds_some_text(emu, cm, tenant):
    clicks = emu.admin.issue_clicks(tenant.account_id, 5, click_time={"ago": 7200})
    rows = [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=c) for c in clicks]
    emu.admin.add_fault("batch_error", code=5604, body_contains=clicks[3], as_fault=True)
    with pytest.raises(ApiException) as caught:
        upload(cm, rows)
    status, fault = fault_of(caught)
    assert status == 400 and fault["Type"] == "ApiFaultDetail"
    [error] = fault["BatchErrors"]
    assert (error["Index"], error["Code"], error["ErrorCode"]) == (
        3, 5604, "OfflineConversionMicrosoftClickIdInvalid")
    assert fault["OperationErrors"] == []
    assert emu.admin.conversions() == []
    emu.admin.add_fault("batch_error", code=5604, body_contains=clicks[3])  # in PartialErrors
    assert batch_errors(upload(cm, rows)) == [(3, 5604, "OfflineConversionMicrosoftClickIdInvalid")]
    assert [c["click_id"] for c in emu.admin.conversions()] == clicks[:3] + clicks[4:]
    assert [(r["item_index"], r["code"]) for r in emu.admin.rejections()] == [(3, 5604)]


def test_a_fault_can_start_after_some_calls(emu, cm, tenant):
    emu.admin.add_fault("http_error", http_status=404, after_calls=2, for_seconds=600)
    assert list_goals(cm).conversion_goals
    assert list_goals(cm).conversion_goals
    for _ in range(2):
        exc = error_page(cm)
        assert (exc.status, exc.reason) == (404, "Not Found")
    assert emu.admin.faults()[0]["hits"] == 2


def test_an_operation_error_on_demand(emu, cm, tenant):
    emu.admin.add_fault("operation_error", code=5612)
    with pytest.raises(ApiException) as caught:
        upload(cm, [conversion(tenant, ago(emu, hours=1))])
    status, fault = fault_of(caught)
    assert status == 400 and fault["Type"] == "ApiFaultDetail" and fault["BatchErrors"] == []
    [error] = fault["OperationErrors"]
    assert (error["Code"], error["ErrorCode"]) == (5612, "OfflineConversionsApplyFailed")


def test_faults_scoped_to_an_operation_and_an_account(emu, cm, tenant):
    other = emu.admin.create_account(tenant.customer_id)
    emu.admin.add_fault("throttle", operation="ApplyOfflineConversions",
                        account_id=other["id"], count=5)
    assert list_goals(cm).conversion_goals  # another operation
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 7200})
    assert batch_errors(upload(cm, [conversion(tenant, ago(emu, hours=1),
                                               MicrosoftClickId=click)])) == []
    cm.use(tenant, account_id=other["id"])
    with pytest.raises(ApiException) as caught:
        upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click)])
    assert fault_of(caught)[1]["Errors"][0]["Code"] == 117


def test_slow_answers_and_client_timeouts(emu, cm, tenant):
    emu.admin.add_fault("delay", delay_seconds=0.3)
    started = time.monotonic()
    assert list_goals(cm).conversion_goals
    assert time.monotonic() - started >= 0.3
    impatient = campaign_client(emu, tenant, timeout=0.2)
    emu.admin.add_fault("delay", delay_seconds=1.0)
    with pytest.raises(Exception) as caught:
        list_goals(impatient)
    assert "timed out" in str(caught.value).lower()


def test_the_token_endpoint_can_fail_too(emu, tenant):
    emu.admin.add_fault("http_error", operation="token", http_status=503)
    emu.admin.add_fault("throttle")  # a fault with no operation never hits sign-in
    answer = http_session(emu).post(emu.token_url, data={
        "client_id": tenant.client_id, "client_secret": tenant.client_secret,
        "grant_type": "refresh_token", "refresh_token": tenant.refresh_token})
    assert answer.status_code == 503
    answer = http_session(emu).post(emu.token_url, data={
        "client_id": tenant.client_id, "client_secret": tenant.client_secret,
        "grant_type": "refresh_token", "refresh_token": tenant.refresh_token})
    assert answer.status_code == 200


def test_bad_fault_specs_are_refused(emu, tenant):
    from include.msads_emulator import AdminError

    with pytest.raises(AdminError, match="kind must be one of"):
        emu.admin.add_fault("meteor")
    with pytest.raises(AdminError, match="delay_seconds"):
        emu.admin.add_fault("delay")
    with pytest.raises(AdminError, match="body_contains"):
        emu.admin.add_fault("throttle", body_contains="")
    with pytest.raises(AdminError, match="unknown fault option.*after_call"):
        emu.admin.add_fault("throttle", after_call=2)  # a typo is not silently ignored
    with pytest.raises(AdminError, match="code"):
        emu.admin.add_fault("batch_error")
