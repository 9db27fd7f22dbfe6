"""Campaign Management v13: conversion goals and offline conversions, with Microsoft's rules."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from include.msads_emulator import errors
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
    partial_errors,
    text,
    xs_list,
    xsi_type,
)
from include.msads_emulator.store import Store
from include.msads_emulator.timeutil import DAY, HOUR, iso, parse_datetime

MAX_CONVERSIONS = 1000
MAX_ADJUSTMENTS = 1000  # Microsoft publishes no limit for adjustments; the same as uploads.
MAX_GOAL_IDS = 100
MAX_GOALS_PER_ADD = 100
LOOKBACK = 90 * DAY
GOAL_QUIET_PERIOD = 2 * HOUR
MAX_WINDOW_MINUTES = 129600

HEX64 = re.compile(r"[0-9a-f]{64}")
# MSCLKIDs are 32 hexadecimal characters (the examples Microsoft gives, and what it issues).
CLICK_ID = re.compile(r"[0-9a-fA-F]{32}")

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


# -- ApplyOfflineConversions ------------------------------------------------------------------


@dataclass
class Identity:
    click_id: str | None
    email: str | None
    phone: str | None
    click: dict | None

    def key(self) -> str:
        if self.click_id:
            return f"click:{self.click_id.lower()}"
        return f"hash:{self.email or ''}:{self.phone or ''}"


def _blank(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _identity(item: ET.Element, goal: dict, call: Call, clicks: dict[str, dict],
              fail: Callable[[int], BatchError]) -> Identity | BatchError:
    click_id = _blank(text(item, "MicrosoftClickId"))
    email = _blank(text(item, "HashedEmailAddress"))
    phone = _blank(text(item, "HashedPhoneNumber"))
    if email is not None and not HEX64.fullmatch(email):
        return fail(5628)
    if phone is not None and not HEX64.fullmatch(phone):
        return fail(5629)
    if click_id is None:
        if email is None and phone is None:
            return fail(5603)
        if not goal["enhanced_conversions"]:
            return fail(5630)
        return Identity(None, email, phone, None)
    if not CLICK_ID.fullmatch(click_id):
        return fail(5604)
    click = clicks.get(click_id) or clicks.get(click_id.lower())
    if call.store.setting("strict_click_ids") and (
            click is None or click["account_id"] != call.account["id"]):
        return fail(5604)
    return Identity(click_id, email, phone, click)


def _number(raw: str | None, limit: float) -> float | None | bool:
    """A value: None when absent, False when invalid (not a number, negative, too large)."""
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return False
    if not math.isfinite(value) or value < 0 or value > limit:
        return False
    return value


def _conversion_time(item: ET.Element, name: str, fail) -> float | BatchError:
    raw = text(item, name)
    if raw is None or not raw.strip():
        return fail(5608)
    try:
        return parse_datetime(raw)
    except ValueError:
        return fail(5607)


def _item_head(index: int, item: ET.Element, goals: dict[str, dict], call: Call,
               clicks: dict[str, dict]):
    """What conversions and adjustments check alike: the item is there; its name, goal,
    identifiers and time are valid, and the time is not in the future. Returns a BatchError,
    or (fail, name, time, goal, identifiers)."""
    def fail(code: int) -> BatchError:
        return errors.batch_error(index, code)

    if is_nil(item):
        return fail(5602)
    name = text(item, "ConversionName")
    if name is None or not name.strip():
        return fail(5605)
    when = _conversion_time(item, "ConversionTime", fail)
    if isinstance(when, BatchError):
        return when
    goal = goals.get(name)  # exact, case-sensitive match (Microsoft does not say)
    if goal is None:
        return fail(5606)
    ident = _identity(item, goal, call, clicks, fail)
    if isinstance(ident, BatchError):
        return ident
    if when > call.now:
        return fail(5614)
    return fail, name, when, goal, ident


def _check_conversion(index: int, item: ET.Element, goals: dict[str, dict], call: Call,
                      clicks: dict[str, dict]) -> BatchError | dict:
    head = _item_head(index, item, goals, call, clicks)
    if isinstance(head, BatchError):
        return head
    fail, name, when, goal, ident = head
    now = call.now
    if now - when > min(LOOKBACK, goal["window_minutes"] * 60.0):
        return fail(5609)
    if now - goal["created_at"] < GOAL_QUIET_PERIOD:
        return fail(5615)
    if ident.click is not None:
        if when < ident.click["click_time"]:
            return fail(5616)
        if when - ident.click["click_time"] > goal["window_minutes"] * 60.0:
            return fail(5617)
    limit = float(call.store.setting("max_conversion_value"))
    value = _number(text(item, "ConversionValue"), limit)
    if value is False:
        return fail(5610)
    currency = text(item, "ConversionCurrencyCode")
    if currency is not None and currency.strip() not in CONVERSION_GOAL_REVENUE_CURRENCIES:
        return fail(5611)
    credit = _number(text(item, "ExternalAttributionCredit"), 1.0)
    return {
        "item_index": index, "account_id": call.account["id"],
        "customer_id": call.account["customer_id"], "goal_id": goal["id"],
        "count_type": goal["count_type"], "conversion_name": name, "conversion_time": when,
        "click_id": ident.click_id, "hashed_email": ident.email, "hashed_phone": ident.phone,
        "value": value, "currency": currency.strip() if currency else None,
        "external_attribution_credit": credit if credit is not False else None,
        "external_attribution_model": text(item, "ExternalAttributionModel"),
        "identity": ident.key(),
        "dedup_key": f"{goal['id']}|{iso(when)}|{ident.key()}",
    }


def _item_json(item: ET.Element) -> str:
    if is_nil(item):
        return "null"
    return json.dumps({c.tag.rsplit("}", 1)[-1]: c.text for c in item})


def _record_rejections(db, call: Call, operation: str, items: list[ET.Element],
                       batch: list[BatchError]) -> None:
    db.executemany(
        "INSERT INTO rejections (request_id, operation, item_index, code, error_code, message, "
        "item, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(call.request_id, operation, b.index, b.code, b.error_code, b.message,
          _item_json(items[b.index]), call.now) for b in batch])


def _checked_items(call: Call, element: str, limit: int, check) -> tuple[list, list, list]:
    """The request's items (5600 when none, 5601 over ``limit``), checked one by one:
    (items, batch errors, the items that passed as dicts)."""
    arr = child(call.body, element)
    items = [] if arr is None or is_nil(arr) else list(arr)
    if not items:
        raise errors.operation(5600)
    if len(items) > limit:
        raise errors.operation(5601)
    goals = {g["name"]: g for g in call.store.goals_for_account(call.account)}
    clicks = call.store.clicks(_blank(text(i, "MicrosoftClickId")) for i in items)
    checked = [check(i, item, goals, call, clicks) for i, item in enumerate(items)]
    return (items, [c for c in checked if isinstance(c, BatchError)],
            [c for c in checked if isinstance(c, dict)])


def apply_offline_conversions(call: Call) -> str:
    items, batch, good = _checked_items(call, "OfflineConversions", MAX_CONVERSIONS,
                                        _check_conversion)
    with call.store.transaction() as db:
        existing = _existing_keys(db, [c["dedup_key"] for c in good])
        for c in good:
            original = existing.get(c["dedup_key"])
            if original is not None:
                db.execute(
                    "INSERT INTO duplicates (request_id, item_index, original_id, account_id, "
                    "goal_id, conversion_name, conversion_time, click_id, hashed_email, "
                    "hashed_phone, value, currency, dedup_key, received_at) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (call.request_id, c["item_index"], original, c["account_id"], c["goal_id"],
                     c["conversion_name"], c["conversion_time"], c["click_id"],
                     c["hashed_email"], c["hashed_phone"], c["value"], c["currency"],
                     c["dedup_key"], call.now))
                continue
            counted = 1
            if c["count_type"] == "Unique":
                # "Unique": only the first conversion after a click counts; later ones are
                # accepted and not counted.
                prior = db.execute("SELECT 1 FROM conversions WHERE goal_id = ? AND "
                                   "dedup_key LIKE ? LIMIT 1",
                                   (c["goal_id"], f"{c['goal_id']}|%|{c['identity']}")
                                   ).fetchone()
                counted = 0 if prior else 1
            cur = db.execute(
                "INSERT INTO conversions (request_id, item_index, account_id, customer_id, "
                "goal_id, conversion_name, conversion_time, click_id, hashed_email, "
                "hashed_phone, value, currency, external_attribution_credit, "
                "external_attribution_model, dedup_key, counted, received_at) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (call.request_id, c["item_index"], c["account_id"], c["customer_id"],
                 c["goal_id"], c["conversion_name"], c["conversion_time"], c["click_id"],
                 c["hashed_email"], c["hashed_phone"], c["value"], c["currency"],
                 c["external_attribution_credit"], c["external_attribution_model"],
                 c["dedup_key"], counted, call.now))
            existing[c["dedup_key"]] = cur.lastrowid
        _record_rejections(db, call, "ApplyOfflineConversions", items, batch)
    return (f'<ApplyOfflineConversionsResponse xmlns="{CM_NS}">{partial_errors(batch)}'
            "</ApplyOfflineConversionsResponse>")


def _existing_keys(db, keys: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    unique = sorted(set(keys))
    for i in range(0, len(unique), 500):
        chunk = unique[i:i + 500]
        for row in db.execute(f"SELECT dedup_key, id FROM conversions WHERE dedup_key IN "
                              f"({', '.join('?' * len(chunk))})", chunk):
            found[row[0]] = row[1]
    return found


# -- ApplyOfflineConversionAdjustments --------------------------------------------------------


def _check_adjustment(index: int, item: ET.Element, goals: dict[str, dict], call: Call,
                      clicks: dict[str, dict]) -> BatchError | dict:
    head = _item_head(index, item, goals, call, clicks)
    if isinstance(head, BatchError):
        return head
    fail, name, when, goal, ident = head
    now = call.now
    if now - when > LOOKBACK:
        return fail(5609)
    kind = (text(item, "AdjustmentType") or "").strip()
    if kind not in ("Restate", "Retract"):
        return fail(5618)
    raw_time = text(item, "AdjustmentTime")
    if raw_time is None or not raw_time.strip():
        return fail(5619)
    try:
        adjusted_at = parse_datetime(raw_time)
    except ValueError:
        return fail(5621)
    if adjusted_at > now:
        return fail(5622)
    if adjusted_at < when:
        return fail(5620)
    if now - adjusted_at > LOOKBACK:
        return fail(5623)
    raw_value = text(item, "AdjustmentValue")
    value = None
    currency = _blank(text(item, "AdjustmentCurrencyCode"))
    if kind == "Retract":
        if _blank(raw_value) is not None:
            return fail(5624)
        currency = None
    else:
        if _blank(raw_value) is None:
            return fail(5625)
        value = _number(raw_value, float(call.store.setting("max_conversion_value")))
        if value is False:
            return fail(5610)
        if currency is not None and currency not in CONVERSION_GOAL_REVENUE_CURRENCIES:
            return fail(5611)
    return {
        "item_index": index, "account_id": call.account["id"], "goal_id": goal["id"],
        "conversion_name": name, "conversion_time": when, "click_id": ident.click_id,
        "hashed_email": ident.email, "hashed_phone": ident.phone, "adjustment_type": kind,
        "adjustment_time": adjusted_at, "adjustment_value": value, "currency": currency,
        "dedup_key": f"{goal['id']}|{iso(when)}|{ident.key()}",
    }


def apply_offline_conversion_adjustments(call: Call) -> str:
    items, batch, good = _checked_items(call, "OfflineConversionAdjustments", MAX_ADJUSTMENTS,
                                        _check_adjustment)
    with call.store.transaction() as db:
        originals = _existing_keys(db, [c["dedup_key"] for c in good])
        for c in good:
            original = originals.get(c["dedup_key"])
            db.execute(
                "INSERT INTO adjustments (request_id, item_index, account_id, goal_id, "
                "conversion_name, conversion_time, click_id, hashed_email, hashed_phone, "
                "adjustment_type, adjustment_time, adjustment_value, currency, original_id, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (call.request_id, c["item_index"], c["account_id"], c["goal_id"],
                 c["conversion_name"], c["conversion_time"], c["click_id"], c["hashed_email"],
                 c["hashed_phone"], c["adjustment_type"], c["adjustment_time"],
                 c["adjustment_value"], c["currency"], original, call.now))
            if original is None:
                continue  # Microsoft accepts it and reports AdjustmentOriginalNotFound later
            if c["adjustment_type"] == "Retract":
                db.execute("UPDATE conversions SET retracted_at = ? WHERE id = ?",
                           (c["adjustment_time"], original))
            else:
                db.execute("UPDATE conversions SET restated_value = ?, restated_currency = ? "
                           "WHERE id = ?", (c["adjustment_value"], c["currency"], original))
        _record_rejections(db, call, "ApplyOfflineConversionAdjustments", items, batch)
    return (f'<ApplyOfflineConversionAdjustmentsResponse xmlns="{CM_NS}">'
            f"{partial_errors(batch)}</ApplyOfflineConversionAdjustmentsResponse>")


OPERATIONS: dict[str, Callable[[Call], str]] = {
    "GetConversionGoalsByIds": get_conversion_goals_by_ids,
    "AddConversionGoals": add_conversion_goals,
    "ApplyOfflineConversions": apply_offline_conversions,
    "ApplyOfflineConversionAdjustments": apply_offline_conversion_adjustments,
}
