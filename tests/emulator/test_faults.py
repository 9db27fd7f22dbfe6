"""Faults on demand: throttling, internal and API errors, HTTP errors, unreadable requests,
slow answers, HTTP 200 faults, and faults that hit only requests holding some text."""

from __future__ import annotations

import time

import pytest
from suds import WebFault

from include.msads_emulator.testing import campaign_client, http_session
from tests.emulator.support import ago, batch_errors, conversion, upload


def list_goals(cm):
    return cm.GetConversionGoalsByIds(ConversionGoalTypes="OfflineConversion")


def adapi_error(cm):
    with pytest.raises(WebFault) as caught:
        list_goals(cm)
    return caught.value.fault.detail.AdApiFaultDetail.Errors.AdApiError


def last_status(emu) -> int:
    return emu.admin.requests(bodies=False)[-1]["status"]


def test_throttling_for_the_next_n_calls(emu, cm, tenant):
    emu.admin.add_fault("throttle", count=2)
    for _ in range(2):
        error = adapi_error(cm)
        assert (error.Code, error.ErrorCode) == ("117", "CallRateExceeded")
        assert last_status(emu) == 500
    assert list_goals(cm).ConversionGoals
    assert emu.admin.faults()[0]["hits"] == 2


def test_throttling_for_a_period_of_emulator_time(emu, cm, tenant):
    emu.admin.add_fault("throttle", for_seconds=60)
    assert adapi_error(cm).Code == "117"
    assert adapi_error(cm).Code == "117"
    emu.admin.advance(61)
    assert list_goals(cm).ConversionGoals


def test_internal_error_is_code_0(emu, cm, tenant):
    emu.admin.add_fault("internal_error")
    error = adapi_error(cm)
    assert (error.Code, error.ErrorCode) == ("0", "InternalError")


def test_faults_can_arrive_with_http_200_as_the_live_service_sends_them(emu, cm, tenant):
    emu.admin.add_fault("throttle", http_status=200)
    assert adapi_error(cm).Code == "117"
    assert last_status(emu) == 200
    emu.admin.update_settings(fault_http_status=200)  # every fault, rule faults included
    cm.authorization_data.developer_token = "WRONG"
    assert adapi_error(cm).Code == "105"
    assert last_status(emu) == 200


def test_http_5xx_with_a_non_soap_body(emu, cm, tenant):
    emu.admin.add_fault("http_error", count=3, http_status=503)
    for _ in range(3):
        with pytest.raises(Exception) as caught:
            list_goals(cm)
        assert caught.value.args[0] == (503, "Service Unavailable")
    emu.admin.add_fault("http_error")
    with pytest.raises(Exception) as caught:
        list_goals(cm)
    assert caught.value.args[0] == (500, "Internal Server Error")
    assert list_goals(cm).ConversionGoals


@pytest.mark.parametrize("status, reason, words", [
    (404, "Not Found", "was not found"), (400, "Bad Request", "could not be understood")])
def test_http_4xx_with_a_non_soap_body(emu, cm, tenant, status, reason, words):
    emu.admin.add_fault("http_error", http_status=status)
    with pytest.raises(Exception) as caught:
        list_goals(cm)
    assert caught.value.args[0] == (status, reason)
    logged = emu.admin.requests()[-1]
    assert logged["status"] == status
    assert f"<title>{status} - {reason}</title>" in logged["response"]
    assert words in logged["response"]


def test_a_retired_api_version_is_code_303(emu, cm, tenant):
    emu.admin.add_fault("adapi_error", code=303)
    error = adapi_error(cm)
    assert (error.Code, error.ErrorCode) == ("303", "ApiVersionNoLongerSupported")
    assert error.Message.startswith("This version of the Bing Ads API is no longer supported.")


def test_one_item_can_make_every_request_it_is_in_unreadable(emu, cm, tenant):
    """A deserialization fault for any request whose body holds one poisoned item: WCF's
    DeserializationFailed with no per-item BatchErrors, as when one value cannot be read."""
    clicks = emu.admin.issue_clicks(tenant.account_id, 1000, click_time={"ago": 7200})
    poison = clicks[637]
    emu.admin.add_fault("deserialization", body_contains=poison, for_seconds=3600)
    when = ago(emu, hours=1)
    rows = [conversion(tenant, when, MicrosoftClickId=c) for c in clicks]
    for batch in (rows, rows[600:700]):
        with pytest.raises(WebFault) as caught:
            upload(cm, batch)
        fault = caught.value.fault
        assert fault.faultcode == "a:DeserializationFailed"
        assert "OfflineConversions" in fault.faultstring and poison in fault.faultstring
        assert not hasattr(fault.detail, "ApiFaultDetail")
        assert last_status(emu) == 500
    assert emu.admin.conversions() == []
    assert batch_errors(upload(cm, rows[:637] + rows[638:])) == []
    assert len(emu.admin.conversions()) == 999
    assert emu.admin.faults()[0]["hits"] == 2
    emu.admin.update_settings(fault_http_status=200)
    with pytest.raises(WebFault):
        upload(cm, [rows[637]])
    assert last_status(emu) == 200


