"""Campaign Management v13: conversion goals and offline conversions, with Microsoft's rules."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from include.msads_emulator import errors, offline
from include.msads_emulator.currencies import CONVERSION_GOAL_REVENUE_CURRENCIES
from include.msads_emulator.soap import (
    ARRAYS_NS,
    CM_NS,
    SYSTEM_NS,
    XSI,
    BatchError,
    ErrorItem,
    SoapFault,
    child,
    children,
    el,
    is_nil,
    local,
    partial_errors,
    text,
    xs_list,
    xsi_type,
)
from include.msads_emulator.store import Store

MAX_CONVERSIONS = 1000
MAX_ADJUSTMENTS = 1000  # Microsoft publishes no limit for adjustments; the same as uploads.
MAX_GOAL_IDS = 100
MAX_GOALS_PER_ADD = 100
MAX_WINDOW_MINUTES = 129600

OFFLINE_GOAL_CATEGORIES = frozenset(
    "AddToCart BeginCheckout BookAppointment Contact GetDirections Other OutboundClick "
    "PageView Purchase RequestQuote Signup SubmitLeadForm Subscribe".split())
COUNT_TYPES = ("All", "Unique")
REVENUE_TYPES = ("FixedValue", "VariableValue", "NoValue")
SCOPES = ("Account", "Customer")
GOAL_STATUSES = ("Active", "Paused")
ATTRIBUTION_MODELS = ("LastClick", "LastTouch", "DataDriven")
GOAL_TYPES = ("Url", "Duration", "PagesViewedPerVisit", "Event", "AppInstall",
              "OfflineConversion", "InStoreTransaction", "AppDownload")
MAX_GOAL_REVENUE = Decimal("9999999")


@dataclass
class Call:
    """One authenticated Campaign Management call."""

    store: Store
    body: ET.Element
    user: dict
    account: dict
    customer_id: int
    request_id: int
    now: float
    # BatchErrors a test injected, by item index: they replace the rules' verdict.
    forced: dict[int, BatchError] = field(default_factory=dict)


def dec(value: float | None) -> str | None:
    """A number as xs:decimal text (never in exponent form)."""
    if value is None:
        return None
    return format(Decimal(repr(float(value))).normalize(), "f")


def _unreadable(parameter: str, value: str, type_name: str) -> SoapFault:
    """What WCF answers when it cannot read a value (e.g. the empty ``<CountType/>``)."""
    kind = "enum value" if "." in type_name else "value"
    message = (f"The formatter threw an exception while trying to deserialize the message: "
               f"There was an error while trying to deserialize parameter {CM_NS}:"
               f"{parameter}. The InnerException message was 'Invalid {kind} "
               f"'{value}' cannot be deserialized into type '{type_name}'.'")
    return SoapFault("deserialization", [ErrorItem(0, "DeserializationFailed", message)])


_CONTRACTS = "Microsoft.AdCenter.Advertiser.CampaignManagement.Api.DataContracts.V13."
GOAL_ENUMS = {
    "AttributionModelType": ATTRIBUTION_MODELS,
    "CountType": COUNT_TYPES,
    "GoalCategory": tuple(OFFLINE_GOAL_CATEGORIES | {"Unknown", "None", "Download"}),
    "Scope": SCOPES,
    "Status": GOAL_STATUSES + ("Deleted",),
    "TrackingStatus": ("TagUnverified", "NoRecentConversions", "RecordingConversions",
                       "TagInactive", "InactiveDueToTagUnavailable"),
}
GOAL_ENUM_TYPES = {"AttributionModelType": "AttributionModelType",
                   "CountType": "ConversionGoalCountType", "GoalCategory": "ConversionGoalCategory",
                   "Scope": "EntityScope", "Status": "ConversionGoalStatus",
                   "TrackingStatus": "ConversionGoalTrackingStatus"}
GOAL_INTS = ("ConversionWindowInMinutes", "Id", "TagId", "ViewThroughConversionWindowInMinutes")
GOAL_BOOLS = ("ExcludeFromBidding", "IsAutoGoal", "IsEnhancedConversionsEnabled",
              "IsExternallyAttributed")


def _readable_goal(g: ET.Element) -> None:
    """WCF reads the whole message before any rule runs: a bad typed value faults the call."""
    if is_nil(g):
        return
    for name, allowed in GOAL_ENUMS.items():
        value = text(g, name)
        if value is not None and value.strip() not in allowed:
            raise _unreadable("ConversionGoals", value, _CONTRACTS + GOAL_ENUM_TYPES[name])
    goal_type = text(g, "Type")
    if goal_type is not None and any(t not in GOAL_TYPES for t in xs_list(goal_type) or [""]):
        raise _unreadable("ConversionGoals", goal_type, _CONTRACTS + "ConversionGoalType")
    for name in GOAL_INTS:
        value = text(g, name)
        if value is not None and not re.fullmatch(r"\s*[+-]?\d+\s*", value):
            raise _unreadable("ConversionGoals", value, "System.Int64")
    for name in GOAL_BOOLS:
        value = text(g, name)
        if value is not None and value.strip() not in ("true", "false", "1", "0"):
            raise _unreadable("ConversionGoals", value, "System.Boolean")
    revenue = child(g, "Revenue")
    if revenue is not None and not is_nil(revenue):
        rtype = text(revenue, "Type")
        if rtype is not None and rtype.strip() not in REVENUE_TYPES:
            raise _unreadable("ConversionGoals", rtype, _CONTRACTS + "ConversionGoalRevenueType")
        value = text(revenue, "Value")
        if value is not None:
            try:
                Decimal(value.strip())
            except ArithmeticError:
                raise _unreadable("ConversionGoals", value, "System.Decimal") from None


def _enum(el_: ET.Element | None, name: str) -> str | None:
    value = text(el_, name)
    return None if value is None else value.strip()


# -- GetConversionGoalsByIds ------------------------------------------------------------------

ADDITIONAL_FIELDS = frozenset(
    "ViewThroughConversionWindowInMinutes IsExternallyAttributed GoalCategory "
    "InactiveDueToTagUnavailable AttributionModelType IsEnhancedConversionsEnabled IsAutoGoal "
    "DataDrivenAttribute ApplicationDownloadGoal".split())


def goal_xml(goal: dict, fields: set[str], recording: bool) -> str:
    """One OfflineConversionGoal in schema order; fields not asked for are left out."""
    revenue = ("<Revenue>" + el("CurrencyCode", goal["currency"])
               + el("Type", goal["revenue_type"]) + el("Value", dec(goal["revenue_value"]))
               + "</Revenue>")
    parts = ['<ConversionGoal i:type="OfflineConversionGoal">']
    if "AttributionModelType" in fields:
        parts.append(el("AttributionModelType", goal["attribution_model"] or "LastClick"))
    parts += [el("ConversionWindowInMinutes", goal["window_minutes"]),
              el("CountType", goal["count_type"]),
              el("ExcludeFromBidding", bool(goal["exclude_from_bidding"]))]
    if "GoalCategory" in fields:
        parts.append(el("GoalCategory", goal["category"]))
    parts.append(el("Id", goal["id"]))
    if "IsAutoGoal" in fields:
        parts.append(el("IsAutoGoal", False))
    if "IsEnhancedConversionsEnabled" in fields:
        parts.append(el("IsEnhancedConversionsEnabled", bool(goal["enhanced_conversions"])))
    parts += [el("Name", goal["name"]), revenue, el("Scope", goal["scope"]),
              el("Status", goal["status"]), el("TagId", None),
              el("TrackingStatus", "RecordingConversions" if recording
                 else "NoRecentConversions"),
              el("Type", "OfflineConversion")]
    if "ViewThroughConversionWindowInMinutes" in fields:
        parts.append(el("ViewThroughConversionWindowInMinutes",
                        goal["view_through_window_minutes"]))
    if "IsExternallyAttributed" in fields:
        parts.append(el("IsExternallyAttributed", bool(goal["externally_attributed"])))
    parts.append("</ConversionGoal>")
    return "".join(parts)


def get_conversion_goals_by_ids(call: Call) -> str:
    body = call.body
    types_raw = text(body, "ConversionGoalTypes")
    types = xs_list(types_raw)
    if not types:
        raise errors.operation(5329)
    for t in types:
        if t not in GOAL_TYPES:
            raise _unreadable("ConversionGoalTypes", t, _CONTRACTS + "ConversionGoalType")
    fields = set(xs_list(text(body, "ReturnAdditionalFields")))
    for f in fields:
        if f not in ADDITIONAL_FIELDS:
            raise _unreadable("ReturnAdditionalFields", f,
                              _CONTRACTS + "ConversionGoalAdditionalField")
    ids_el = child(body, "ConversionGoalIds")
    ids: list[int | None] = []
    for item in children(ids_el, "long", ARRAYS_NS):
        try:
            ids.append(int((item.text or "").strip()))
        except ValueError:
            ids.append(None)
    if len(ids) > MAX_GOAL_IDS:
        raise errors.operation(5318)
    visible = call.store.goals_for_account(call.account)
    if "OfflineConversion" not in types:
        visible = []
    recording = {r["goal_id"] for r in call.store.query(
        "SELECT DISTINCT goal_id FROM conversions WHERE account_id = ?", (call.account["id"],))}
    batch: list[BatchError] = []
    out: list[str] = []
    if ids:
        by_id = {g["id"]: g for g in visible}
        for i, gid in enumerate(ids):
            goal = by_id.get(gid)
            if goal is None:
                out.append('<ConversionGoal i:nil="true"/>')
                batch.append(errors.batch_error(i, 5314))
            else:
                out.append(goal_xml(goal, fields, goal["id"] in recording))
    else:
        out = [goal_xml(g, fields, g["id"] in recording) for g in visible]
    goals = f'<ConversionGoals xmlns:i="{XSI}">' + "".join(out) + "</ConversionGoals>"
    errs = (partial_errors(batch) if batch
            else f'<PartialErrors xmlns:i="{XSI}" i:nil="true"/>')
    return f'<GetConversionGoalsByIdsResponse xmlns="{CM_NS}">{goals}{errs}' \
           "</GetConversionGoalsByIdsResponse>"


# -- AddConversionGoals -----------------------------------------------------------------------


def _goal_error(index: int, code: int) -> BatchError:
    return errors.batch_error(index, code)


def _parse_goal(index: int, g: ET.Element, call: Call, names_in_batch: set[str]
                ) -> tuple[BatchError | None, dict | None]:
    if is_nil(g):
        return _goal_error(index, 5323), None
    gtype = xsi_type(g)
    if gtype != "OfflineConversionGoal":
        # Only offline goals are emulated; others are refused as a type mismatch.
        return _goal_error(index, 5331), None
    if text(g, "Id") not in (None, ""):
        return _goal_error(index, 5324), None
    name = (text(g, "Name") or "").strip()
    if not name:
        return _goal_error(index, 5319), None
    if len(name) > 100:
        return _goal_error(index, 5320), None
    if name in names_in_batch:
        return _goal_error(index, 5316), None
    if call.store.goal_name_taken(call.customer_id, name):
        return _goal_error(index, 5317), None
    window_raw = text(g, "ConversionWindowInMinutes")
    window = 43200 if window_raw is None else int(window_raw)
    if not 1 <= window <= MAX_WINDOW_MINUTES:
        return _goal_error(index, 5337), None
    count_type = _enum(g, "CountType") or "All"
    scope = _enum(g, "Scope") or "Account"
    status = _enum(g, "Status") or "Active"
    attribution = _enum(g, "AttributionModelType")
    category = _enum(g, "GoalCategory") or ""
    if category not in OFFLINE_GOAL_CATEGORIES:
        return _goal_error(index, 5364), None
    revenue = child(g, "Revenue")
    revenue_type, revenue_value, currency = "NoValue", None, None
    if revenue is not None and not is_nil(revenue):
        revenue_type = _enum(revenue, "Type") or "NoValue"
        value_raw = text(revenue, "Value")
        if value_raw is not None:
            value = Decimal(value_raw.strip())
            if not value.is_finite() or value < 0 or value > MAX_GOAL_REVENUE:
                return _goal_error(index, 5333), None
            revenue_value = float(value)
        currency_raw = text(revenue, "CurrencyCode")
        if currency_raw not in (None, ""):
            if currency_raw.strip() not in CONVERSION_GOAL_REVENUE_CURRENCIES:
                return _goal_error(index, 5351), None
            currency = currency_raw.strip()
    if revenue_type == "FixedValue" and revenue_value is None:
        return _goal_error(index, 5333), None
    if revenue_type == "NoValue" and revenue_value is not None:
        return _goal_error(index, 5333), None
    if scope == "Customer" and revenue_type != "NoValue" and currency is None:
        return _goal_error(index, 5355), None
    if scope == "Account" and revenue_type != "NoValue" and currency is None:
        currency = call.account["currency"]
    externally = (text(g, "IsExternallyAttributed") or "").strip().lower() in ("true", "1")
    exclude = (text(g, "ExcludeFromBidding") or "").strip().lower() in ("true", "1")
    names_in_batch.add(name)
    return None, {
        "customer_id": call.customer_id,
        "account_id": call.account["id"] if scope == "Account" else None,
        "name": name, "scope": scope, "status": status, "window_minutes": window,
        "count_type": count_type, "category": category, "revenue_type": revenue_type,
        "revenue_value": revenue_value, "currency": currency,
        "attribution_model": attribution, "exclude_from_bidding": int(exclude),
        "externally_attributed": int(externally),
        # Microsoft: enhanced conversions can only be switched on in the web UI, so goals
        # added through the API never have them (the admin API can create such goals).
        "enhanced_conversions": 0, "view_through_window_minutes": None,
        "created_at": call.now, "created_by": "api",
    }


def add_conversion_goals(call: Call) -> str:
    arr = child(call.body, "ConversionGoals")
    items = children(arr, "ConversionGoal")
    if not items:
        raise errors.operation(5321)
    if len(items) > MAX_GOALS_PER_ADD:
        raise errors.operation(5322)
    for g in items:
        _readable_goal(g)
    names: set[str] = set()
    ids: list[int | None] = []
    batch: list[BatchError] = []
    for i, g in enumerate(items):
        err, goal = _parse_goal(i, g, call, names)
        if err:
            batch.append(err)
            ids.append(None)
        else:
            ids.append(call.store.insert_goal(goal)["id"])
    long_els = "".join(f"<long>{i}</long>" if i is not None else '<long i:nil="true"/>'
                       for i in ids)
    return (f'<AddConversionGoalsResponse xmlns="{CM_NS}">'
            f'<ConversionGoalIds xmlns:a="{SYSTEM_NS}" xmlns:i="{XSI}">'
            + long_els.replace("<long", "<a:long").replace("</long>", "</a:long>")
            + "</ConversionGoalIds>" + partial_errors(batch) + "</AddConversionGoalsResponse>")


# -- ApplyOfflineConversions and ApplyOfflineConversionAdjustments ---------------------------
# The SOAP adapter: read each item into a plain dict once; offline.py holds the rules.


def _fields(item: ET.Element) -> dict[str, str | None] | None:
    """One request item as field name -> text (None when nil); None for a nil item."""
    if is_nil(item):
        return None
    return {local(c.tag): None if is_nil(c) else (c.text or "") for c in item}


def _apply(call: Call, operation: str, element: str, limit: int, check, record) -> str:
    """Read the items (5600 when none, 5601 over ``limit``), check each, keep what passed and
    answer with a BatchError at the index of each refused item."""
    arr = child(call.body, element)
    items = [] if arr is None or is_nil(arr) else [_fields(i) for i in arr]
    if not items:
        raise errors.operation(5600)
    if len(items) > limit:
        raise errors.operation(5601)
    store = call.store
    ctx = offline.Context(
        account=call.account,
        goals={g["name"]: g for g in store.goals_for_account(call.account)},
        clicks=store.clicks(offline.click_ids(items)), now=call.now,
        max_value=float(store.setting("max_conversion_value")))
    batch: list[BatchError] = []
    accepted: list[dict] = []
    for index, item in enumerate(items):
        if index in call.forced:
            batch.append(call.forced[index])
            continue
        result = check(item, ctx)
        if isinstance(result, int):
            batch.append(errors.batch_error(index, result))
        else:
            accepted.append({**result, "item_index": index})
    with store.transaction() as db:
        record(db, accepted, call.request_id, call.now)
        offline.record_rejections(db, operation, items, batch, call.request_id, call.now)
    return (f'<{operation}Response xmlns="{CM_NS}">{partial_errors(batch)}'
            f"</{operation}Response>")


def apply_offline_conversions(call: Call) -> str:
    return _apply(call, "ApplyOfflineConversions", "OfflineConversions", MAX_CONVERSIONS,
                  offline.check_conversion, offline.record_conversions)


def apply_offline_conversion_adjustments(call: Call) -> str:
    return _apply(call, "ApplyOfflineConversionAdjustments", "OfflineConversionAdjustments",
                  MAX_ADJUSTMENTS, offline.check_adjustment, offline.record_adjustments)


OPERATIONS: dict[str, Callable[[Call], str]] = {
    "GetConversionGoalsByIds": get_conversion_goals_by_ids,
    "AddConversionGoals": add_conversion_goals,
    "ApplyOfflineConversions": apply_offline_conversions,
    "ApplyOfflineConversionAdjustments": apply_offline_conversion_adjustments,
}
