"""AdsClient and its tokens against the emulator: what a data engineer would notice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from include.msads_capi import crypto
from include.msads_capi.microsoft.faults import AccountAuthError, TransientError
from include.msads_capi.microsoft.tokens import TokenProvider, TokenStore

PROJECT = Path(__file__).resolve().parents[2]


def _stored_refresh_token(url: str) -> str:
    with psycopg.connect(url) as conn:
        (enc,) = conn.execute("SELECT refresh_token_enc FROM msads.oauth_tokens "
                              "WHERE conn_id = 'msads_default'").fetchone()
    return crypto.decrypt(enc)


def emu_now(emu) -> datetime:
    return datetime.fromisoformat(emu.admin.clock()["now"].replace("Z", "+00:00"))


def _token_calls(emu) -> int:
    return len(emu.admin.requests(service="oauth", operation="token", bodies=False))


def test_lists_accounts_and_goals(client, tenant):
    accounts = client.list_accounts()
    assert [(a.account_id, a.customer_id, a.status) for a in accounts] == [
        (tenant.account_id, tenant.customer_id, "Active")]
    goals = client.get_offline_goals(tenant.account_id, tenant.customer_id)
    assert [(g.goal_id, g.name) for g in goals] == [(tenant.goal_id, tenant.goal_name)]
    assert goals[0].window_minutes and goals[0].count_type


def test_rotated_refresh_token_is_stored_and_used_by_the_next_process(client, tenant, warehouse,
                                                                      emu, msads_conn):
    client.list_accounts()
    first = _stored_refresh_token(warehouse.url)
    assert first != tenant.refresh_token  # rotated on use, and kept
    # The connection still holds the original, now used, token; a new process must not use it.
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    proc = subprocess.run([sys.executable, "-m", "include.msads_capi.cli", "account", "list",
                           "--remote", "--json"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["account_id"] == tenant.account_id
    # the other process found the access token still valid in the warehouse: no new refresh
    assert _stored_refresh_token(warehouse.url) == first
    emu.admin.advance(2 * 3600)  # the stored access token has expired: the next one refreshes
    again = TokenProvider(client.profile, TokenStore(warehouse), clock=lambda: emu_now(emu))
    again.access_token()  # uses the stored (rotated) token; the original would be refused
    assert _stored_refresh_token(warehouse.url) not in (first, tenant.refresh_token)


def test_two_workers_refreshing_at_once_keep_the_newest_token(profile, warehouse, emu):
    import threading

    providers = [TokenProvider(profile, TokenStore(warehouse)) for _ in range(4)]
    tokens, errors = [], []

    def work(p):
        try:
            tokens.append(p.access_token())
        except Exception as exc:  # reported by the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in providers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(tokens)) == 1  # one refresh; the others waited and reused it
    assert _token_calls(emu) == 1
    emu.admin.advance(2 * 3600)
    # the token stored by the one refresh is the one that works next
    TokenProvider(profile, TokenStore(warehouse), clock=lambda: emu_now(emu)).access_token()
    assert _token_calls(emu) == 2


def test_expired_access_token_is_refreshed_once(client, tenant, emu):
    client.list_accounts()
    before = _token_calls(emu)
    emu.admin.advance(61 * 60)  # Microsoft expires it; our cache still thinks it is fresh
    goals = client.get_offline_goals(tenant.account_id, tenant.customer_id)
    assert goals
    assert _token_calls(emu) == before + 1
    calls = emu.admin.requests(operation="GetConversionGoalsByIds", bodies=False)
    assert len(calls) == 2  # the 109, then the retry with the new token


def test_revoked_refresh_token_is_an_account_level_failure(client, tenant, emu, warehouse):
    emu.admin.revoke_refresh_tokens(user_id=tenant.user_id)
    with pytest.raises(AccountAuthError, match="msads auth login --conn-id msads_default"):
        client.list_accounts()
    status = TokenStore(warehouse).status("msads_default")
    assert "invalid_grant" in status.last_error


def test_throttling_backs_off_at_least_a_minute_without_sleeping(client, tenant, emu, sleeper):
    emu.admin.add_fault("throttle", operation="GetConversionGoalsByIds", count=2)
    goals = client.get_offline_goals(tenant.account_id, tenant.customer_id)
    assert goals
    assert len(sleeper.waits) == 2 and all(w >= 60 for w in sleeper.waits)


def test_persistent_5xx_gives_up_with_a_transient_error(client, tenant, emu, sleeper):
    emu.admin.add_fault("http_error", http_status=503, operation="GetConversionGoalsByIds",
                        count=10)
    with pytest.raises(TransientError):
        client.get_offline_goals(tenant.account_id, tenant.customer_id)
    assert len(sleeper.waits) == client.retry.max_attempts - 1


def test_upload_returns_one_outcome_per_row_with_tracking_id(client, tenant, emu):
    now = emu.admin.clock()
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})
    rows = [
        {"ConversionName": "No such goal", "ConversionTime": now["now"][:19] + "Z",
         "MicrosoftClickId": click},
        {"ConversionName": tenant.goal_name, "ConversionTime": now["now"][:19] + "Z",
         "MicrosoftClickId": click, "ConversionValue": 10.0, "ConversionCurrencyCode": "USD"},
    ]
    result = client.upload(tenant.account_id, tenant.customer_id, rows)
    assert result.tracking_id
    assert [o.accepted for o in result.outcomes] == [False, True]
    assert result.outcomes[0].code == 5606 and result.outcomes[0].index == 0
    assert len(emu.admin.conversions(account_id=tenant.account_id)) == 1


def test_add_goal_then_fetch_it(client, tenant):
    goal_id = client.add_offline_goal(tenant.account_id, tenant.customer_id, name="Lead form",
                                      window_minutes=7 * 1440, revenue_type="NoValue",
                                      category="SubmitLeadForm")
    goals = {g.goal_id: g for g in client.get_offline_goals(tenant.account_id,
                                                             tenant.customer_id)}
    assert goals[goal_id].name == "Lead form" and goals[goal_id].window_minutes == 7 * 1440


def test_uploads_go_out_as_rest_json_with_utc_times_numbers_and_no_unset_fields(client, tenant,
                                                                                 emu):
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})
    when = emu_now(emu).astimezone(timezone(timedelta(hours=-5))) - timedelta(hours=1)
    client.upload(tenant.account_id, tenant.customer_id, [
        {"ConversionName": tenant.goal_name, "ConversionTime": when, "MicrosoftClickId": click,
         "ConversionValue": Decimal("19.99"), "ConversionCurrencyCode": "USD",
         "HashedEmailAddress": None}])
    [call] = emu.admin.requests(operation="ApplyOfflineConversions")
    assert call["method"] == "POST"
    assert call["path"] == "/CampaignManagement/v13/OfflineConversions/Apply"
    [item] = json.loads(call["body"])["OfflineConversions"]
    assert item == {"ConversionName": tenant.goal_name, "MicrosoftClickId": click,
                    "ConversionValue": 19.99, "ConversionCurrencyCode": "USD",
                    "ConversionTime": when.astimezone(UTC).replace(microsecond=0).isoformat()}
    headers = call["headers"]
    assert headers["authorization"].startswith("Bearer ")
    assert (headers["developertoken"], headers["customerid"], headers["customeraccountid"]) == (
        tenant.developer_token, str(tenant.customer_id), str(tenant.account_id))
    assert headers["user-agent"].startswith("BingAdsSDKPython.RestApi")
    assert headers["api-revision"] and headers["content-type"] == "application/json"


def test_a_naive_conversion_time_is_refused_before_anything_is_sent(client, tenant, emu):
    with pytest.raises(ValueError, match="time zone"):
        client.upload(tenant.account_id, tenant.customer_id, [
            {"ConversionName": tenant.goal_name,
             "ConversionTime": emu_now(emu).replace(tzinfo=None)}])
    assert emu.admin.requests(operation="ApplyOfflineConversions") == []


def test_the_client_leaves_other_pydantic_models_alone(client, tenant):
    """The SDK's ServiceClient patches pydantic's BaseModel for the whole process; ours must
    not, or Airflow's own models in the same worker would break."""
    from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

    class Frozen(BaseModel):
        model_config = ConfigDict(frozen=True)
        x: int
        _note: str = PrivateAttr(default="kept")

    client.list_accounts()
    client.get_offline_goals(tenant.account_id, tenant.customer_id)
    model = Frozen(x=1)
    assert model._note == "kept"
    with pytest.raises(ValidationError):
        model.x = 2


