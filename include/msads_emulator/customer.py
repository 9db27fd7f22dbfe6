"""Customer Management v13 over REST: the user and the accounts the user can reach, nothing more."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from include.msads_emulator import errors, rest
from include.msads_emulator.errors import ErrorItem, Fault
from include.msads_emulator.store import Store

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
    body: dict
    user: dict


def _customer_fault(code: int, message: str) -> Fault:
    """Customer Management's ApiFault: its OperationErrors have no ErrorCode."""
    return Fault("customer_api", [ErrorItem(code, "", message)])


def _id(value: object) -> str | None:
    return None if value is None else str(value)


def get_user(call: Call) -> dict:
    requested = rest.get_id(call.body, "UserId")
    user = call.user
    if requested is not None and requested != user["id"]:
        other = call.store.user(requested)
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
        role = {"RoleId": SUPER_ADMIN_ROLE if account_ids is None else CAMPAIGN_MANAGER_ROLE,
                "CustomerId": str(cid)}
        if account_ids is not None:
            role["AccountIds"] = [str(a) for a in sorted(account_ids)]
        roles.append(role)
    name = {k: v for k, v in (("FirstName", user["first_name"]),
                              ("LastName", user["last_name"])) if v is not None}
    out = {"Id": str(user["id"]), "UserName": user["user_name"],
           "CustomerId": _id(user["customer_id"]), "Name": name,
           "UserLifeCycleStatus": user["status"]}
    if user["email"]:
        out["ContactInfo"] = {"Email": user["email"]}
    return {"User": {k: v for k, v in out.items() if v is not None}, "CustomerRoles": roles}


def _account_info(a: dict) -> dict:
    return {"Id": str(a["id"]), "Name": a["name"], "Number": a["number"],
            "AccountLifeCycleStatus": a["status"]}


def get_accounts_info(call: Call) -> dict:
    requested = rest.get_id(call.body, "CustomerId")
    if requested is not None:
        if not call.store.can_access_customer(call.user["id"], requested):
            raise errors.adapi(106)
        customer_id = requested
    else:
        customer_id = call.user["customer_id"]
    accounts = [a for a in call.store.accessible_accounts(call.user["id"])
                if a["customer_id"] == customer_id]
    return {"AccountsInfo": [_account_info(a) for a in accounts]}


def _advertiser_account(a: dict, primary_user_id: int) -> dict:
    out = {"BillToCustomerId": str(a["customer_id"]),
           "AccountFinancialStatus": "ClearFinancialStatus", "Id": str(a["id"]),
           "Language": "English", "Name": a["name"], "Number": a["number"],
           "ParentCustomerId": str(a["customer_id"]), "PrimaryUserId": str(primary_user_id),
           "AccountLifeCycleStatus": a["status"]}
    if a["currency"] in ACCOUNT_CURRENCIES:
        out["CurrencyCode"] = a["currency"]
    return out


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


def search_accounts(call: Call) -> dict:
    predicates = []
    for n, p in enumerate(rest.get(call.body, "Predicates", "array") or []):
        where = f"Predicates[{n}]."
        if not isinstance(p, dict):
            raise errors.unreadable(f"{where[:-1]}: expected an object.")
        field = (rest.get(p, "Field", "string", where) or "").strip()
        op = (rest.get(p, "Operator", "string", where) or "Equals").strip()
        value = rest.get(p, "Value", "string", where) or ""
        if field not in SEARCH_FIELDS:
            raise _customer_fault(1, f"The predicate field {field!r} is not supported by the "
                                     f"emulator; use one of {', '.join(SEARCH_FIELDS)}.")
        if field == "UserId" and value.strip() != str(call.user["id"]):
            raise errors.adapi(106)
        predicates.append((field, op, value))
    page = rest.get(call.body, "PageInfo", "object") or {}
    index = rest.get(page, "Index", "integer", "PageInfo.") or 0
    size = rest.get(page, "Size", "integer", "PageInfo.")
    size = 100 if size is None else size
    if not 1 <= size <= MAX_PAGE_SIZE or index < 0:
        raise _customer_fault(1, "The paging size must be between 1 and 1000 and the index "
                                 "must not be negative.")
    accounts = [a for a in call.store.accessible_accounts(call.user["id"])
                if all(_matches(a, f, o, v, call) for f, o, v in predicates)]
    page_rows = accounts[index * size:(index + 1) * size]
    return {"Accounts": [_advertiser_account(a, call.user["id"]) for a in page_rows]}


OPERATIONS: dict[str, Callable[[Call], dict]] = {
    "GetUser": get_user,
    "GetAccountsInfo": get_accounts_info,
    "SearchAccounts": search_accounts,
}
