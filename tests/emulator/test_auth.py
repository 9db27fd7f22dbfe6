"""Who may call: access tokens, developer tokens, customers and accounts (REST headers and
faults)."""

from __future__ import annotations

import pytest
from openapi_client.exceptions import ApiException

from tests.emulator.support import fault_codes, fault_of


def list_goals(cm):
    return cm.GetConversionGoalsByIds({"ConversionGoalTypes": "OfflineConversion"})


def refused(cm) -> tuple[int, str, list[tuple[int | None, str | None]]]:
    """(HTTP status, fault Type, (Code, ErrorCode) of each error) of a call that must fail."""
    with pytest.raises(ApiException) as caught:
        list_goals(cm)
    status, fault = fault_of(caught)
    return status, fault["Type"], fault_codes(caught)


SIGN_IN_FAILED = (401, "AdApiFaultDetail", [(105, "InvalidCredentials")])
EXPIRED = (401, "AdApiFaultDetail", [(109, "AuthenticationTokenExpired")])
NOT_AUTHORIZED = (401, "AdApiFaultDetail", [(106, "UserIsNotAuthorized")])
INVALID_ACCOUNT = (400, "ApiFaultDetail", [(1102, "CampaignServiceInvalidAccountId")])


def test_an_unknown_access_token_is_invalid_credentials(cm, tenant):
    cm.use(tenant, access_token="EwA-not-issued-here")
    with pytest.raises(ApiException) as caught:
        list_goals(cm)
    status, fault = fault_of(caught)
    assert (status, fault["Type"], fault_codes(caught)) == SIGN_IN_FAILED
    assert fault["TrackingId"] and fault["TrackingId"] == cm.tracking_id


@pytest.mark.parametrize("authorization", [None, "{token}", "Basic {token}", "Bearer "],
                         ids=["missing", "no scheme", "basic", "empty bearer"])
def test_the_access_token_goes_in_a_bearer_authorization_header(cm, tenant, authorization):
    list_goals(cm)  # the tenant's token as "Bearer <token>" works
    cm.headers.pop("Authorization")
    if authorization is not None:
        cm.headers["Authorization"] = authorization.format(token=tenant.access_token)
    assert refused(cm) == SIGN_IN_FAILED


def test_an_expired_access_token_is_109(emu, cm, tenant):
    list_goals(cm)
    emu.admin.advance(3600)  # the default lifetime is 60 minutes of emulator time
    assert refused(cm) == EXPIRED


def test_the_access_token_lifetime_is_configurable(emu, cm, tenant):
    emu.admin.update_settings(access_token_lifetime_seconds=60)
    token = emu.admin.issue_access_token(tenant.user_id, tenant.client_id)
    cm.use(tenant, access_token=token)
    emu.admin.advance(59)
    list_goals(cm)
    emu.admin.advance(1)
    assert refused(cm) == EXPIRED


@pytest.mark.parametrize("developer_token", ["NOT-OURS", None], ids=["wrong", "missing"])
def test_a_wrong_or_missing_developer_token_is_105(cm, tenant, developer_token):
    if developer_token is None:
        del cm.headers["DeveloperToken"]
    else:
        cm.use(tenant, developer_token=developer_token)
    assert refused(cm) == SIGN_IN_FAILED


def test_a_customer_the_user_cannot_reach_is_106(emu, cm, tenant):
    stranger = emu.admin.create_customer("Someone else")
    cm.use(tenant, customer_id=stranger["id"])
    assert refused(cm) == NOT_AUTHORIZED


def test_an_account_the_user_cannot_reach_is_106(emu, cm, tenant):
    admin = emu.admin
    second = admin.create_account(tenant.customer_id, "Second")
    user = admin.create_user("agency@example.com", access=[
        {"customer_id": tenant.customer_id, "account_ids": [second["id"]]}])
    token = admin.issue_access_token(user["id"], tenant.client_id)
    cm.use(tenant, access_token=token, account_id=second["id"])
    list_goals(cm)  # its own account works
    cm.use(tenant, access_token=token)
    assert refused(cm) == NOT_AUTHORIZED


def test_an_account_outside_the_customer_header_is_1102(emu, cm, tenant):
    admin = emu.admin
    other_customer = admin.create_customer("Other")
    elsewhere = admin.create_account(other_customer["id"])
    admin.grant_access(tenant.user_id, other_customer["id"])
    cm.use(tenant, account_id=elsewhere["id"])
    assert refused(cm) == INVALID_ACCOUNT
    cm.use(tenant, customer_id=other_customer["id"], account_id=elsewhere["id"])
    list_goals(cm)  # with its own customer in CustomerId it works
    cm.use(tenant, account_id=123)
    assert refused(cm) == INVALID_ACCOUNT


@pytest.mark.parametrize("value", [None, ""], ids=["omitted", "empty"])
def test_missing_account_and_customer_headers(cm, tenant, value):
    for header, code in (("CustomerAccountId", (1030, "CampaignServiceAccountIdHasToBeSpecified")),
                         ("CustomerId", (1029, "CampaignServiceCustomerIdHasToBeSpecified"))):
        cm.use(tenant)
        if value is None:
            del cm.headers[header]
        else:
            cm.headers[header] = value
        assert refused(cm) == (400, "ApiFaultDetail", [code]), header
