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
import operator
import re
import sys
import zlib
from collections.abc import Callable, Collection, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from include.msads_emulator.currencies import CONVERSION_GOAL_REVENUE_CURRENCIES
from include.msads_emulator.errors import BatchError
from include.msads_emulator.timeutil import (
    DAY,
    HOUR,
    iso,
    parse_datetime,
    read_times,
)

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
    # ``identified`` by hashed email and by hashed phone, made on first use.
    _by_hash: tuple[dict[str, list[dict]], dict[str, list[dict]]] | None = field(
        default=None, init=False, repr=False)

    def click(self, click_id: str) -> dict | None:
        return self.clicks.get(click_id) or self.clicks.get(click_id.lower())

    def clicks_of(self, email: str | None, phone: str | None) -> list[dict]:
        """The identified clicks with this hashed email or phone (lower case; repeats allowed)."""
        if self._by_hash is None:
            self._by_hash = ({}, {})
            for click in self.identified:
                for column, index in zip(("hashed_email", "hashed_phone"), self._by_hash,
                                         strict=True):
                    if click[column] is not None:
                        index.setdefault(click[column], []).append(click)
        emails, phones = self._by_hash
        return (emails.get(email, []) if email is not None else []) + \
            (phones.get(phone, []) if phone is not None else [])


