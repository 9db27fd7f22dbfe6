"""Microsoft Advertising's REST wire for the emulator: routes, headers, JSON in and out.

Routes and shapes are the ones the ``msads`` SDK calls (``openapi_client/api/*_service_api.py``:
method, path, request and response models), on Microsoft's hosts
``campaign.api.bingads.microsoft.com`` and ``clientcenter.api.bingads.microsoft.com``; the
emulator serves both on one port. JSON property names are the PascalCase names of Microsoft's
data objects; 64-bit ids travel as strings, as the SDK's models declare them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.msads_emulator import errors

if TYPE_CHECKING:
    from collections.abc import Collection

CAMPAIGN = "campaign"
CUSTOMER = "customer"

# (method, path) -> (service, operation), from the SDK's generated API classes.
ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    ("POST", "/CampaignManagement/v13/OfflineConversions/Apply"):
        (CAMPAIGN, "ApplyOfflineConversions"),
    ("POST", "/CampaignManagement/v13/OfflineConversionAdjustments/Apply"):
        (CAMPAIGN, "ApplyOfflineConversionAdjustments"),
    ("POST", "/CampaignManagement/v13/ConversionGoals/QueryByIds"):
        (CAMPAIGN, "GetConversionGoalsByIds"),
    ("POST", "/CampaignManagement/v13/ConversionGoals"): (CAMPAIGN, "AddConversionGoals"),
    ("POST", "/CampaignManagement/v13/OfflineConversionReports/Query"):
        (CAMPAIGN, "GetOfflineConversionReports"),
    ("POST", "/CampaignManagement/v13/OfflineConversionReport/QueryByGoalIds"):
        (CAMPAIGN, "GetOfflineConversionReportByGoalIds"),
    ("POST", "/CustomerManagement/v13/User/Query"): (CUSTOMER, "GetUser"),
    ("POST", "/CustomerManagement/v13/AccountsInfo/Query"): (CUSTOMER, "GetAccountsInfo"),
    ("POST", "/CustomerManagement/v13/Accounts/Search"): (CUSTOMER, "SearchAccounts"),
}
_BY_PATH = {(m, p.lower()): v for (m, p), v in ROUTES.items()}
SERVICE_PREFIXES = ("/campaignmanagement/", "/customermanagement/")


def is_service_path(path: str) -> bool:
    return path.lower().startswith(SERVICE_PREFIXES)


def route(method: str, path: str) -> tuple[str, str]:
    """(service, operation) for a request, or the fault Microsoft's REST host answers."""
    found = _BY_PATH.get((method.upper(), path.rstrip("/").lower()))
    if found is None:
        raise errors.not_found(method, path, [f"{m} {p}" for m, p in ROUTES])
    return found


def read_body(raw: bytes) -> dict:
    """The request's JSON object; an unreadable body is refused as a whole."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.unreadable(f"The request body is not JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise errors.unreadable("The request body must be a JSON object.")
    return value


def bearer(headers: dict[str, str]) -> str | None:
    """The access token of an ``Authorization: Bearer <token>`` header (names are lower case)."""
    value = (headers.get("authorization") or "").strip()
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# -- typed reading ----------------------------------------------------------------------------
# A value of the wrong JSON type cannot be bound to the request object, which faults the whole
# call (errors.unreadable), as an unreadable value did over SOAP.

_TYPES = {"string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
          "array": (list,), "object": (dict,)}


def _type_name(value: object) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


def get(obj: dict | None, name: str, kind: str, where: str = "") -> Any:
    """``obj[name]`` checked against a JSON type (None when absent or null)."""
    if obj is None:
        return None
    value = obj.get(name)
    if value is None:
        return None
    ok = isinstance(value, _TYPES[kind]) and not (kind in ("number", "integer")
                                                   and isinstance(value, bool))
    if not ok:
        raise errors.unreadable(f"{where}{name}: expected a {kind}, got a {_type_name(value)} "
                                f"({json.dumps(value)[:40]}).")
    return value


def get_id(obj: dict | None, name: str, where: str = "") -> int | None:
    """A 64-bit id: a JSON string of digits, as the SDK sends it (a JSON number is read too)."""
    if obj is None or obj.get(name) is None:
        return None
    value = obj[name]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    raise errors.unreadable(f"{where}{name}: {json.dumps(value)[:40]} is not a 64-bit id.")


def flags(value: str | None, allowed: Collection[str], where: str) -> list[str]:
    """A flags value (ConversionGoalTypes, ReturnAdditionalFields): names separated by commas,
    as the SDK writes them (spaces are read too)."""
    names = [v for v in (value or "").replace(",", " ").split() if v]
    for n in names:
        if n not in allowed:
            raise errors.unreadable(f"{where}: {n!r} is not one of {', '.join(sorted(allowed))}.")
    return names


def as_text(value: object) -> str | None:
    """A scalar as the rules read it (they work on text, as the SOAP wire gave it)."""
    if value is None:
        return None
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


@dataclass(frozen=True)
class ItemShape:
    """The JSON types of one request item's fields (OfflineConversion, ...)."""

    name: str
    fields: dict[str, str]

    def read(self, item: object, index: int) -> dict[str, str | None] | None:
        """One item as field name -> text for the rules; None for a null item."""
        if item is None:
            return None
        where = f"{self.name}[{index}]."
        if not isinstance(item, dict):
            raise errors.unreadable(f"{where[:-1]}: expected an object, got a "
                                    f"{_type_name(item)}.")
        out: dict[str, str | None] = {}
        for name, kind in self.fields.items():
            value = item.get(name)
            if value is None:
                out[name] = None
            elif type(value) is str and kind == "string":  # the common case, checked inline
                out[name] = value
            else:
                out[name] = as_text(get(item, name, kind, where))
        return out


OFFLINE_CONVERSION = ItemShape("OfflineConversions", {
    "MicrosoftClickId": "string", "ConversionName": "string", "ConversionTime": "string",
    "ConversionValue": "number", "ConversionCurrencyCode": "string",
    "ExternalAttributionCredit": "number", "ExternalAttributionModel": "string",
    "HashedEmailAddress": "string", "HashedPhoneNumber": "string"})
OFFLINE_CONVERSION_ADJUSTMENT = ItemShape("OfflineConversionAdjustments", {
    "MicrosoftClickId": "string", "ConversionName": "string", "ConversionTime": "string",
    "AdjustmentTime": "string", "AdjustmentType": "string", "AdjustmentValue": "number",
    "AdjustmentCurrencyCode": "string", "HashedEmailAddress": "string",
    "HashedPhoneNumber": "string"})
