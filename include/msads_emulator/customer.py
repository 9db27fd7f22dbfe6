"""Customer Management v13: the user and the accounts the user can reach, nothing more."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from include.msads_emulator import errors
from include.msads_emulator.soap import (
    ARRAYS_NS,
    CUSTOMER_ENTITIES_NS,
    CUSTOMER_NS,
    XSI,
    ErrorItem,
    SoapFault,
    child,
    children,
    text,
    x,
)
from include.msads_emulator.store import Store

ENT = CUSTOMER_ENTITIES_NS
# Customer Management's CurrencyCode enum (the account currencies it knows).
ACCOUNT_CURRENCIES = frozenset(
    "AED ALL AMD ARS AUD AZM BGL BHD BND BOB BRL BYB BZD CAD CHF CLP CNY COP CRC CZK DOP DKK "
    "DZD EEK EGP EUR GBP GEL GTQ HKD HNL HRK HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS "
    "KRW KWD KZT LBP LTL LVL LYD MAD MKD MOP MNT MVR MXN MYR NIO NOK NZD OMR PAB PEN PHP PKR "
    "PLN PYG QAR ROL RUR SAR SEK SGD SIT SKK SYP THB TND TRY TTD TWD UAH USD UYU UZS VEF YER "
    "VND YUN ZAR ZWD NGN RON".split())
SUPER_ADMIN_ROLE = 41
CAMPAIGN_MANAGER_ROLE = 16
MAX_PAGE_SIZE = 1000


@dataclass
class Call:
    store: Store
    body: ET.Element
    user: dict


def e(name: str, value) -> str:
    """An Entities-namespace element (prefix ``e``); nil for None."""
    if value is None:
        return f'<e:{name} i:nil="true"/>'
    return f"<e:{name}>{x(value)}</e:{name}>"


def _customer_fault(code: int, message: str) -> SoapFault:
    return SoapFault("customer_api", [ErrorItem(code, "", message)])


def get_user(call: Call) -> str:
    requested = (text(call.body, "UserId", CUSTOMER_NS) or "").strip()
    user = call.user
    if requested and requested != str(user["id"]):
        other = call.store.user(int(requested)) if requested.isdigit() else None
        shared = other and any(call.store.can_access_customer(user["id"], a["customer_id"])
                               for a in other["access"])
        if not shared:
            raise errors.adapi(106)
        user = other
    roles = []
    by_customer: dict[int, list[int] | None] = {}
    for grant in user["access"]:
        cid = grant["customer_id"]
        if grant["account_id"] is None:
            by_customer[cid] = None
        elif by_customer.get(cid, []) is not None:
            by_customer.setdefault(cid, []).append(grant["account_id"])
    for cid, account_ids in sorted(by_customer.items()):
        ids = (e("AccountIds", None) if account_ids is None else
               f'<e:AccountIds xmlns:a="{ARRAYS_NS}">'
               + "".join(f"<a:long>{a}</a:long>" for a in sorted(account_ids))
               + "</e:AccountIds>")
        role = SUPER_ADMIN_ROLE if account_ids is None else CAMPAIGN_MANAGER_ROLE
        roles.append(f"<e:CustomerRole>{e('RoleId', role)}{e('CustomerId', cid)}{ids}"
                     f"{e('LinkedAccountIds', None)}{e('CustomerLinkPermission', None)}"
                     "</e:CustomerRole>")
    user_xml = (f'<User xmlns:e="{ENT}" xmlns:i="{XSI}">'
                f"<e:ContactInfo>{e('Email', user['email'])}</e:ContactInfo>"
                f"{e('CustomerId', user['customer_id'])}{e('Id', user['id'])}"
                f"<e:Name>{e('FirstName', user['first_name'])}{e('LastName', user['last_name'])}"
                f"{e('MiddleInitial', None)}</e:Name>"
                f"{e('UserLifeCycleStatus', user['status'])}{e('UserName', user['user_name'])}"
                "</User>")
    return (f'<GetUserResponse xmlns="{CUSTOMER_NS}">{user_xml}'
            f'<CustomerRoles xmlns:e="{ENT}" xmlns:i="{XSI}">{"".join(roles)}</CustomerRoles>'
            "</GetUserResponse>")


def _account_info(a: dict) -> str:
    return (f"<e:AccountInfo>{e('Id', a['id'])}{e('Name', a['name'])}{e('Number', a['number'])}"
            f"{e('AccountLifeCycleStatus', a['status'])}{e('PauseReason', None)}"
            "</e:AccountInfo>")


def get_accounts_info(call: Call) -> str:
    raw = (text(call.body, "CustomerId", CUSTOMER_NS) or "").strip()
    if raw:
        if not raw.isdigit() or not call.store.can_access_customer(call.user["id"], int(raw)):
            raise errors.adapi(106)
        customer_id = int(raw)
    else:
        customer_id = call.user["customer_id"]
    accounts = [a for a in call.store.accessible_accounts(call.user["id"])
                if a["customer_id"] == customer_id]
    return (f'<GetAccountsInfoResponse xmlns="{CUSTOMER_NS}">'
            f'<AccountsInfo xmlns:e="{ENT}" xmlns:i="{XSI}">'
            + "".join(_account_info(a) for a in accounts)
            + "</AccountsInfo></GetAccountsInfoResponse>")


def _advertiser_account(a: dict, primary_user_id: int) -> str:
    currency = a["currency"] if a["currency"] in ACCOUNT_CURRENCIES else None
    return ("<e:AdvertiserAccount>"
            f"{e('BillToCustomerId', a['customer_id'])}{e('CurrencyCode', currency)}"
            f"{e('AccountFinancialStatus', 'ClearFinancialStatus')}{e('Id', a['id'])}"
            f"{e('Language', 'English')}{e('Name', a['name'])}{e('Number', a['number'])}"
            f"{e('ParentCustomerId', a['customer_id'])}{e('PrimaryUserId', primary_user_id)}"
            f"{e('AccountLifeCycleStatus', a['status'])}{e('PauseReason', None)}"
            "</e:AdvertiserAccount>")


def _matches(a: dict, field: str, op: str, value: str, call: Call) -> bool:
    values = [v.strip() for v in value.split(",")] if op == "In" else [value]
    attr = {"AccountId": str(a["id"]), "CustomerId": str(a["customer_id"]),
            "AccountNumber": a["number"], "AccountName": a["name"],
            "AccountLifeCycleStatus": a["status"], "UserId": str(call.user["id"])}[field]
    if op in ("Equals", "In"):
        return attr.lower() in (v.lower() for v in values)
    if op == "NotEquals":
        return attr.lower() != value.lower()
    if op == "Contains":
        return value.lower() in attr.lower()
    if op == "NotContains":
        return value.lower() not in attr.lower()
    if op == "StartsWith":
        return attr.lower().startswith(value.lower())
    raise _customer_fault(1, f"The predicate operator {op} is not supported for {field}.")


SEARCH_FIELDS = ("AccountId", "CustomerId", "AccountNumber", "AccountName",
                 "AccountLifeCycleStatus", "UserId")


def search_accounts(call: Call) -> str:
    predicates = []
    for p in children(child(call.body, "Predicates", CUSTOMER_NS), "Predicate", ENT):
        field = (text(p, "Field", ENT) or "").strip()
        op = (text(p, "Operator", ENT) or "Equals").strip()
        value = text(p, "Value", ENT) or ""
        if field not in SEARCH_FIELDS:
            raise _customer_fault(1, f"The predicate field {field!r} is not supported by the "
                                     f"emulator; use one of {', '.join(SEARCH_FIELDS)}.")
        if field == "UserId" and value.strip() != str(call.user["id"]):
            raise errors.adapi(106)
        predicates.append((field, op, value))
    page = child(call.body, "PageInfo", CUSTOMER_NS)
    index = int((text(page, "Index", ENT) or "0").strip() or 0)
    size = int((text(page, "Size", ENT) or "100").strip() or 100)
    if not 1 <= size <= MAX_PAGE_SIZE or index < 0:
        raise _customer_fault(1, "The paging size must be between 1 and 1000 and the index "
                                 "must not be negative.")
    accounts = [a for a in call.store.accessible_accounts(call.user["id"])
                if all(_matches(a, f, o, v, call) for f, o, v in predicates)]
    page_rows = accounts[index * size:(index + 1) * size]
    return (f'<SearchAccountsResponse xmlns="{CUSTOMER_NS}">'
            f'<Accounts xmlns:e="{ENT}" xmlns:i="{XSI}">'
            + "".join(_advertiser_account(a, call.user["id"]) for a in page_rows)
            + "</Accounts></SearchAccountsResponse>")


OPERATIONS: dict[str, Callable[[Call], str]] = {
    "GetUser": get_user,
    "GetAccountsInfo": get_accounts_info,
    "SearchAccounts": search_accounts,
}