def test_body_contains_narrows_any_fault_kind(emu, cm, tenant):
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 7200})
    emu.admin.add_fault("throttle", body_contains="Poisoned goal")
    assert batch_errors(upload(cm, [conversion(tenant, ago(emu, hours=1),
                                               MicrosoftClickId=click)])) == []
    assert list_goals(cm).ConversionGoals
    with pytest.raises(WebFault) as caught:
        upload(cm, [conversion(tenant, ago(emu, hours=1), ConversionName="Poisoned goal",
                               MicrosoftClickId=click)])
    assert caught.value.fault.detail.AdApiFaultDetail.Errors.AdApiError.Code == "117"
    assert emu.admin.faults()[0]["hits"] == 1 and emu.admin.faults()[0]["remaining"] == 0


def test_a_batch_error_names_the_item_that_holds_some_text(emu, cm, tenant):
    clicks = emu.admin.issue_clicks(tenant.account_id, 5, click_time={"ago": 7200})
    rows = [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=c) for c in clicks]
    emu.admin.add_fault("batch_error", code=5604, body_contains=clicks[3], as_fault=True)
    with pytest.raises(WebFault) as caught:
        upload(cm, rows)
    detail = caught.value.fault.detail.ApiFaultDetail
    error = detail.BatchErrors.BatchError
    assert (error.Index, error.Code, error.ErrorCode) == (
        "3", "5604", "OfflineConversionMicrosoftClickIdInvalid")
    assert detail.OperationErrors == ""
    assert emu.admin.conversions() == []
    emu.admin.add_fault("batch_error", code=5604, body_contains=clicks[3])  # in PartialErrors
    assert batch_errors(upload(cm, rows)) == [(3, 5604, "OfflineConversionMicrosoftClickIdInvalid")]
    assert [c["click_id"] for c in emu.admin.conversions()] == clicks[:3] + clicks[4:]
    assert [(r["item_index"], r["code"]) for r in emu.admin.rejections()] == [(3, 5604)]


def test_a_fault_can_start_after_some_calls(emu, cm, tenant):
    emu.admin.add_fault("http_error", http_status=404, after_calls=2, for_seconds=600)
    assert list_goals(cm).ConversionGoals
    assert list_goals(cm).ConversionGoals
    for _ in range(2):
        with pytest.raises(Exception) as caught:
            list_goals(cm)
        assert caught.value.args[0] == (404, "Not Found")
    assert emu.admin.faults()[0]["hits"] == 2


def test_an_operation_error_on_demand(emu, cm, tenant):
    emu.admin.add_fault("operation_error", code=5612)
    with pytest.raises(WebFault) as caught:
        upload(cm, [conversion(tenant, ago(emu, hours=1))])
    error = caught.value.fault.detail.ApiFaultDetail.OperationErrors.OperationError
    assert (error.Code, error.ErrorCode) == ("5612", "OfflineConversionsApplyFailed")


def test_faults_scoped_to_an_operation_and_an_account(emu, cm, tenant):
    other = emu.admin.create_account(tenant.customer_id)
    emu.admin.add_fault("throttle", operation="ApplyOfflineConversions",
                        account_id=other["id"], count=5)
    assert list_goals(cm).ConversionGoals  # another operation
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 7200})
    assert batch_errors(upload(cm, [conversion(tenant, ago(emu, hours=1),
                                               MicrosoftClickId=click)])) == []
    cm.authorization_data.account_id = other["id"]
    with pytest.raises(WebFault) as caught:
        upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click)])
    assert caught.value.fault.detail.AdApiFaultDetail.Errors.AdApiError.Code == "117"


def test_slow_answers_and_client_timeouts(emu, cm, tenant):
    emu.admin.add_fault("delay", delay_seconds=0.3)
    started = time.monotonic()
    assert list_goals(cm).ConversionGoals
    assert time.monotonic() - started >= 0.3
    impatient = campaign_client(emu, tenant, timeout=0.2)
    emu.admin.add_fault("delay", delay_seconds=1.0)
    with pytest.raises(Exception) as caught:
        list_goals(impatient)
    assert "timed out" in str(caught.value).lower()


def test_the_token_endpoint_can_fail_too(emu, tenant):
    emu.admin.add_fault("http_error", operation="token", http_status=503)
    emu.admin.add_fault("throttle")  # a SOAP fault with no operation never hits sign-in
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
