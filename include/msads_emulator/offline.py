"""Offline conversions and adjustments: Microsoft's per-item rules, and what the emulator keeps.

An item is a plain dict of field name -> text (None when the field is absent or null; a null
item is None), so the rules do not depend on the wire: ``campaign.py`` reads each JSON item into
such a dict (``rest.ItemShape``). A rule either refuses the item with a BatchError code or accepts it; an accepted
conversion is counted, or not counted with the reason Microsoft's offline conversion reports
give; an accepted adjustment is applied to its original, or not (with such a reason, or as a
duplicate of one already applied). docs/emulator.md lists every rule and its source.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from include.msads_emulator.currencies import CONVERSION_GOAL_REVENUE_CURRENCIES
from include.msads_emulator.errors import BatchError
from include.msads_emulator.timeutil import DAY, HOUR, iso, parse_datetime

if TYPE_CHECKING:
    import sqlite3

Item = Mapping[str, str | None] | None

# "The date and time must be within the last 90 days" (OfflineConversion.ConversionTime).
LOOKBACK = 90 * DAY
# "wait two hours" after creating the goal (ApplyOfflineConversions, 5615).
GOAL_QUIET_PERIOD = 2 * HOUR
# Microsoft publishes no MSCLKID format; its examples (and what it issues) are 32 hex digits.
CLICK_ID = re.compile(r"[0-9a-fA-F]{32}")
# SHA-256 as hexadecimal; Microsoft states no letter case.
HEX64 = re.compile(r"[0-9a-fA-F]{64}")

# Why an accepted conversion is not counted: Microsoft's names (OfflineConversionUnattributedReason
# and the offline conversion reports' statuses), except NOT_FIRST, which is the emulator's own.
GOAL_INACTIVE = "GoalNotFoundOrInactive"
EMAIL_NOT_HASHED = "ConversionEmailAddressIsNotHashed"
PHONE_NOT_HASHED = "ConversionPhoneNumberIsNotHashed"
NOT_ENHANCED = "NotEligibleForEnhancedConversions"
EXTERNAL_NOT_ELIGIBLE = "GoalNotEligibleForExternalAttribution"
EXTERNAL_FIELD_EMPTY = "ExternalAttributionRequiredFieldEmpty"
EXTERNAL_CREDIT_INVALID = "ExternalAttributionCreditValueInvalid"
NO_MATCHING_CLICK = "NoMatchingClickFound"
ACCOUNT_MISMATCH = "AccountMismatch"
OUTSIDE_WINDOW = "OutsideGoalLookbackWindow"
NOT_FIRST = "NotFirstConversionForUniqueGoal"
# Why an accepted adjustment is not applied (OfflineConversionUnattributedReason). A duplicate
# has no reason: it is recorded with ``duplicate_of`` instead (the emulator's own rule).
ORIGINAL_NOT_FOUND = "AdjustmentOriginalNotFound"
ALREADY_RETRACTED = "ConversionAlreadyRetracted"


@dataclass
class Context:
    """What the rules need besides the item: the calling account and what it sees."""

    account: dict
    goals: dict[str, dict]  # by name
    clicks: dict[str, dict]  # by click id as stored
    now: float
    max_value: float
    # The account's clicks whose hashed email or phone one of the items without a click id has.
    identified: list[dict] = field(default_factory=list)

    def click(self, click_id: str) -> dict | None:
        return self.clicks.get(click_id) or self.clicks.get(click_id.lower())


class Refused(Exception):
    """The item is refused with this BatchError code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def click_ids(items: Iterable[Item]) -> set[str]:
    """The click ids to look up for these items (as sent and in lower case)."""
    found: set[str] = set()
    for item in items:
        click_id = _blank(item.get("MicrosoftClickId")) if item is not None else None
        if click_id:
            found |= {click_id, click_id.lower()}
    return found