def test_hosts_are_the_sdks_own(profile):
    from bingads.service_client import ServiceClient

    from include.msads_capi.microsoft.profile import HOSTS

    for env, services in HOSTS.items():
        assert services["CampaignManagementService"] == ServiceClient.endpoints[env][
            "campaignmanagement"]
        assert services["CustomerManagementService"] == ServiceClient.endpoints[env][
            "customermanagement"]


def test_a_developer_token_microsoft_refuses_is_an_account_level_failure(make_client, emu,
                                                                         tenant):
    from include.msads_capi.microsoft.profile import profile_from_connection
    from tests.fixtures_microsoft import connection

    conn = connection(emu, tenant, developer_token="NOT-A-TOKEN")
    bad = make_client(profile_from_connection("msads_default", conn))
    with pytest.raises(AccountAuthError) as caught:
        bad.get_offline_goals(tenant.account_id, tenant.customer_id)
    assert caught.value.first.code == 105 and caught.value.http_status == 401
    assert caught.value.tracking_id  # read from the fault body as sent
    assert "NOT-A-TOKEN" not in str(caught.value)


def test_no_answer_in_time_is_transient(make_client, profile, tenant, emu, sleeper):
    client = make_client(profile)
    client.timeout = 0.3
    emu.admin.add_fault("delay", delay_seconds=1.5, operation="GetConversionGoalsByIds",
                        count=10)
    with pytest.raises(TransientError, match="did not answer in time"):
        client.get_offline_goals(tenant.account_id, tenant.customer_id)


