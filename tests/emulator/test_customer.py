"""Customer Management v13: the user and the accounts it can reach, through the REST SDK."""

from __future__ import annotations

import pytest
from openapi_client.exceptions import ApiException

from tests.emulator.support import fault_codes, fault_of


def search(cust, *predicates, index=0, size=100):
    return cust.SearchAccounts({
        "Predicates": [{"Field": f, "Operator": o, "Value": v} for f, o, v in predicates],
        "PageInfo": {"Index": index, "Size": size}}).accounts


def test_get_user_returns_the_signed_in_user_and_roles(cust, tenant):
    response = cust.GetUser({"UserId": None})
    assert (response.user.id, response.user.user_name) == (str(tenant.user_id),
                                                           tenant.user_name)
    assert response.user.customer_id == str(tenant.customer_id)
    [role] = response.customer_roles
    assert (role.customer_id, role.role_id, role.account_ids) == (str(tenant.customer_id), 41,
                                                                  None)


def test_search_accounts_by_user_id_like_microsofts_examples(emu, cust, tenant):
    paused = emu.admin.create_account(tenant.customer_id, "Paused shop", status="Paused",
                                      currency="EUR")
    rows = {a.id: a for a in search(cust, ("UserId", "Equals", str(tenant.user_id)))}
    assert set(rows) == {str(tenant.account_id), str(paused["id"])}
    mine = rows[str(tenant.account_id)]
    assert (mine.name, mine.number, mine.parent_customer_id, mine.account_life_cycle_status) == (
        "Contoso Web", tenant.account_number, str(tenant.customer_id), "Active")
    assert rows[str(paused["id"])].account_life_cycle_status == "Pause"
    assert rows[str(paused["id"])].currency_code == "EUR"


def test_search_filters_and_pages(emu, cust, tenant):
    for i in range(3):
        emu.admin.create_account(tenant.customer_id, f"Shop {i}")
    assert len(search(cust, ("AccountName", "StartsWith", "shop"))) == 3
    first = search(cust, ("CustomerId", "Equals", str(tenant.customer_id)), size=3)
    second = search(cust, ("CustomerId", "Equals", str(tenant.customer_id)), index=1, size=3)
    assert len(first) == 3 and len(second) == 1
    assert not {a.id for a in first} & {a.id for a in second}
    assert search(cust, ("AccountLifeCycleStatus", "Equals", "Pause")) == []


def test_get_accounts_info_lists_what_the_user_can_reach(emu, cust, tenant):
    admin = emu.admin
    extra = admin.create_account(tenant.customer_id, "Second")
    request = {"CustomerId": str(tenant.customer_id), "OnlyParentAccounts": False}
    info = cust.GetAccountsInfo(request).accounts_info
    assert [(a.id, a.account_life_cycle_status) for a in info] == [
        (str(tenant.account_id), "Active"), (str(extra["id"]), "Active")]
    user = admin.create_user("one-account@example.com", access=[
        {"customer_id": tenant.customer_id, "account_ids": [extra["id"]]}])
    cust.use(tenant, access_token=admin.issue_access_token(user["id"]))
    info = cust.GetAccountsInfo(request).accounts_info
    assert [a.id for a in info] == [str(extra["id"])]
    [role] = cust.GetUser().customer_roles
    assert role.account_ids == [str(extra["id"])]


def test_another_customer_is_not_authorized(emu, cust, tenant):
    stranger = emu.admin.create_customer()
    with pytest.raises(ApiException) as caught:
        cust.GetAccountsInfo({"CustomerId": str(stranger["id"]), "OnlyParentAccounts": False})
    status, fault = fault_of(caught)
    assert (status, fault["Type"]) == (401, "AdApiFaultDetail")
    assert fault_codes(caught) == [(106, "UserIsNotAuthorized")]


def test_customer_management_checks_tokens_too(emu, cust, tenant):
    cust.GetUser()
    emu.admin.advance(3600)
    with pytest.raises(ApiException) as caught:
        cust.GetUser()
    status, fault = fault_of(caught)
    assert (status, fault["Type"]) == (401, "AdApiFaultDetail")
    assert fault_codes(caught) == [(109, "AuthenticationTokenExpired")]
    assert fault["TrackingId"] == cust.tracking_id