def hashes(items: Iterable[Item]) -> tuple[set[str], set[str]]:
    """The hashed emails and phones (lower case) of the items sent without a click id."""
    emails: set[str] = set()
    phones: set[str] = set()
    for item in items:
        if item is None or _blank(item.get("MicrosoftClickId")):
            continue
        email, phone = _blank(item.get("HashedEmailAddress")), _blank(item.get("HashedPhoneNumber"))
        if email:
            emails.add(email.lower())
        if phone:
            phones.add(phone.lower())
    return emails, phones


def _blank(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _time(raw: str | None, missing: int, invalid: int) -> float:
    if raw is None or not raw.strip():
        raise Refused(missing)
    try:
        return parse_datetime(raw)
    except ValueError:
        raise Refused(invalid) from None


def _number(raw: str | None, limit: float) -> float | None:
    """A value: None when absent; refused (5610) when not a number, negative or too large."""
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        raise Refused(5610) from None
    if not math.isfinite(value) or value < 0 or value > limit:
        raise Refused(5610)
    return value


def _currency(raw: str | None) -> str | None:
    if raw is None:
        return None
    if raw.strip() not in CONVERSION_GOAL_REVENUE_CURRENCIES:
        raise Refused(5611)
    return raw.strip()


@dataclass
class _Head:
    name: str
    time: float
    goal: dict
    click_id: str | None
    email: str | None
    phone: str | None

    def identity(self) -> str:
        """Who converted: the click, or (without one) the hashed email and phone."""
        if self.click_id:
            return f"click:{self.click_id.lower()}"
        return f"hash:{(self.email or '').lower()}:{(self.phone or '').lower()}"

    def dedup_key(self) -> str:
        return f"{self.goal['id']}|{iso(self.time)}|{self.identity()}"


def _head(item: Item, ctx: Context) -> _Head:
    """What conversions and adjustments check alike, in this order."""
    if item is None:
        raise Refused(5602)
    name = item.get("ConversionName")
    if name is None or not name.strip():
        raise Refused(5605)
    when = _time(item.get("ConversionTime"), 5608, 5607)
    goal = ctx.goals.get(name)  # exact, case-sensitive match (Microsoft does not say)
    if goal is None:
        raise Refused(5606)
    click_id = _blank(item.get("MicrosoftClickId"))
    email = _blank(item.get("HashedEmailAddress"))
    phone = _blank(item.get("HashedPhoneNumber"))
    if click_id is None and email is None and phone is None:
        raise Refused(5603)
    if click_id is not None and not CLICK_ID.fullmatch(click_id):
        raise Refused(5604)
    if when > ctx.now:
        raise Refused(5614)
    if ctx.now - when > LOOKBACK:
        raise Refused(5609)
    return _Head(name, when, goal, click_id, email, phone)


def _external_reason(item: Mapping[str, str | None], goal: dict) -> tuple[str | None,
                                                                           float | None]:
    """External attribution: (reason not to count, or None; the credit as a number)."""
    raw_credit = _blank(item.get("ExternalAttributionCredit"))
    model = _blank(item.get("ExternalAttributionModel"))
    credit = None
    if raw_credit is not None:
        try:
            credit = float(raw_credit)
        except ValueError:
            credit = None
        if credit is not None and not math.isfinite(credit):
            credit = None
    if not goal["externally_attributed"]:
        if raw_credit is not None or model is not None:
            return EXTERNAL_NOT_ELIGIBLE, credit
        return None, None
    if raw_credit is None or model is None:
        return EXTERNAL_FIELD_EMPTY, credit
    if credit is None or not 0.0 <= credit <= 1.0:
        return EXTERNAL_CREDIT_INVALID, credit
    return None, credit


def _identity_reason(head: _Head, ctx: Context) -> str | None:
    """A conversion with hashed identifiers only: None (it counts) when one of its hashes is
    the identity of a click issued for this account, at or before the conversion and within
    the goal's window from it (as for a click id); OUTSIDE_WINDOW when such clicks are all
    too early; else NO_MATCHING_CLICK (a click after the conversion does not match)."""
    email = head.email.lower() if head.email else None
    phone = head.phone.lower() if head.phone else None
    window = head.goal["window_minutes"] * 60.0
    reason = NO_MATCHING_CLICK
    for click in ctx.identified:
        same = (email is not None and click["hashed_email"] == email) or \
            (phone is not None and click["hashed_phone"] == phone)
        if not same or click["account_id"] != ctx.account["id"] \
                or click["click_time"] > head.time:
            continue
        if head.time - click["click_time"] <= window:
            return None
        reason = OUTSIDE_WINDOW
    return reason


# Microsoft's per-item rules in the order the first one wins (docs/emulator.md).
def check_conversion(item: Item, ctx: Context) -> int | dict:  # noqa: C901
    """One OfflineConversion: a BatchError code, or the accepted conversion as a dict whose
    ``not_counted_reason`` says why it will not count (None: it counts, unless a ``Unique``
    goal already has an earlier conversion of the same click or person)."""
    try:
        head = _head(item, ctx)
        goal = head.goal
        if ctx.now - goal["created_at"] < GOAL_QUIET_PERIOD:
            raise Refused(5615)
        click = ctx.click(head.click_id) if head.click_id else None
        if click is not None and click["account_id"] == ctx.account["id"] \
                and head.time < click["click_time"]:
            raise Refused(5616)
        value = _number(item.get("ConversionValue"), ctx.max_value)
        currency = _currency(item.get("ConversionCurrencyCode"))
    except Refused as refused:
        return refused.code
    external, credit = _external_reason(item, goal)
    reason = None
    if goal["status"] != "Active":
        reason = GOAL_INACTIVE
    elif head.email is not None and not HEX64.fullmatch(head.email):
        reason = EMAIL_NOT_HASHED
    elif head.phone is not None and not HEX64.fullmatch(head.phone):
        reason = PHONE_NOT_HASHED
    elif head.click_id is None and not goal["enhanced_conversions"]:
        reason = NOT_ENHANCED
    elif external is not None:
        reason = external
    elif head.click_id is not None:
        if click is None:
            reason = NO_MATCHING_CLICK
        elif click["account_id"] != ctx.account["id"]:
            reason = ACCOUNT_MISMATCH
        elif head.time - click["click_time"] > goal["window_minutes"] * 60.0:
            reason = OUTSIDE_WINDOW
    else:
        reason = _identity_reason(head, ctx)
    return {
        "account_id": ctx.account["id"], "customer_id": ctx.account["customer_id"],
        "goal_id": goal["id"], "count_type": goal["count_type"], "conversion_name": head.name,
        "conversion_time": head.time, "click_id": head.click_id, "hashed_email": head.email,
        "hashed_phone": head.phone, "value": value, "currency": currency,
        "external_attribution_credit": credit,
        "external_attribution_model": item.get("ExternalAttributionModel"),
        "identity": head.identity(), "dedup_key": head.dedup_key(),
        "not_counted_reason": reason,
    }


def check_adjustment(item: Item, ctx: Context) -> int | dict:
    """One OfflineConversionAdjustment: a BatchError code, or the adjustment as a dict."""
    try:
        head = _head(item, ctx)
        kind = (item.get("AdjustmentType") or "").strip()
        if kind not in ("Restate", "Retract"):
            raise Refused(5618)
        adjusted_at = _time(item.get("AdjustmentTime"), 5619, 5621)
        if adjusted_at > ctx.now:
            raise Refused(5622)
        if adjusted_at < head.time:
            raise Refused(5620)
        if ctx.now - adjusted_at > LOOKBACK:
            raise Refused(5623)
        raw_value = item.get("AdjustmentValue")
        value = None
        currency = _blank(item.get("AdjustmentCurrencyCode"))
        if kind == "Retract":
            if _blank(raw_value) is not None:
                raise Refused(5624)
            currency = None
        else:
            if _blank(raw_value) is None:
                raise Refused(5625)
            value = _number(raw_value, ctx.max_value)
            currency = _currency(currency)
    except Refused as refused:
        return refused.code
    return {
        "account_id": ctx.account["id"], "goal_id": head.goal["id"],
        "conversion_name": head.name, "conversion_time": head.time, "click_id": head.click_id,
        "hashed_email": head.email, "hashed_phone": head.phone, "adjustment_type": kind,
        "adjustment_time": adjusted_at, "adjustment_value": value, "currency": currency,
        "dedup_key": head.dedup_key(),
    }


# -- what the emulator keeps ------------------------------------------------------------------


def existing_keys(db: sqlite3.Connection, keys: Iterable[str]) -> dict[str, int]:
    """Conversion ids by dedup key, for the keys already stored."""
    found: dict[str, int] = {}
    unique = sorted(set(keys))
    for i in range(0, len(unique), 500):
        chunk = unique[i:i + 500]
        for row in db.execute(f"SELECT dedup_key, id FROM conversions WHERE dedup_key IN "
                              f"({', '.join('?' * len(chunk))})", chunk):
            found[row[0]] = row[1]
    return found


def _recount_unique(db: sqlite3.Connection, goal_id: int, identity: str) -> None:
    """``Unique``: of the conversions of one click (or person) that would count, only the one
    with the earliest conversion time does, whatever order they arrived in."""
    rows = db.execute(
        "SELECT id FROM conversions WHERE goal_id = ? AND identity = ? AND "
        "(not_counted_reason IS NULL OR not_counted_reason = ?) ORDER BY conversion_time, id",
        (goal_id, identity, NOT_FIRST)).fetchall()
    for n, row in enumerate(rows):
        db.execute("UPDATE conversions SET counted = ?, not_counted_reason = ? WHERE id = ?",
                   (1, None, row[0]) if n == 0 else (0, NOT_FIRST, row[0]))


def record_conversions(db: sqlite3.Connection, accepted: list[dict], request_id: int,
                       now: float) -> None:
    """Store accepted conversions (each with its ``item_index``); a repeat of a stored one
    (same goal, conversion time and click or hashed identity) is kept under duplicates."""
    existing = existing_keys(db, [c["dedup_key"] for c in accepted])
    fresh = [c for c in accepted if c["dedup_key"] not in existing]
    if len({c["dedup_key"] for c in fresh}) == len(fresh) and not any(
            c["not_counted_reason"] is None and c["count_type"] == "Unique" for c in fresh):
        # nothing repeats within the request and nothing is recounted: one INSERT for all
        _insert_conversions(db, fresh, request_id, now)
        accepted = [c for c in accepted if c["dedup_key"] in existing]
    for c in accepted:
        original = existing.get(c["dedup_key"])
        if original is not None:
            db.execute(
                "INSERT INTO duplicates (request_id, item_index, original_id, account_id, "
                "goal_id, conversion_name, conversion_time, click_id, hashed_email, "
                "hashed_phone, value, currency, dedup_key, received_at) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (request_id, c["item_index"], original, c["account_id"], c["goal_id"],
                 c["conversion_name"], c["conversion_time"], c["click_id"], c["hashed_email"],
                 c["hashed_phone"], c["value"], c["currency"], c["dedup_key"], now))
            continue
        reason = c["not_counted_reason"]
        cur = db.execute(
            "INSERT INTO conversions (request_id, item_index, account_id, customer_id, "
            "goal_id, conversion_name, conversion_time, click_id, hashed_email, hashed_phone, "
            "value, currency, external_attribution_credit, external_attribution_model, "
            "identity, dedup_key, counted, not_counted_reason, received_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (request_id, c["item_index"], c["account_id"], c["customer_id"], c["goal_id"],
             c["conversion_name"], c["conversion_time"], c["click_id"], c["hashed_email"],
             c["hashed_phone"], c["value"], c["currency"], c["external_attribution_credit"],
             c["external_attribution_model"], c["identity"], c["dedup_key"],
             int(reason is None), reason, now))
        existing[c["dedup_key"]] = cur.lastrowid
        if reason is None and c["count_type"] == "Unique":
            _recount_unique(db, c["goal_id"], c["identity"])


