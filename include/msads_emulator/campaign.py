"""Campaign Management v13 over REST: conversion goals and offline conversions, with Microsoft's
rules. Requests and responses are JSON objects shaped like the SDK's models (rest.py)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from include.msads_emulator import errors, offline, rest
from include.msads_emulator.currencies import CONVERSION_GOAL_REVENUE_CURRENCIES
from include.msads_emulator.errors import BatchError
from include.msads_emulator.store import Store
from include.msads_emulator.timeutil import iso, parse_datetime

if TYPE_CHECKING:
    import sqlite3

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
    body: dict
    user: dict
    account: dict
    customer_id: int
    request_id: int
    now: float
    # BatchErrors a test injected, by item index: they replace the rules' verdict.
    forced: dict[int, BatchError] = field(default_factory=dict)
    # Where the per-record report files are served: https on the emulator's port.
    files_url: str = ""


GOAL_ENUMS = {
    "AttributionModelType": ATTRIBUTION_MODELS,
    "CountType": COUNT_TYPES,
    "GoalCategory": tuple(OFFLINE_GOAL_CATEGORIES | {"Unknown", "None", "Download"}),
    "Scope": SCOPES,
    "Status": GOAL_STATUSES + ("Deleted",),
    "TrackingStatus": ("TagUnverified", "NoRecentConversions", "RecordingConversions",
                       "TagInactive", "InactiveDueToTagUnavailable"),
}
GOAL_INTS = ("ConversionWindowInMinutes", "ViewThroughConversionWindowInMinutes")
GOAL_BOOLS = ("ExcludeFromBidding", "IsAutoGoal", "IsEnhancedConversionsEnabled",
              "IsExternallyAttributed")


def _readable_goal(g: object, index: int) -> None:
    """The whole request is bound before any rule runs: a value of the wrong type or an
    unknown enum name faults the call (errors.unreadable)."""
    if g is None:
        return
    where = f"ConversionGoals[{index}]."
    if not isinstance(g, dict):
        raise errors.unreadable(f"{where[:-1]}: expected an object.")
    for name, allowed in GOAL_ENUMS.items():
        value = rest.get(g, name, "string", where)
        if value is not None and value not in allowed:
            raise errors.unreadable(f"{where}{name}: {value!r} is not a known value.")
    goal_type = rest.get(g, "Type", "string", where)
    if goal_type is not None:
        rest.flags(goal_type, GOAL_TYPES, where + "Type")
    rest.get_id(g, "Id", where)
    rest.get_id(g, "TagId", where)
    for name in GOAL_INTS:
        rest.get(g, name, "integer", where)
    for name in GOAL_BOOLS:
        rest.get(g, name, "boolean", where)
    revenue = rest.get(g, "Revenue", "object", where)
    if revenue is not None:
        rtype = rest.get(revenue, "Type", "string", where + "Revenue.")
        if rtype is not None and rtype not in REVENUE_TYPES:
            raise errors.unreadable(f"{where}Revenue.Type: {rtype!r} is not a known value.")
        rest.get(revenue, "Value", "number", where + "Revenue.")
        rest.get(revenue, "CurrencyCode", "string", where + "Revenue.")


# -- GetConversionGoalsByIds ------------------------------------------------------------------

ADDITIONAL_FIELDS = frozenset(
    "ViewThroughConversionWindowInMinutes IsExternallyAttributed GoalCategory "
    "InactiveDueToTagUnavailable AttributionModelType IsEnhancedConversionsEnabled IsAutoGoal "
    "DataDrivenAttribute ApplicationDownloadGoal".split()) | {"None"}


def goal_json(goal: dict, fields: set[str], recording: bool) -> dict:
    """One OfflineConversionGoal; the additional fields not asked for are left out."""
    revenue = {"CurrencyCode": goal["currency"], "Type": goal["revenue_type"],
               "Value": goal["revenue_value"]}
    out = {
        "ConversionWindowInMinutes": goal["window_minutes"], "CountType": goal["count_type"],
        "ExcludeFromBidding": bool(goal["exclude_from_bidding"]), "Id": str(goal["id"]),
        "Name": goal["name"], "Revenue": {k: v for k, v in revenue.items() if v is not None},
        "Scope": goal["scope"], "Status": goal["status"],
        "TrackingStatus": "RecordingConversions" if recording else "NoRecentConversions",
        "Type": "OfflineConversion",
    }
    if "AttributionModelType" in fields:
        out["AttributionModelType"] = goal["attribution_model"] or "LastClick"
    if "GoalCategory" in fields and goal["category"]:
        out["GoalCategory"] = goal["category"]
    if "IsAutoGoal" in fields:
        out["IsAutoGoal"] = False
    if "IsEnhancedConversionsEnabled" in fields:
        out["IsEnhancedConversionsEnabled"] = bool(goal["enhanced_conversions"])
    if "ViewThroughConversionWindowInMinutes" in fields \
            and goal["view_through_window_minutes"] is not None:
        out["ViewThroughConversionWindowInMinutes"] = goal["view_through_window_minutes"]
    if "IsExternallyAttributed" in fields:
        out["IsExternallyAttributed"] = bool(goal["externally_attributed"])
    return out


def _recording(store: Store, account_id: int, goals: list[dict]) -> set[int]:
    """The ids of these goals that have a conversion of this account (``StoredNumbers``
    knows them: no index reads conversions by account or goal)."""
    with store.lock:
        return {goal["id"] for goal in goals
                if store.db.numbers.has_goal(goal["id"], account_id)}


def get_conversion_goals_by_ids(call: Call) -> dict:
    body = call.body
    # "None" is a member of both flags enums; the SDK sends it beside the values asked for.
    types = rest.flags(rest.get(body, "ConversionGoalTypes", "string"),
                       (*GOAL_TYPES, "None"), "ConversionGoalTypes")
    types = [t for t in types if t != "None"]
    if not types:
        raise errors.operation(5329)
    fields = set(rest.flags(rest.get(body, "ReturnAdditionalFields", "string"),
                            ADDITIONAL_FIELDS, "ReturnAdditionalFields"))
    raw_ids = rest.get(body, "ConversionGoalIds", "array") or []
    ids: list[int | None] = []
    for i, raw in enumerate(raw_ids):
        ids.append(rest.get_id({"Id": raw}, "Id", f"ConversionGoalIds[{i}]."))
    if len(ids) > MAX_GOAL_IDS:
        raise errors.operation(5318)
    visible = call.store.goals_for_account(call.account)
    if "OfflineConversion" not in types:
        visible = []
    recording = _recording(call.store, call.account["id"], visible)
    batch: list[BatchError] = []
    out: list[dict | None] = []
    if ids:
        by_id = {g["id"]: g for g in visible}
        for i, gid in enumerate(ids):
            goal = by_id.get(gid)
            if goal is None:
                out.append(None)
                batch.append(errors.batch_error(i, 5314))
            else:
                out.append(goal_json(goal, fields, goal["id"] in recording))
    else:
        out = [goal_json(g, fields, g["id"] in recording) for g in visible]
    return {"ConversionGoals": out, "PartialErrors": [b.as_json() for b in batch]}


# -- AddConversionGoals -----------------------------------------------------------------------


def _goal_error(index: int, code: int) -> BatchError:
    return errors.batch_error(index, code)


# Microsoft's goal rules one per line, in the order the first refusal wins (docs/emulator.md).
def _parse_goal(index: int, g: dict | None, call: Call, names_in_batch: set[str]  # noqa: C901
                ) -> tuple[BatchError | None, dict | None]:
    if g is None:
        return _goal_error(index, 5323), None
    if g.get("Type") != "OfflineConversion":
        # Only offline goals are emulated; others are refused as a type mismatch.
        return _goal_error(index, 5331), None
    if g.get("Id") not in (None, ""):
        return _goal_error(index, 5324), None
    name = (g.get("Name") or "").strip()
    if not name:
        return _goal_error(index, 5319), None
    if len(name) > 100:
        return _goal_error(index, 5320), None
    if name in names_in_batch:
        return _goal_error(index, 5316), None
    if call.store.goal_name_taken(call.customer_id, name):
        return _goal_error(index, 5317), None
    window = g.get("ConversionWindowInMinutes")
    window = 43200 if window is None else window
    if not 1 <= window <= MAX_WINDOW_MINUTES:
        return _goal_error(index, 5337), None
    count_type = g.get("CountType") or "All"
    scope = g.get("Scope") or "Account"
    status = g.get("Status") or "Active"
    attribution = g.get("AttributionModelType")
    category = g.get("GoalCategory") or ""
    if category not in OFFLINE_GOAL_CATEGORIES:
        return _goal_error(index, 5364), None
    revenue = g.get("Revenue")
    revenue_type, revenue_value, currency = "NoValue", None, None
    if revenue is not None:
        revenue_type = revenue.get("Type") or "NoValue"
        raw_value = revenue.get("Value")
        if raw_value is not None:
            try:
                value = Decimal(repr(raw_value))
            except InvalidOperation:
                return _goal_error(index, 5333), None
            if not value.is_finite() or value < 0 or value > MAX_GOAL_REVENUE:
                return _goal_error(index, 5333), None
            revenue_value = float(value)
        currency_raw = (revenue.get("CurrencyCode") or "").strip()
        if currency_raw:
            if currency_raw not in CONVERSION_GOAL_REVENUE_CURRENCIES:
                return _goal_error(index, 5351), None
            currency = currency_raw
    if revenue_type == "FixedValue" and revenue_value is None:
        return _goal_error(index, 5333), None
    if revenue_type == "NoValue" and revenue_value is not None:
        return _goal_error(index, 5333), None
    if scope == "Customer" and revenue_type != "NoValue" and currency is None:
        return _goal_error(index, 5355), None
    if scope == "Account" and revenue_type != "NoValue" and currency is None:
        currency = call.account["currency"]
    names_in_batch.add(name)
    return None, {
        "customer_id": call.customer_id,
        "account_id": call.account["id"] if scope == "Account" else None,
        "name": name, "scope": scope, "status": status, "window_minutes": window,
        "count_type": count_type, "category": category, "revenue_type": revenue_type,
        "revenue_value": revenue_value, "currency": currency,
        "attribution_model": attribution,
        "exclude_from_bidding": int(bool(g.get("ExcludeFromBidding"))),
        "externally_attributed": int(bool(g.get("IsExternallyAttributed"))),
        # Microsoft: enhanced conversions can only be switched on in the web UI, so goals
        # added through the API never have them (the admin API can create such goals).
        "enhanced_conversions": 0, "view_through_window_minutes": None,
        "created_at": call.now, "created_by": "api",
    }


def add_conversion_goals(call: Call) -> dict:
    items = rest.get(call.body, "ConversionGoals", "array") or []
    if not items:
        raise errors.operation(5321)
    if len(items) > MAX_GOALS_PER_ADD:
        raise errors.operation(5322)
    for i, g in enumerate(items):
        _readable_goal(g, i)
    names: set[str] = set()
    ids: list[str | None] = []
    batch: list[BatchError] = []
    for i, g in enumerate(items):
        err, goal = _parse_goal(i, g, call, names)
        if err:
            batch.append(err)
            ids.append(None)
        else:
            ids.append(str(call.store.insert_goal(goal)["id"]))
    return {"ConversionGoalIds": ids, "PartialErrors": [b.as_json() for b in batch]}


# -- ApplyOfflineConversions and ApplyOfflineConversionAdjustments ---------------------------
# Each item is read into a plain dict of text once (rest.ItemShape); offline.py holds the rules.
# An OfflineConversion of the common shape is checked as sent (offline.Conversions).

Verdicts = tuple[dict[int, offline.Item], list[tuple[int, int | dict | tuple]]]
Read = Callable[[object, int], offline.Item]
CheckAll = Callable[[offline.Context, list, dict[str, set[str]], Read, dict], Verdicts]


def _check_each(check: Callable[[offline.Item, offline.Context], int | dict]) -> CheckAll:
    """Read every item, then check each one not forced (an accepted one with its
    ``item_index``)."""
    def check_all(ctx: offline.Context, raw: list, found: dict[str, set[str]], read: Read,
                  forced: dict) -> Verdicts:
        items = {i: read(item, i) for i, item in enumerate(raw)}
        verdicts: list[tuple[int, int | dict | tuple]] = []
        for i, item in items.items():
            if i not in forced:
                result = check(item, ctx)
                verdicts.append((i, result if isinstance(result, int)
                                 else {**result, "item_index": i}))
        return items, verdicts
    return check_all


def _check_conversions(ctx: offline.Context, raw: list, found: dict[str, set[str]],
                       read: Read, forced: dict) -> Verdicts:
    return offline.Conversions(ctx, found).check(raw, read, forced)


def _apply(call: Call, operation: str, shape: rest.ItemShape, limit: int, check_all: CheckAll,
           record: Callable[[sqlite3.Connection, list, int, float], None]) -> dict:
    """Read the items (5600 when none, 5601 over ``limit``), check each, keep what passed and
    answer with a BatchError at the index of each refused item."""
    raw = rest.get(call.body, shape.name, "array") or []
    if not raw:
        raise errors.operation(5600)
    if len(raw) > limit:
        raise errors.operation(5601)
    store = call.store
    found = offline.columns(raw)
    click_ids, emails, phones = offline.lookups(found)
    ctx = offline.Context(
        account=call.account,
        goals={g["name"]: g for g in store.goals_for_account(call.account)},
        clicks=store.clicks(click_ids), now=call.now,
        max_value=float(store.setting("max_conversion_value")),
        identified=store.clicks_by_hash(call.account["id"], emails, phones))
    items, verdicts = check_all(ctx, raw, found, shape.read, call.forced)
    batch: list[BatchError] = []
    accepted: list[dict | tuple] = []
    checked = iter(verdicts)
    for index in range(len(raw)):
        if index in call.forced:
            batch.append(call.forced[index])
            continue
        result = next(checked)[1]
        if isinstance(result, int):
            batch.append(errors.batch_error(index, result))
        else:
            accepted.append(result)
    with store.transaction() as db:
        record(db, accepted, call.request_id, call.now)
        offline.record_rejections(db, operation, items, batch, call.request_id, call.now)
    return {"PartialErrors": [b.as_json() for b in batch]}


def apply_offline_conversions(call: Call) -> dict:
    return _apply(call, "ApplyOfflineConversions", rest.OFFLINE_CONVERSION, MAX_CONVERSIONS,
                  _check_conversions, offline.record_conversions)


def apply_offline_conversion_adjustments(call: Call) -> dict:
    return _apply(call, "ApplyOfflineConversionAdjustments", rest.OFFLINE_CONVERSION_ADJUSTMENT,
                  MAX_ADJUSTMENTS, _check_each(offline.check_adjustment),
                  offline.record_adjustments)


# -- offline conversion reports ---------------------------------------------------------------
# What became of the uploads, per UTC day of upload (GetOfflineConversionReports, one account)
# and per goal (GetOfflineConversionReportByGoalIds). Microsoft's pages name the fields but not
# how each is counted; assumed here: a success is an accepted conversion that counts, an
# unattributed one is accepted and not counted (its reason is the alert), a failure is an item
# refused with a BatchError. Each DailySummary links to the day's per-record file (FileUrl; its
# CSV format is assumed: Microsoft names the per-record fields, not the file's layout).
# Uploads show only after the setting ``report_lag_seconds`` (default 0).

UPLOAD_CHANNELS = ("Unknown", "CampaignManagementAPI", "BulkAPI", "WebUpload")
# The emulator's reasons for not counting, as OfflineConversionUnattributedReason names; the
# reasons that enum lacks are mapped to the nearest (assumed).
UNATTRIBUTED = {
    offline.GOAL_INACTIVE: "GoalNotFoundOrInactive",
    offline.NO_MATCHING_CLICK: "NoMatchingClickFound",
    offline.ACCOUNT_MISMATCH: "AccountMismatch",
    offline.OUTSIDE_WINDOW: "OutsideGoalLookbackWindow",
    offline.NOT_FIRST: "DuplicateConversionKey",
    offline.NOT_ENHANCED: "MissingMatchIdentifiers",
    offline.EMAIL_NOT_HASHED: "MalformedData",
    offline.PHONE_NOT_HASHED: "MalformedData",
    offline.EXTERNAL_NOT_ELIGIBLE: "MalformedData",
    offline.EXTERNAL_FIELD_EMPTY: "MalformedData",
    offline.EXTERNAL_CREDIT_INVALID: "MalformedData",
}
DAY = 86400
# Where the per-record files are served (server.py): no SDK, admin or sign-in path starts so.
FILES_PATH = "/reports/offline/"
# How long a FileUrl works (assumed: Microsoft gives FileUrlExpiryTimeUtc, not the length).
FILE_URL_LIFETIME = 3600
FILE_COLUMNS = ("RecordId", "ChannelName", "GoalId", "ConversionName", "ConversionTime",
                "MicrosoftClickId", "HashedEmailAddress", "HashedPhoneNumber", "Status",
                "UnattributedReason", "AdjustmentType")
CHANNEL = "CampaignManagementAPI"  # every upload to the emulator came through the API


def shown_until(store: Store, now: float) -> float:
    """Uploads received after this are not in the reports yet (``report_lag_seconds``)."""
    return now - float(store.setting("report_lag_seconds") or 0)


def _report_range(call: Call) -> tuple[float, float]:
    """[StartDateUtc, EndDateUtc] as epoch seconds; an open end is the start of time or now;
    the end is no later than what the report lag lets through."""
    bounds = []
    for name, default in (("StartDateUtc", 0.0), ("EndDateUtc", call.now)):
        raw = rest.get(call.body, name, "string")
        if raw is None:
            bounds.append(default)
            continue
        try:
            bounds.append(parse_datetime(raw))
        except ValueError:
            raise errors.unreadable(f"{name}: {raw!r} is not a date and time.") from None
    return bounds[0], min(bounds[1], shown_until(call.store, call.now))


def _day_start(epoch: float) -> float:
    return epoch - epoch % DAY


def _day(epoch: float) -> str:
    return iso(_day_start(epoch))


def _alerts(reasons: dict[str, int]) -> list[dict]:
    counts: dict[str, int] = {}
    for reason, n in reasons.items():
        name = UNATTRIBUTED.get(reason, "Unknown")
        counts[name] = counts.get(name, 0) + n
    return [{"UnattributedReason": k, "Count": str(v)} for k, v in sorted(counts.items())]


def _rate(success: int, unattributed: int) -> float:
    return round(success / (success + unattributed), 4) if success + unattributed else 0.0


def get_offline_conversion_reports(call: Call) -> dict:
    start, end = _report_range(call)
    account = call.account["id"]
    days: dict[float, list[int]] = {}
    for row in call.store.query(
            "SELECT received_at, counted FROM conversions WHERE account_id = ? "
            "AND received_at BETWEEN ? AND ?", (account, start, end)):
        days.setdefault(_day_start(row["received_at"]), [0, 0])[0] += 1
    for row in call.store.query(
            "SELECT x.received_at FROM rejections x JOIN requests r ON r.id = x.request_id "
            "WHERE x.operation = 'ApplyOfflineConversions' AND r.account_id = ? "
            "AND x.received_at BETWEEN ? AND ?", (str(account), start, end)):
        days.setdefault(_day_start(row["received_at"]), [0, 0])[1] += 1
    # A day with only accepted adjustments is reported too, for its file (0 and 0).
    for row in call.store.query(
            "SELECT received_at FROM adjustments WHERE account_id = ? AND duplicate_of IS NULL "
            "AND received_at BETWEEN ? AND ?", (account, start, end)):
        days.setdefault(_day_start(row["received_at"]), [0, 0])
    expires = float(int(call.now) + FILE_URL_LIFETIME)
    summaries = []
    for day, (ok, failed) in sorted(days.items()):
        token = call.store.issue_report_file(account, day, expires)
        summaries.append({"UploadDate": iso(day),
                          "FileUrl": f"{call.files_url}{FILES_PATH}{token}.csv",
                          "FileUrlExpiryTimeUtc": iso(expires),
                          "SuccessCount": ok, "FailureCount": failed})
    return {"DailySummaries": summaries}


# -- the per-record file behind a FileUrl: one row per record the account uploaded that UTC day
# (accepted conversions, conversions refused with a BatchError, accepted adjustments; not
# duplicates, which Microsoft ignores), in the order received.


def _record_id(row: dict) -> str:
    """The call's TrackingId and the item's index in it (assumed: RecordId is Reserved)."""
    return f"{row['tracking_id'] or row['request_id']}:{row['item_index']}"


def _conversion_row(row: dict) -> list:
    reason = "" if row["counted"] else UNATTRIBUTED.get(row["not_counted_reason"], "Unknown")
    return [_record_id(row), CHANNEL, row["goal_id"], row["conversion_name"],
            iso(row["conversion_time"]), row["click_id"], row["hashed_email"],
            row["hashed_phone"], "Success", reason, ""]


def _adjustment_row(row: dict) -> list:
    return [_record_id(row), CHANNEL, row["goal_id"], row["conversion_name"],
            iso(row["conversion_time"]), row["click_id"], row["hashed_email"],
            row["hashed_phone"], "Success", row["not_applied_reason"] or "",
            row["adjustment_type"]]


def _rejection_row(row: dict, goals: dict[str, dict]) -> list:
    """A refused item as sent, with its BatchError's ErrorCode as its Status; its goal when
    the name was one the account saw then; a time that cannot be read stays as sent."""
    item = json.loads(row["item"] or "null") or {}
    name = item.get("ConversionName")
    goal = goals.get(name or "")
    goal_id = goal["id"] if goal and goal["created_at"] <= row["received_at"] else ""
    raw_time = item.get("ConversionTime")
    try:
        when = iso(parse_datetime(raw_time or ""))
    except ValueError:
        when = raw_time
    return [_record_id(row), CHANNEL, goal_id, name, when, item.get("MicrosoftClickId"),
            item.get("HashedEmailAddress"), item.get("HashedPhoneNumber"), row["error_code"],
            "", ""]


def _file_rows(store: Store, account: dict, day: float, until: float) -> list[list]:
    """The rows of the records received on the UTC day starting at ``day`` and no later than
    ``until``, in the order received."""
    bounds = (day, day + DAY, until)
    when = "{0}.received_at >= ? AND {0}.received_at < ? AND {0}.received_at <= ?"
    keyed: list[tuple[tuple, list]] = []
    for row in store.query(
            "SELECT c.*, r.tracking_id FROM conversions c LEFT JOIN requests r "
            "ON r.id = c.request_id WHERE c.account_id = ? AND " + when.format("c"),
            (account["id"], *bounds)):
        keyed.append(((row["received_at"], row["request_id"], row["item_index"]),
                      _conversion_row(row)))
    for row in store.query(
            "SELECT a.*, r.tracking_id FROM adjustments a LEFT JOIN requests r "
            "ON r.id = a.request_id WHERE a.account_id = ? AND a.duplicate_of IS NULL AND "
            + when.format("a"), (account["id"], *bounds)):
        keyed.append(((row["received_at"], row["request_id"], row["item_index"]),
                      _adjustment_row(row)))
    goals = {g["name"]: g for g in store.goals_for_account(account)}
    for row in store.query(
            "SELECT x.*, r.tracking_id FROM rejections x JOIN requests r ON r.id = x.request_id "
            "WHERE x.operation = 'ApplyOfflineConversions' AND r.account_id = ? AND "
            + when.format("x"), (str(account["id"]), *bounds)):
        keyed.append(((row["received_at"], row["request_id"], row["item_index"]),
                      _rejection_row(row, goals)))
    return [cells for _, cells in sorted(keyed, key=lambda k: k[0])]


def report_file(store: Store, token: str, now: float) -> tuple[int, str]:
    """The file a FileUrl names, as (HTTP status, text): 200 and the CSV; 404 for a token
    never issued; 403 once it has expired (assumed, as a pre-signed link answers)."""
    issued = store.report_file(token)
    account = store.account(issued["account_id"]) if issued else None
    if issued is None or account is None:
        return 404, "The specified report file does not exist.\n"
    if now >= issued["expires_at"]:
        return 403, ("This link expired at " + (iso(issued["expires_at"]) or "") +
                     "; call GetOfflineConversionReports for a new one.\n")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FILE_COLUMNS)
    writer.writerows(_file_rows(store, account, issued["day"], shown_until(store, now)))
    return 200, out.getvalue()


def get_offline_conversion_report_by_goal_ids(call: Call) -> dict:
    start, end = _report_range(call)
    channels = rest.flags(rest.get(call.body, "UploadChannelFilter", "string"),
                          (*UPLOAD_CHANNELS, "None"), "UploadChannelFilter")
    visible = {g["id"]: g for g in call.store.goals_for_account(call.account)}
    raw_ids = rest.get(call.body, "GoalIds", "array") or []
    ids = [rest.get_id({"Id": v}, "Id", f"GoalIds[{i}].") for i, v in enumerate(raw_ids)]
    if len(ids) > MAX_GOAL_IDS:
        raise errors.operation(5318)
    batch = [errors.batch_error(i, 5314) for i, gid in enumerate(ids) if gid not in visible]
    wanted = [gid for gid in ids if gid in visible] if ids else list(visible)
    # every upload here came through the Campaign Management API
    api = not channels or "CampaignManagementAPI" in channels
    summaries = []
    for gid in wanted:
        rows = call.store.query(
            "SELECT received_at, counted, not_counted_reason FROM conversions WHERE goal_id = ? "
            "AND account_id = ? AND received_at BETWEEN ? AND ?",
            (gid, call.account["id"], start, end)) if api else []
        days: dict[str, dict] = {}
        for row in rows:
            day = days.setdefault(_day(row["received_at"]), {"ok": 0, "reasons": {}})
            if row["counted"]:
                day["ok"] += 1
            else:
                reason = row["not_counted_reason"]
                day["reasons"][reason] = day["reasons"].get(reason, 0) + 1
        ok = sum(d["ok"] for d in days.values())
        reasons: dict[str, int] = {}
        for d in days.values():
            for reason, n in d["reasons"].items():
                reasons[reason] = reasons.get(reason, 0) + n
        lost = sum(reasons.values())
        summaries.append({
            "GoalId": str(gid), "ConversionName": visible[gid]["name"],
            "OverallSuccessCount": str(ok), "OverallUnattributedCount": str(lost),
            "OverallSuccessRate": _rate(ok, lost), "OverallAlerts": _alerts(reasons),
            "DailySummaries": [{
                "GoalId": str(gid), "UploadDate": day, "SuccessCount": d["ok"],
                "UnattributedCount": sum(d["reasons"].values()),
                "SuccessRate": _rate(d["ok"], sum(d["reasons"].values())),
                "Alerts": _alerts(d["reasons"])} for day, d in sorted(days.items())]})
    return {"OfflineGoalConversionSummaries": summaries,
            "PartialErrors": [b.as_json() for b in batch]}


OPERATIONS: dict[str, Callable[[Call], dict]] = {
    "GetConversionGoalsByIds": get_conversion_goals_by_ids,
    "AddConversionGoals": add_conversion_goals,
    "ApplyOfflineConversions": apply_offline_conversions,
    "ApplyOfflineConversionAdjustments": apply_offline_conversion_adjustments,
    "GetOfflineConversionReports": get_offline_conversion_reports,
    "GetOfflineConversionReportByGoalIds": get_offline_conversion_report_by_goal_ids,
}