class Refused(Exception):
    """The item is refused with this BatchError code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# The text fields whose distinct values ``columns`` collects.
COLUMNS = ("ConversionTime", "MicrosoftClickId", "HashedEmailAddress", "HashedPhoneNumber",
           "ConversionCurrencyCode")


def columns(raw: list) -> dict[str, set[str]]:
    """The distinct texts of each of ``COLUMNS`` among the request's JSON items (what is not
    text there is left out: it faults the call before any rule)."""
    items = [item for item in raw if type(item) is dict]
    return {name: _column(items, name) for name in COLUMNS}


def _column(items: list[dict], name: str) -> set[str]:
    try:
        values = {item.get(name) for item in items}
    except TypeError:  # a value that cannot be hashed (a JSON array or object)
        values = {value for item in items if type(value := item.get(name)) is str}
    return {value for value in values if type(value) is str}


def lookups(found: dict[str, set[str]]) -> tuple[set[str], set[str], set[str]]:
    """What to look up for items with these ``columns``: the click ids (as sent and in lower
    case), and the hashed emails and phones (lower case). Only the hashes of items without a
    click id are matched against clicks; looking up those of the others too changes nothing."""
    ids: set[str] = set()
    for click_id in found["MicrosoftClickId"]:
        click_id = click_id.strip()
        if click_id:
            ids |= {click_id, click_id.lower()}
    return ids, *({h.strip().lower() for h in found[name] if h.strip()}
                  for name in ("HashedEmailAddress", "HashedPhoneNumber"))


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


def _identity(click_id: str | None, email: str | None, phone: str | None) -> str:
    """Who converted: the click, or (without one) the hashed email and phone."""
    if click_id:
        return f"click:{click_id.lower()}"
    return f"hash:{(email or '').lower()}:{(phone or '').lower()}"


def dedup_key(goal_id: int | str, identity: str, when_iso: str) -> str:
    """What makes a conversion a repeat of a stored one, and the original an adjustment is
    for: the goal, who converted and the conversion time (``iso``). No goal id or ISO time
    holds a ``|``, so a key tells all three apart (an identity may hold one: a hashed email or
    phone that is not a SHA-256 is stored as sent), and ``dedup_number`` reads them back."""
    return f"{goal_id}|{identity}|{when_iso}"


# A dedup key as a number, which the emulator finds stored conversions by (``StoredNumbers``).
# The number is the CRC-32 of the key's goal, identity and time in 16, 24 and 23 bits, in this
# order, so that the keys of one goal and identity share their first 40 bits
# (``identity_bits``); other keys with those bits are told apart by their columns. Two keys can
# have one number: a conversion whose key's number is taken is stored with none (NULL), and
# ``stored_keys`` compares the keys themselves, so a repeat is found exactly as by its key.
_GOAL_MASK, _IDENTITY_MASK, _TIME_BITS = 0xFFFF, 0xFFFFFF, 23
_TIME_MASK = (1 << _TIME_BITS) - 1


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def dedup_number(key: str) -> int:
    """``key`` (a ``dedup_key``) as a number of 63 bits (0 or more, as SQLite's INTEGER holds)."""
    goal, rest = key.split("|", 1)
    identity, when_iso = rest.rsplit("|", 1)
    return ((_crc(goal) & _GOAL_MASK) << 24 | _crc(identity) & _IDENTITY_MASK) << _TIME_BITS \
        | _crc(when_iso) & _TIME_MASK


def identity_bits(goal_id: int | str, identity: str) -> int:
    """What the ``dedup_number`` of every key of this goal and identity starts with (its
    first 40 bits, as a number)."""
    return (_crc(str(goal_id)) & _GOAL_MASK) << 24 | _crc(identity) & _IDENTITY_MASK


class StoredNumbers:
    """The ``dedup_number`` of every stored conversion, and which goals of which accounts have
    a conversion, in memory (``Store`` loads them when it opens its state, and keeps one per
    connection: ``db.numbers``).

    A UNIQUE index on conversions (dedup_number) did this before: its numbers are random, so
    each 1,000-item call wrote to up to 1,000 of its pages, and storing and committing them
    cost more the more conversions it held (10.0 µs of the emulator's CPU per conversion over
    its first 100 calls, 16.1 over calls 701-800: docs/performance.md). Here what a call costs
    hardly depends on how many are stored. What a transaction adds is taken back when it rolls
    back (``rollback``; ``Store.transaction`` calls it, and ``commit``).
    """

    def __init__(self) -> None:
        self.ids: dict[int, int] = {}  # dedup_number -> conversion id
        # the first 40 bits of a number (goal and identity) -> the ids with them: one id, or
        # a list when there are more
        self._same: dict[int, int | list[int]] = {}
        self._goals: set[tuple[int, int]] = set()  # (goal id, account id) with a conversion
        self._added: list[int] = []  # the numbers added since the last commit
        self._added_goals: list[tuple[int, int]] = []  # and the pairs new to _goals

    def clear(self) -> None:
        """Hold nothing (all conversions were deleted)."""
        for held in (self.ids, self._same, self._goals, self._added, self._added_goals):
            held.clear()

    def load(self, db: sqlite3.Connection) -> None:
        """Read them from the conversions table (anything held before is forgotten)."""
        self.clear()
        for rid, number, goal_id, account_id in db.execute(
                "SELECT id, dedup_number, goal_id, account_id FROM conversions ORDER BY id"):
            self.add_run(rid, [number], goal_id, account_id)
        self.commit()

    def add_run(self, first: int, numbers: list[int | None], goal_id: int,
                account_id: int) -> None:
        """Conversions ``first``, ``first + 1``, ... are stored with these numbers (None:
        none), all of one goal and account."""
        pair = (goal_id, account_id)
        if pair not in self._goals:
            self._goals.add(pair)
            self._added_goals.append(pair)
        ids, same, added = self.ids, self._same, self._added
        for rid, number in enumerate(numbers, first):
            if number is None:
                continue
            ids[number] = rid
            prefix = number >> _TIME_BITS
            held = same.get(prefix)
            if held is None:
                same[prefix] = rid
            elif held.__class__ is int:
                same[prefix] = [held, rid]
            else:
                held.append(rid)
            added.append(number)

    def same_identity(self, goal_id: int | str, identity: str) -> list[int]:
        """The ids of the numbered conversions whose number has this goal and identity's bits
        (other identities' may have them too)."""
        same = self._same.get(identity_bits(goal_id, identity))
        return [] if same is None else [same] if isinstance(same, int) else list(same)

    def has_goal(self, goal_id: int, account_id: int) -> bool:
        """Whether this account has a conversion stored for this goal."""
        return (goal_id, account_id) in self._goals

    def commit(self) -> None:
        self._added.clear()
        self._added_goals.clear()

    def rollback(self) -> None:
        """Forget what was added since the last ``commit``, the latest first."""
        ids, same = self.ids, self._same
        for number in reversed(self._added):
            del ids[number]
            prefix = number >> _TIME_BITS
            held = same[prefix]
            if held.__class__ is int:
                del same[prefix]
            else:
                held.pop()
                if len(held) == 1:
                    same[prefix] = held[0]
        self._goals.difference_update(self._added_goals)
        self.commit()


@dataclass
class _Head:
    name: str
    time: float
    goal: dict
    click_id: str | None
    email: str | None
    phone: str | None

    def identity(self) -> str:
        return _identity(self.click_id, self.email, self.phone)

    def dedup_key(self) -> str:
        return dedup_key(self.goal["id"], self.identity(), iso(self.time))


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


def _identity_reason(goal: dict, when: float, email: str | None, phone: str | None,
                     ctx: Context) -> str | None:
    """A conversion with hashed identifiers only: None (it counts) when one of its hashes is
    the identity of a click issued for this account, at or before the conversion and within
    the goal's window from it (as for a click id); OUTSIDE_WINDOW when such clicks are all
    too early; else NO_MATCHING_CLICK (a click after the conversion does not match)."""
    return _clicks_reason([click["click_time"] for click in ctx.clicks_of(
        email.lower() if email else None, phone.lower() if phone else None)
        if click["account_id"] == ctx.account["id"]], when, goal["window_minutes"] * 60.0)


def _clicks_reason(click_times: Iterable[float], when: float, window: float) -> str | None:
    """``_identity_reason`` for the times of the account's clicks with the conversion's
    hashes (in any order, repeats allowed), and the goal's window in seconds."""
    reason = NO_MATCHING_CLICK
    for click_time in click_times:
        if click_time > when:
            continue
        if when - click_time <= window:
            return None
        reason = OUTSIDE_WINDOW
    return reason


# Microsoft's per-item rules in the order the first one wins (docs/emulator.md).
def check_conversion(item: Item, ctx: Context, index: int = 0) -> int | tuple:
    """One OfflineConversion (at ``index`` in its request): a BatchError code, or the
    accepted conversion as a tuple of ``ACCEPTED`` whose ``not_counted_reason`` says why it
    will not count (None: it counts, unless a ``Unique`` goal already has an earlier
    conversion of the same click or person)."""
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
    return _accepted(ctx, index, goal, head.name, head.time, iso(head.time), head.click_id,
                     head.email, head.phone, click, value, currency, external, credit,
                     item.get("ExternalAttributionModel"),
                     head.email is None or bool(HEX64.fullmatch(head.email)),
                     head.phone is None or bool(HEX64.fullmatch(head.phone)))


# An accepted conversion: a tuple of these, in this order (record_conversions stores it).
ACCEPTED = ("item_index", "account_id", "customer_id", "goal_id", "conversion_name",
            "conversion_time", "click_id", "hashed_email", "hashed_phone", "value", "currency",
            "external_attribution_credit", "external_attribution_model", "identity",
            "dedup_key", "not_counted_reason", "count_type", "dedup_number")
(_INDEX, _ACCOUNT, _CUSTOMER, _GOAL, _NAME, _TIME, _CLICK, _EMAIL, _PHONE, _VALUE, _CURRENCY,
 _CREDIT, _MODEL, _IDENTITY, _KEY, _REASON, _COUNT_TYPE, _NUMBER) = range(len(ACCEPTED))


def _accepted(ctx: Context, index: int, goal: dict, name: str, when: float, when_iso: str,
              click_id: str | None, email: str | None, phone: str | None, click: dict | None,
              value: float | None, currency: str | None, external: str | None,
              credit: float | None, model: str | None, email_hashed: bool,
              phone_hashed: bool) -> tuple:
    """A conversion that passed the rules, with the reason it will not count (first wins).
    ``email_hashed``, ``phone_hashed``: the hashed email, phone is absent or a SHA-256 as
    hexadecimal (HEX64)."""
    reason = None
    if goal["status"] != "Active":
        reason = GOAL_INACTIVE
    elif not email_hashed:
        reason = EMAIL_NOT_HASHED
    elif not phone_hashed:
        reason = PHONE_NOT_HASHED
    elif click_id is None and not goal["enhanced_conversions"]:
        reason = NOT_ENHANCED
    elif external is not None:
        reason = external
    elif click_id is not None:
        if click is None:
            reason = NO_MATCHING_CLICK
        elif click["account_id"] != ctx.account["id"]:
            reason = ACCOUNT_MISMATCH
        elif when - click["click_time"] > goal["window_minutes"] * 60.0:
            reason = OUTSIDE_WINDOW
    else:
        reason = _identity_reason(goal, when, email, phone, ctx)
    identity = _identity(click_id, email, phone)
    key = dedup_key(goal["id"], identity, when_iso)
    return (index, ctx.account["id"], ctx.account["customer_id"], goal["id"], name, when,
            click_id, email, phone, value, currency, credit, model, identity, key, reason,
            goal["count_type"], dedup_number(key))


def _goal_facts(goal: dict) -> tuple:
    """What ``Conversions.plain`` reads of a goal, as a tuple: the goal, its id, its window in
    seconds, its count type; whether an item of it without external attribution fields
    passes ``_accepted``'s reasons before the hashes' and the click's (the goal is active
    and external attribution gives no reason); whether it takes enhanced conversions; what
    ``_external_reason`` gives for such an item; and the goal's bits of a ``dedup_number``."""
    external = _external_reason(_NO_EXTERNAL, goal)
    return (goal, goal["id"], goal["window_minutes"] * 60.0, goal["count_type"],
            goal["status"] == "Active" and external[0] is None,
            bool(goal["enhanced_conversions"]), external,
            (_crc(str(goal["id"])) & _GOAL_MASK) << 24)


class Conversions:
    """All the OfflineConversions of one call, as ``check_conversion`` answers for each, with
    less work for the common item: a JSON object whose fields have their declared JSON types,
    whose goal takes conversions (it exists, has a name and is past its quiet period), with a
    well-formed time within the last 90 days, an identifier, a click id of the shape Microsoft
    issues (not before its click), a value and currency that pass, and no external
    attribution fields. ``plain`` takes such an item as sent and gives what
    ``check_conversion`` gives for it; any other item (None from ``plain``) is read by
    ``rest.ItemShape`` (which may fault the call) and checked by ``check_conversion``, so the
    rules and their order live there alone. Of the reasons not to count, ``plain`` works
    out those after the goal's and the hashes' itself, as ``_accepted`` does
    (tests/emulator/test_fast_path.py holds it to that): a call's click ids and hashes are
    looked up once each, not once per item.

    The texts are worked out once per distinct text, column by column, and a column whose
    texts all have the common shape is checked in one go (``read_times``, ``_all_hex``) rather
    than by a regex call per text: ``times``, ``click_ids``, ``hashes`` and ``currencies`` map
    the texts as sent that pass to what the rules read."""

    def __init__(self, ctx: Context, found: dict[str, set[str]]) -> None:
        self.ctx = ctx
        account_id = ctx.account["id"]
        self.account = (account_id, ctx.account["customer_id"])
        self.max_value = min(ctx.max_value, sys.float_info.max)
        # goal name -> _goal_facts; 5605, 5606 and 5615 cannot apply to an item naming one
        self.goals = {name: _goal_facts(goal) for name, goal in ctx.goals.items()
                      if name.strip() and ctx.now - goal["created_at"] >= GOAL_QUIET_PERIOD}
        # ``found``: the ``columns`` of the items.
        # ConversionTime text -> (epoch, ISO); 5607, 5608, 5614 and 5609 cannot apply
        self.times = self._times(found["ConversionTime"])
        ids = found["MicrosoftClickId"]
        whole = _all_hex(ids, 32)  # then none has spaces to strip
        # MicrosoftClickId as sent -> _click_facts of it as read (5604 cannot apply)
        self.click_ids = self._click_facts(
            {raw_id: raw_id if whole else raw_id.strip() for raw_id in ids
             if whole or CLICK_ID.fullmatch(raw_id.strip())})
        hashes = found["HashedEmailAddress"] | found["HashedPhoneNumber"]
        whole = _all_hex(hashes, 64)
        # a hashed email or phone as sent and not blank -> (as read, whether it is a SHA-256,
        # in lower case)
        self.hashes = {h: (h, True, h.lower()) if whole else
                       (h.strip(), bool(HEX64.fullmatch(h.strip())), h.strip().lower())
                       for h in hashes if whole or h.strip()}
        self._by_hash: tuple[dict[str, list[float]], dict[str, list[float]]] | None = None
        # ConversionCurrencyCode as sent -> as read (5611 cannot apply)
        self.currencies = {c: c.strip() for c in found["ConversionCurrencyCode"]
                           if c.strip() in CONVERSION_GOAL_REVENUE_CURRENCIES}

    def _times(self, texts: set[str]) -> dict[str, tuple[float, str, int]]:
        """(epoch, ``iso``, its bits of a ``dedup_number``) by text."""
        now = self.ctx.now
        # a text read_times leaves out: 5607 (or an hour 24, which check_conversion reads)
        return {text: (when, when_iso, _crc(when_iso) & _TIME_MASK)
                for text, (when, when_iso) in read_times(texts).items()
                if when <= now and now - when <= LOOKBACK}  # else 5614 or 5609

    def _click_facts(self, read: dict[str, str]
                     ) -> dict[str, tuple[str, str, float | None, str | None, int]]:
        """For click ids as sent and as read: (the click id as read, its ``_identity``, the
        time of its click when that is this account's, else None and why a conversion of it
        will not count, the identity's bits of a ``dedup_number``), by click id as sent."""
        facts = {}
        click_of, account_id = self.ctx.click, self.account[0]
        for raw_id, click_id in read.items():
            click = click_of(click_id)
            if click is None:
                own, reason = None, NO_MATCHING_CLICK
            elif click["account_id"] != account_id:
                own, reason = None, ACCOUNT_MISMATCH
            else:
                own, reason = click["click_time"], None
            identity = _identity(click_id, None, None)
            facts[raw_id] = (click_id, identity, own, reason, _crc(identity) & _IDENTITY_MASK)
        return facts

    def _hash_clicks(self) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """The times of this account's identified clicks (``Context.identified``) by hashed
        email and by hashed phone, as ``_identity_reason`` finds them; made on first use."""
        if self._by_hash is None:
            emails: dict[str, list[float]] = {}
            phones: dict[str, list[float]] = {}
            account_id = self.account[0]
            for click in self.ctx.identified:
                if click["account_id"] == account_id:
                    email, phone = click["hashed_email"], click["hashed_phone"]
                    if email is not None:
                        emails.setdefault(email, []).append(click["click_time"])
                    if phone is not None:
                        phones.setdefault(phone, []).append(click["click_time"])
            self._by_hash = emails, phones
        return self._by_hash

    # One pass over the item without calls for what passes: the loop over a call's items is
    # the emulator's busiest code (each refusal returns None, so check_conversion decides).
    def plain(self, item: object, index: int) -> tuple | None:  # noqa: C901
        """The accepted conversion for a common item, or None: ``check_conversion`` decides."""
        if type(item) is not dict:
            return None
        get = item.get
        name, text = get("ConversionName"), get("ConversionTime")
        if type(name) is not str or type(text) is not str:
            return None
        facts = self.goals.get(name)
        read = self.times.get(text)
        if facts is None or read is None:
            return None
        click_id, email, phone = (get("MicrosoftClickId"), get("HashedEmailAddress"),
                                  get("HashedPhoneNumber"))
        email_hashed = phone_hashed = True
        email_low = phone_low = ""
        if email is not None:
            if type(email) is not str or email not in self.hashes:
                return None
            email, email_hashed, email_low = self.hashes[email]
        if phone is not None:
            if type(phone) is not str or phone not in self.hashes:
                return None
            phone, phone_hashed, phone_low = self.hashes[phone]
        when = read[0]
        if click_id is not None:
            if type(click_id) is not str or click_id not in self.click_ids:
                return None  # 5604, or a blank one
            click_id, identity, click_time, reason, identity_bits = self.click_ids[click_id]
            if click_time is not None and when < click_time:
                return None  # 5616
        elif email is None and phone is None:
            return None  # 5603
        value, currency = get("ConversionValue"), get("ConversionCurrencyCode")
        if value is not None:
            # 5610; a whole number compares exactly, so it cannot pass here and fail as float
            if (type(value) is not float and type(value) is not int) \
                    or not 0 <= value <= self.max_value:
                return None
            value = float(value)
        if currency is not None:
            if type(currency) is not str or currency not in self.currencies:
                return None  # 5611
            currency = self.currencies[currency]
        if get("ExternalAttributionCredit") is not None \
                or get("ExternalAttributionModel") is not None:
            return None
        goal, goal_id, window, count_type, first_pass, enhanced, external, goal_bits = facts
        if not (first_pass and email_hashed and phone_hashed) \
                or (click_id is None and not enhanced):
            # a reason before the click's or the hashes' (_accepted, in its order)
            return _accepted(self.ctx, index, goal, name, when, read[1], click_id, email, phone,
                             self.ctx.click(click_id) if click_id is not None else None,
                             value, currency, *external, None, email_hashed, phone_hashed)
        # what _accepted gives after its first reasons, as it gives it (and dedup_key's text,
        # and dedup_number's number from the bits of its parts)
        if click_id is not None:
            if click_time is not None and when - click_time > window:
                reason = OUTSIDE_WINDOW
        else:
            identity = f"hash:{email_low}:{phone_low}"
            identity_bits = _crc(identity) & _IDENTITY_MASK
            emails, phones = self._by_hash or self._hash_clicks()
            # no click is stored with a blank hash ("": the item has none)
            reason = _clicks_reason((emails.get(email_low) or []) + (phones.get(phone_low) or []),
                                    when, window)
        account_id, customer_id = self.account
        return (index, account_id, customer_id, goal_id, name, when, click_id, email, phone,
                value, currency, None, None, identity, f"{goal_id}|{identity}|{read[1]}",
                reason, count_type, (goal_bits | identity_bits) << _TIME_BITS | read[2])

    def check(self, raw: list, read: Callable[[object, int], Item], forced: Container[int]
              ) -> tuple[dict[int, Item], list[tuple[int, int | tuple]]]:
        """(the items read by ``read``, by index; each item's verdict not in ``forced``: a
        BatchError code or the accepted conversion). A forced item is read, not checked."""
        texts: dict[int, Item] = {}
        verdicts: list[tuple[int, int | tuple]] = []
        plain = self.plain
        for index, item in enumerate(raw):
            accepted = plain(item, index) if index not in forced else None
            if accepted is not None:
                verdicts.append((index, accepted))
                continue
            texts[index] = read(item, index)
            if index not in forced:
                verdicts.append((index, check_conversion(texts[index], self.ctx, index)))
        return texts, verdicts


def _all_hex(texts: Collection[str], width: int) -> bool:
    """Whether every text is ``width`` (even) hexadecimal digits, as CLICK_ID and HEX64 ask:
    checked for all at once. ``bytes.fromhex`` refuses any other character but the spaces it
    skips, and a text with a space would leave fewer bytes than half its length."""
    joined = "".join(texts)
    if not texts or not joined.isascii() or set(map(len, texts)) != {width}:
        return False
    try:
        return len(bytes.fromhex(joined)) * 2 == len(joined)
    except ValueError:
        return False


_NO_EXTERNAL: dict[str, str | None] = {}  # an item without external attribution fields


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
    wanted = set(keys)
    return stored_keys(db, wanted, {dedup_number(key) for key in wanted})[0]


def stored_keys(db: sqlite3.Connection, keys: Collection[str], numbers: Iterable[int]
                ) -> tuple[dict[str, int], set[int]]:
    """(conversion ids by dedup key, for the keys already stored; those of the ``numbers``,
    the keys' ``dedup_number``, that stored conversions have, under these keys or others)."""
    wanted = keys if isinstance(keys, set | frozenset | dict) else set(keys)
    found: dict[str, int] = {}
    stored = db.numbers.ids
    taken = {number for number in numbers if number in stored}
    ids = sorted(stored[number] for number in taken)
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for key, rid in db.execute(f"SELECT dedup_key, id FROM conversions WHERE id IN "
                                   f"({', '.join('?' * len(chunk))})", chunk):
            if key in wanted:
                found[key] = rid
    if wanted:
        found.update(_unnumbered(db, wanted))
    return found, taken


def _unnumbered(db: sqlite3.Connection, keys: Container[str]) -> dict[str, int]:
    """Conversion ids by dedup key, of the conversions stored without a number with one of
    these keys (there are none unless two keys had one number; the partial index
    conversions_unnumbered finds them)."""
    return {key: rid for key, rid in db.execute(
        "SELECT dedup_key, id FROM conversions WHERE dedup_number IS NULL") if key in keys}


# The conversions of one goal and identity that count or would (``_recount_unique``), of
# those with these ids (a JSON array: ``StoredNumbers.same_identity``) or without a number.
SAME_IDENTITY = ("SELECT id FROM conversions WHERE "
                 "(id IN (SELECT value FROM json_each(?)) OR dedup_number IS NULL) "
                 "AND goal_id = ? AND identity = ? "
                 "AND (not_counted_reason IS NULL OR not_counted_reason = ?) "
                 "ORDER BY conversion_time, id")


def _recount_unique(db: sqlite3.Connection, goal_id: int, identity: str) -> None:
    """``Unique``: of the conversions of one click (or person) that would count, only the one
    with the earliest conversion time does, whatever order they arrived in. They are found
    by their numbers: the numbers of this goal and identity's keys share their first bits
    (``StoredNumbers.same_identity``), as other identities' may, hence ``identity = ?``; and
    those stored without a number."""
    ids = json.dumps(db.numbers.same_identity(goal_id, identity))
    rows = db.execute(SAME_IDENTITY, (ids, goal_id, identity, NOT_FIRST)).fetchall()
    for n, row in enumerate(rows):
        db.execute("UPDATE conversions SET counted = ?, not_counted_reason = ? WHERE id = ?",
                   (1, None, row[0]) if n == 0 else (0, NOT_FIRST, row[0]))


def record_conversions(db: sqlite3.Connection, accepted: list[tuple], request_id: int,
                       now: float) -> None:
    """Store accepted conversions (tuples of ``ACCEPTED``); a repeat of a stored one (same
    goal, conversion time and click or hashed identity) is kept under duplicates."""
    numbers = [c[_NUMBER] for c in accepted]
    stored = db.numbers.ids
    if accepted and len(set(numbers)) == len(accepted) and not any(
            c[_REASON] is None and c[_COUNT_TYPE] == "Unique" for c in accepted) \
            and not any(number in stored for number in numbers) \
            and not _unnumbered(db, {c[_KEY] for c in accepted}):
        # Nothing repeats within the request (no two keys, nor numbers, alike), no number is
        # stored, nothing is recounted and no key is stored without a number: one INSERT.
        _insert_conversions(db, accepted, numbers, request_id, now)
        return
    number_of = dict(zip((c[_KEY] for c in accepted), numbers, strict=True))
    existing, taken = stored_keys(db, number_of, numbers)
    fresh = [c for c in accepted if c[_KEY] not in existing]
    if len({c[_KEY] for c in fresh}) == len(fresh) and not any(
            c[_REASON] is None and c[_COUNT_TYPE] == "Unique" for c in fresh):
        # nothing repeats within the request and nothing is recounted: one INSERT for all
        _insert_conversions(db, fresh, [_claim(number_of[c[_KEY]], taken) for c in fresh],
                            request_id, now)
        accepted = [c for c in accepted if c[_KEY] in existing]
    duplicates = []  # stored at the end, in one statement (their originals are known here)
    for c in accepted:
        original = existing.get(c[_KEY])
        if original is not None:
            duplicates.append(
                (request_id, c[_INDEX], original, c[_ACCOUNT], c[_GOAL], c[_NAME], c[_TIME],
                 c[_CLICK], c[_EMAIL], c[_PHONE], c[_VALUE], c[_CURRENCY], c[_KEY], now))
            continue
        reason = c[_REASON]
        number = _claim(number_of[c[_KEY]], taken)
        cur = db.execute(
            "INSERT INTO conversions (request_id, item_index, account_id, customer_id, "
            "goal_id, conversion_name, conversion_time, click_id, hashed_email, hashed_phone, "
            "value, currency, external_attribution_credit, external_attribution_model, "
            "identity, dedup_key, counted, not_counted_reason, received_at, dedup_number) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (request_id, *c[_INDEX:_REASON], int(reason is None), reason, now, number))
        existing[c[_KEY]] = cur.lastrowid
        db.numbers.add_run(cur.lastrowid, [number], c[_GOAL], c[_ACCOUNT])
        if reason is None and c[_COUNT_TYPE] == "Unique":
            _recount_unique(db, c[_GOAL], c[_IDENTITY])
    db.executemany(
        "INSERT INTO duplicates (request_id, item_index, original_id, account_id, goal_id, "
        "conversion_name, conversion_time, click_id, hashed_email, hashed_phone, value, "
        "currency, dedup_key, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        duplicates)


def _claim(number: int, taken: set[int]) -> int | None:
    """``number`` for a conversion about to be stored, and now taken; None when it was."""
    if number in taken:
        return None
    taken.add(number)
    return number


# sqlite3 binds None through its adapter lookup (a failed attribute lookup each time), several
# times slower than a number or text, so the many-row INSERT binds these instead: NULLIF makes
# 0 in a TEXT column NULL again (a bound text never equals a number), and SQLite binds a NaN
# as NULL (a REAL column here never holds a NaN: such values are refused or read as absent;
# nor does dedup_number).
_NULL_TEXT = 0
_NULL_REAL = math.nan


_COLUMNS = ("request_id, item_index, account_id, customer_id, goal_id, conversion_name, "
            "conversion_time, click_id, hashed_email, hashed_phone, value, currency, "
            "external_attribution_credit, external_attribution_model, identity, dedup_key, "
            "counted, not_counted_reason, received_at, dedup_number")
# What every row of a call usually shares (``_shared``): account, customer, goal, name and
# currency, and no external attribution.
_SHARED = operator.itemgetter(_ACCOUNT, _CUSTOMER, _GOAL, _NAME, _CURRENCY, _CREDIT, _MODEL)


def _insert_conversions(db: sqlite3.Connection, rows: list[tuple], numbers: list[int | None],
                        request_id: int, now: float) -> None:
    """Insert these conversions with these ``dedup_number`` (None: none), and add them to
    ``db.numbers``. They get the ids after the largest stored (SQLite gives a row without
    one the largest rowid plus one), in the order given."""
    if not rows:
        return
    first = db.execute("SELECT coalesce(max(id), 0) + 1 FROM conversions").fetchone()[0]
    t, r = _NULL_TEXT, _NULL_REAL
    shared = _shared(rows)
    if shared is not None:
        # Binding a value costs more than reading it from the statement (a text most): what
        # all rows share is written into it (one statement per goal and currency, cached),
        # and counted is worked out from the reason.
        head, currency = shared
        db.executemany(
            f"INSERT INTO conversions ({_COLUMNS}) VALUES (?1, ?2, {head}, ?3, "
            f"NULLIF(?4, {t}), NULLIF(?5, {t}), NULLIF(?6, {t}), ?7, {currency}, NULL, NULL, "
            f"?8, ?9, ?10 = {t}, NULLIF(?10, {t}), ?11, ?12)",
            [(request_id, index, when, t if click is None else click,
              t if email is None else email, t if phone is None else phone,
              r if value is None else value, identity, key, t if reason is None else reason,
              now, r if number is None else number)
             for (index, _, _, _, _, when, click, email, phone, value, _, _, _, identity, key,
                  reason, _, _), number in zip(rows, numbers, strict=True)])
        db.numbers.add_run(first, numbers, rows[0][_GOAL], rows[0][_ACCOUNT])
        return
    db.executemany(
        f"INSERT INTO conversions ({_COLUMNS}) VALUES "
        f"(?, ?, ?, ?, ?, ?, ?, NULLIF(?, {t}), NULLIF(?, {t}), NULLIF(?, {t}), ?, "
        f"NULLIF(?, {t}), ?, NULLIF(?, {t}), ?, ?, ?, NULLIF(?, {t}), ?, ?)",
        [(request_id, index, account, customer, goal, name, when,
          t if click is None else click, t if email is None else email,
          t if phone is None else phone, r if value is None else value,
          t if currency is None else currency, r if credit is None else credit,
          t if model is None else model, identity, key, int(reason is None),
          t if reason is None else reason, now, r if number is None else number)
         for (index, account, customer, goal, name, when, click, email, phone, value, currency,
              credit, model, identity, key, reason, _, _), number in zip(rows, numbers,
                                                                           strict=True)])
    for rid, (row, number) in enumerate(zip(rows, numbers, strict=True), first):
        db.numbers.add_run(rid, [number], row[_GOAL], row[_ACCOUNT])


def _shared(rows: list[tuple]) -> tuple[str, str] | None:
    """When all rows have the same account, customer and goal ids (integers), conversion
    name and currency (text SQL can hold as written, or none) and no external attribution:
    (the ids and the name as SQL, the currency as SQL). Else None."""
    shared = set(map(_SHARED, rows))
    if len(shared) != 1:
        return None
    [(account, customer, goal, name, currency, credit, model)] = shared
    name_sql = _sql_text(name)
    currency_sql = "NULL" if currency is None else _sql_text(currency)
    if type(account) is not int or type(customer) is not int or type(goal) is not int \
            or name_sql is None or currency_sql is None or credit is not None \
            or model is not None:
        return None
    return f"{account}, {customer}, {goal}, {name_sql}", currency_sql


def _sql_text(text: object) -> str | None:
    """A text as an SQL literal SQLite reads back as it is, or None (not a str, or one
    holding a NUL or what UTF-8 cannot encode)."""
    if type(text) is not str or "\0" in text:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return "'" + text.replace("'", "''") + "'"


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


def record_rejections(db: sqlite3.Connection, operation: str, items: Mapping[int, Item],
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