def _insert_conversions(db: sqlite3.Connection, rows: list[dict], request_id: int,
                        now: float) -> None:
    db.executemany(
        "INSERT INTO conversions (request_id, item_index, account_id, customer_id, "
        "goal_id, conversion_name, conversion_time, click_id, hashed_email, hashed_phone, "
        "value, currency, external_attribution_credit, external_attribution_model, "
        "identity, dedup_key, counted, not_counted_reason, received_at) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(request_id, c["item_index"], c["account_id"], c["customer_id"], c["goal_id"],
          c["conversion_name"], c["conversion_time"], c["click_id"], c["hashed_email"],
          c["hashed_phone"], c["value"], c["currency"], c["external_attribution_credit"],
          c["external_attribution_model"], c["identity"], c["dedup_key"],
          int(c["not_counted_reason"] is None), c["not_counted_reason"], now) for c in rows])


def _adjustment_outcome(db: sqlite3.Connection, c: dict,
                        original: int | None) -> tuple[str | None, int | None]:
    """(not_applied_reason, duplicate_of) of an accepted adjustment; both None: apply it.

    Checked in this order: no original (Microsoft reports ``AdjustmentOriginalNotFound``);
    the same type, adjustment time, value and currency as an adjustment already applied to
    this original (a duplicate: the emulator's rule, not Microsoft's); the original is
    retracted (Microsoft reports ``ConversionAlreadyRetracted``).
    """
    if original is None:
        return ORIGINAL_NOT_FOUND, None
    same = db.execute(
        "SELECT id FROM adjustments WHERE original_id = ? AND adjustment_type = ? "
        "AND adjustment_time = ? AND adjustment_value IS ? AND currency IS ? "
        "AND duplicate_of IS NULL AND not_applied_reason IS NULL ORDER BY id LIMIT 1",
        (original, c["adjustment_type"], c["adjustment_time"], c["adjustment_value"],
         c["currency"])).fetchone()
    if same is not None:
        return None, same[0]
    retracted = db.execute("SELECT retracted_at FROM conversions WHERE id = ?",
                           (original,)).fetchone()[0]
    if retracted is not None:
        return ALREADY_RETRACTED, None
    return None, None