def test_a_goal_microsoft_refuses_says_why(client, tenant):
    """Microsoft answers a null id for a refused goal, which the SDK's model cannot read: the
    client reads that answer itself and names Microsoft's reason."""
    from include.msads_capi.microsoft.faults import RequestError

    with pytest.raises(RequestError, match="5317 ConversionGoalNameAlreadyExists"):
        client.add_offline_goal(tenant.account_id, tenant.customer_id, name=tenant.goal_name)


def test_adjustments_go_over_rest_with_one_outcome_per_row(client, tenant, emu):
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})
    when = emu_now(emu) - timedelta(hours=2)
    client.upload(tenant.account_id, tenant.customer_id, [
        {"ConversionName": tenant.goal_name, "ConversionTime": when, "MicrosoftClickId": click,
         "ConversionValue": 50.0, "ConversionCurrencyCode": "USD"}])
    result = client.adjust(tenant.account_id, tenant.customer_id, [
        {"ConversionName": tenant.goal_name, "ConversionTime": when, "MicrosoftClickId": click,
         "AdjustmentType": "Restate", "AdjustmentTime": emu_now(emu) - timedelta(minutes=5),
         "AdjustmentValue": 20.0, "AdjustmentCurrencyCode": "USD"},
        {"ConversionName": tenant.goal_name, "ConversionTime": when, "MicrosoftClickId": click,
         "AdjustmentType": "Retract", "AdjustmentTime": when - timedelta(minutes=1)}])
    assert [o.accepted for o in result.outcomes] == [True, False]
    assert result.outcomes[1].code == 5620  # adjusted before the conversion happened
    [call] = emu.admin.requests(operation="ApplyOfflineConversionAdjustments")
    assert call["path"] == "/CampaignManagement/v13/OfflineConversionAdjustments/Apply"
    [row] = emu.admin.conversions()
    assert row["restated_value"] == 20.0


def test_reports_say_what_became_of_each_upload(client, tenant, emu):
    from include.msads_capi.microsoft.faults import RequestError

    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})
    when = emu_now(emu) - timedelta(hours=1)
    unknown_click = "0" * 32  # well formed, never issued: accepted, then not attributed
    result = client.upload(tenant.account_id, tenant.customer_id, [
        {"ConversionName": tenant.goal_name, "ConversionTime": when, "MicrosoftClickId": click},
        {"ConversionName": tenant.goal_name, "ConversionTime": when,
         "MicrosoftClickId": unknown_click},
        {"ConversionName": "No such goal", "ConversionTime": when, "MicrosoftClickId": click}])
    assert [o.accepted for o in result.outcomes] == [True, True, False]
    now = emu_now(emu)
    days = client.upload_report(tenant.account_id, tenant.customer_id, now - timedelta(days=1),
                                now)
    assert [(d.day, d.succeeded, d.failed) for d in days] == [(now.date(), 2, 1)]
    [goal] = client.goal_report(tenant.account_id, tenant.customer_id,
                                now - timedelta(days=1), now)
    assert (goal.goal_id, goal.conversion_name) == (tenant.goal_id, tenant.goal_name)
    assert (goal.succeeded, goal.unattributed, goal.success_rate) == (1, 1, 0.5)
    assert goal.alerts == {"NoMatchingClickFound": 1}
    assert [(d.day, d.succeeded, d.unattributed) for d in goal.days] == [(now.date(), 1, 1)]
    # before the uploads: nothing to report
    assert client.goal_report(tenant.account_id, tenant.customer_id, now - timedelta(days=3),
                              now - timedelta(days=2))[0].succeeded == 0
    with pytest.raises(RequestError, match="5314"):
        client.goal_report(tenant.account_id, tenant.customer_id, now - timedelta(days=1), now,
                           goal_ids=[tenant.goal_id + 999])
    calls = emu.admin.requests(operation="GetOfflineConversionReportByGoalIds")
    assert calls[0]["path"] == "/CampaignManagement/v13/OfflineConversionReport/QueryByGoalIds"
