"""Customer Management v13: the user and the accounts it can reach, through the real SDK."""

from __future__ import annotations

import pytest
from suds import WebFault

from include.msads_emulator.testing import use_tenant


def search(cust, *predicates, index=0, size=100):
    return cust.SearchAccounts(
        Predicates={"Predicate": [{"Field": f, "Operator": o, "Value": v}
                                  for f, o, v in predicates]},
        PageInfo={"Index": index, "Size": size})


def accounts_of(result) -> list:
    return [] if not result else result.AdvertiserAccount


def test_get_user_returns_the_signed_in_user_and_roles(cust, tenant):
    response = cust.GetUser(UserId=None)
    assert (response.User.Id, response.User.UserName) == (tenant.user_id, tenant.user_name)
    assert response.User.CustomerId == tenant.customer_id
    [role] = response.CustomerRoles.CustomerRole
    assert (role.CustomerId, role.RoleId, role.AccountIds) == (tenant.customer_id, 41, None)


def test_search_accounts_by_user_id_like_microsofts_examples(emu, cust, tenant):
    paused = emu.admin.create_account(tenant.customer_id, "Paused shop", status="Paused",
                                      currency="EUR")
    result = search(cust, ("UserId", "Equals", str(tenant.user_id)))
    rows = {a.Id: a for a in accounts_of(result)}
    assert set(rows) == {tenant.account_id, paused["id"]}
    mine = rows[tenant.account_id]
    assert (mine.Name, mine.Number, mine.ParentCustomerId, mine.AccountLifeCycleStatus) == (
        "Contoso Web", tenant.account_number, tenant.customer_id, "Active")
    assert rows[paused["id"]].AccountLifeCycleStatus == "Pause"
    assert rows[paused["id"]].CurrencyCode == "EUR"


def test_search_filters_and_pages(emu, cust, tenant):
    for i in range(3):
        emu.admin.create_account(tenant.customer_id, f"Shop {i}")
    assert len(accounts_of(search(cust, ("AccountName", "StartsWith", "shop")))) == 3
    first = accounts_of(search(cust, ("CustomerId", "Equals", str(tenant.customer_id)),
                               size=3))
    second = accounts_of(search(cust, ("CustomerId", "Equals", str(tenant.customer_id)),
                                index=1, size=3))
    assert len(first) == 3 and len(second) == 1
    assert accounts_of(search(cust, ("AccountLifeCycleStatus", "Equals", "Pause"))) == []


def test_get_accounts_info_lists_what_the_user_can_reach(emu, cust, tenant):
    admin = emu.admin
    extra = admin.create_account(tenant.customer_id, "Second")
    info = cust.GetAccountsInfo(CustomerId=tenant.customer_id, OnlyParentAccounts=False)
    assert [(a.Id, a.AccountLifeCycleStatus) for a in info.AccountInfo] == [
        (tenant.account_id, "Active"), (extra["id"], "Active")]
    user = admin.create_user("one-account@example.com", access=[
        {"customer_id": tenant.customer_id, "account_ids": [extra["id"]]}])
    use_tenant(cust, tenant, access_token=admin.issue_access_token(user["id"]))
    info = cust.GetAccountsInfo(CustomerId=tenant.customer_id, OnlyParentAccounts=False)
    assert [a.Id for a in info.AccountInfo] == [extra["id"]]
    roles = cust.GetUser(UserId=None).CustomerRoles.CustomerRole
    assert roles[0].AccountIds.long == [extra["id"]]


def test_another_customer_is_not_authorized(emu, cust, tenant):
    stranger = emu.admin.create_customer()
    with pytest.raises(WebFault) as caught:
        cust.GetAccountsInfo(CustomerId=stranger["id"], OnlyParentAccounts=False)
    assert caught.value.fault.detail.AdApiFaultDetail.Errors.AdApiError.Code == "106"


def test_customer_management_checks_tokens_too(emu, cust, tenant):
    emu.admin.advance(3600)
    with pytest.raises(WebFault) as caught:
        cust.GetUser(UserId=None)
    assert caught.value.fault.detail.AdApiFaultDetail.Errors.AdApiError.Code == "109"
