"""Who may call: access tokens, developer tokens, customers and accounts (SOAP faults)."""

from __future__ import annotations

import pytest
from suds import WebFault

from include.msads_emulator.testing import MsalRefreshingGrant, msal_app, use_tenant


def adapi_code(exc: WebFault) -> str:
    return exc.fault.detail.AdApiFaultDetail.Errors.AdApiError.Code


def operation_code(exc: WebFault) -> str:
    return exc.fault.detail.ApiFaultDetail.OperationErrors.OperationError.Code


def list_goals(cm):
    return cm.GetConversionGoalsByIds(ConversionGoalTypes="OfflineConversion")


def test_an_unknown_access_token_is_invalid_credentials(cm, tenant):
    use_tenant(cm, tenant, access_token="EwA-not-issued-here")
    with pytest.raises(WebFault) as caught:
        list_goals(cm)
    assert adapi_code(caught.value) == "105"
    error = caught.value.fault.detail.AdApiFaultDetail.Errors.AdApiError
    assert error.ErrorCode == "InvalidCredentials"
    assert caught.value.fault.detail.AdApiFaultDetail.TrackingId


def test_an_expired_access_token_is_109(emu, cm, tenant):
    list_goals(cm)
    emu.admin.advance(3600)  # the default lifetime is 60 minutes of emulator time
    with pytest.raises(WebFault) as caught:
        list_goals(cm)
    assert adapi_code(caught.value) == "109"
    assert caught.value.fault.detail.AdApiFaultDetail.Errors.AdApiError.ErrorCode == \
        "AuthenticationTokenExpired"


def test_the_access_token_lifetime_is_configurable(emu, cm, tenant):
    emu.admin.update_settings(access_token_lifetime_seconds=60)
    token = emu.admin.issue_access_token(tenant.user_id, tenant.client_id)
    use_tenant(cm, tenant, access_token=token)
    emu.admin.advance(59)
    list_goals(cm)
    emu.admin.advance(1)
    with pytest.raises(WebFault) as caught:
        list_goals(cm)
    assert adapi_code(caught.value) == "109"


def test_the_sdk_refreshes_on_109_and_retries_once(emu, cm, tenant):
    app = msal_app(emu, tenant)
    grant = MsalRefreshingGrant(app, tenant.refresh_token, tenant.access_token)
    use_tenant(cm, tenant, authentication=grant)
    emu.admin.advance(3601)
    assert list_goals(cm).ConversionGoals.ConversionGoal[0].Id == tenant.goal_id
    assert grant.refreshes == 1
    assert grant.oauth_tokens.refresh_token != tenant.refresh_token  # rotated
    ops = [r["operation"] for r in emu.admin.requests(bodies=False)][-3:]
    assert ops == ["GetConversionGoalsByIds", "token", "GetConversionGoalsByIds"]


def test_a_wrong_developer_token_is_105(cm, tenant):
    use_tenant(cm, tenant, developer_token="NOT-OURS")
    with pytest.raises(WebFault) as caught:
        list_goals(cm)
    assert adapi_code(caught.value) == "105"


def test_a_customer_the_user_cannot_reach_is_106(emu, cm, tenant):
    stranger = emu.admin.create_customer("Someone else")
    with pytest.raises(WebFault) as caught:
        use_tenant(cm, tenant, customer_id=stranger["id"])
        list_goals(cm)
    assert adapi_code(caught.value) == "106"


def test_an_account_the_user_cannot_reach_is_106(emu, cm, tenant):
    admin = emu.admin
    second = admin.create_account(tenant.customer_id, "Second")
    user = admin.create_user("agency@example.com", access=[
        {"customer_id": tenant.customer_id, "account_ids": [second["id"]]}])
    token = admin.issue_access_token(user["id"], tenant.client_id)
    use_tenant(cm, tenant, access_token=token, account_id=second["id"])
    list_goals(cm)  # its own account works
    use_tenant(cm, tenant, access_token=token)
    with pytest.raises(WebFault) as caught:
        list_goals(cm)
    assert adapi_code(caught.value) == "106"


def test_an_account_outside_the_customer_header_is_1102(emu, cm, tenant):
    admin = emu.admin
    other_customer = admin.create_customer("Other")
    elsewhere = admin.create_account(other_customer["id"])
    admin.grant_access(tenant.user_id, other_customer["id"])
    use_tenant(cm, tenant, account_id=elsewhere["id"])
    with pytest.raises(WebFault) as caught:
        list_goals(cm)
    assert operation_code(caught.value) == "1102"
    use_tenant(cm, tenant, account_id=123)
    with pytest.raises(WebFault) as caught:
        list_goals(cm)
    assert operation_code(caught.value) == "1102"


def test_missing_account_and_customer_headers(cm, tenant):
    use_tenant(cm, tenant)
    cm.authorization_data.account_id = None  # the SDK then sends the text "None"
    with pytest.raises(WebFault) as caught:
        list_goals(cm)
    assert operation_code(caught.value) == "1030"
    use_tenant(cm, tenant)
    cm.authorization_data.customer_id = None
    with pytest.raises(WebFault) as caught:
        list_goals(cm)
    assert operation_code(caught.value) == "1029"