def record_adjustments(db: sqlite3.Connection, accepted: list[dict], request_id: int,
                       now: float) -> None:
    """Store adjustments (each with its ``item_index``), in the order sent, and apply each to
    its original unless ``_adjustment_outcome`` says not to: a Retract sets ``retracted_at``,
    a Restate the restated value and currency (the last one applied wins)."""
    originals = existing_keys(db, [c["dedup_key"] for c in accepted])
    for c in accepted:
        original = originals.get(c["dedup_key"])
        reason, duplicate_of = _adjustment_outcome(db, c, original)
        db.execute(
            "INSERT INTO adjustments (request_id, item_index, account_id, goal_id, "
            "conversion_name, conversion_time, click_id, hashed_email, hashed_phone, "
            "adjustment_type, adjustment_time, adjustment_value, currency, original_id, "
            "received_at, duplicate_of, not_applied_reason) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (request_id, c["item_index"], c["account_id"], c["goal_id"], c["conversion_name"],
             c["conversion_time"], c["click_id"], c["hashed_email"], c["hashed_phone"],
             c["adjustment_type"], c["adjustment_time"], c["adjustment_value"], c["currency"],
             original, now, duplicate_of, reason))
        if reason is not None or duplicate_of is not None:
            continue  # accepted, not applied
        if c["adjustment_type"] == "Retract":
            db.execute("UPDATE conversions SET retracted_at = ? WHERE id = ?",
                       (c["adjustment_time"], original))
        else:
            db.execute("UPDATE conversions SET restated_value = ?, restated_currency = ? "
                       "WHERE id = ?", (c["adjustment_value"], c["currency"], original))


def record_rejections(db: sqlite3.Connection, operation: str, items: list[Item],
                      refused: list[BatchError], request_id: int, now: float) -> None:
    """Keep the refused items with their BatchError and the item as sent."""
    rows = []
    for error in refused:
        item = items[error.index]
        rows.append((request_id, operation, error.index, error.code, error.error_code,
                     error.message, "null" if item is None else json.dumps(dict(item)), now))
    db.executemany(
        "INSERT INTO rejections (request_id, operation, item_index, code, error_code, message, "
        "item, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
