"""The common OfflineConversion is checked by a shortcut (offline.Conversions.plain, with the
request's texts checked column by column) and stored by one INSERT; these tests hold both to
what the item-by-item rules (rest.ItemShape and offline.check_conversion) and the row-by-row
INSERT give, for a mix of good and bad items."""

from __future__ import annotations

import calendar
import math
from datetime import UTC, datetime, timedelta

import pytest

from include.msads_emulator import errors, offline, rest
from include.msads_emulator.store import Store
from include.msads_emulator.timeutil import (
    HOUR,
    all_plain,
    iso,
    parse_datetime,
    parse_datetime_iso,
    read_times,
)

NOW = 1_796_300_000.0  # the emulator's clock in these tests (epoch seconds)
SHA = "ab" * 32
CLICK = "0123456789abcdef0123456789ABCDEF"
PHONE = "cd" * 32  # the hashed phone of a click of the account
OTHER = "ef" * 32  # the hashed email of another account's click


def _goal(gid: int, name: str, **changes) -> dict:
    return {"id": gid, "name": name, "created_at": NOW - 86400, "status": "Active",
            "count_type": "All", "enhanced_conversions": 1, "externally_attributed": 0,
            "window_minutes": 43200, **changes}


def _context() -> offline.Context:
    goals = [_goal(1, "Purchase"), _goal(2, "New", created_at=NOW - HOUR),
             _goal(3, "Paused", status="Paused"), _goal(4, "External", externally_attributed=1),
             _goal(5, "Plain", enhanced_conversions=0), _goal(6, "Short", window_minutes=30)]
    clicks = {c["click_id"]: c for c in (
        {"click_id": CLICK, "account_id": 7, "click_time": NOW - 3 * HOUR},
        {"click_id": "f" * 32, "account_id": 8, "click_time": NOW - 3 * HOUR},
        {"click_id": "e" * 32, "account_id": 7, "click_time": NOW - HOUR / 2})}
    identified = [{"click_id": "d" * 32, "account_id": 7, "click_time": NOW - 2 * HOUR,
                   "hashed_email": SHA, "hashed_phone": None},
                  {"click_id": "b" * 32, "account_id": 7, "click_time": NOW - 5 * HOUR,
                   "hashed_email": None, "hashed_phone": PHONE},
                  {"click_id": "a" * 32, "account_id": 8, "click_time": NOW - 2 * HOUR,
                   "hashed_email": OTHER, "hashed_phone": None}]
    return offline.Context(account={"id": 7, "customer_id": 9}, goals={g["name"]: g for g in goals},
                           clicks=clicks, now=NOW, max_value=1e9, identified=identified)


def _at(seconds_ago: float, zone: str = "+00:00") -> str:
    return (iso(NOW - seconds_ago) or "").removesuffix("Z") + zone


GOOD = {"ConversionName": "Purchase", "ConversionTime": _at(HOUR), "MicrosoftClickId": CLICK}
# Common items without a click id: each counts or has the reason its hashes give.
HASHED = [
    {"ConversionName": "Short", "ConversionTime": _at(HOUR), "HashedEmailAddress": SHA},
    {"ConversionName": "Purchase", "ConversionTime": _at(HOUR), "HashedPhoneNumber": PHONE},
    {"ConversionName": "Short", "ConversionTime": _at(HOUR), "HashedPhoneNumber": PHONE},
    {"ConversionName": "Short", "ConversionTime": _at(HOUR), "HashedEmailAddress": SHA,
     "HashedPhoneNumber": PHONE.upper()},
    {"ConversionName": "Purchase", "ConversionTime": _at(6 * HOUR), "HashedEmailAddress": SHA,
     "HashedPhoneNumber": PHONE},
    {"ConversionName": "Purchase", "ConversionTime": _at(HOUR), "HashedEmailAddress": OTHER},
    {"ConversionName": "Purchase", "ConversionTime": _at(HOUR), "HashedEmailAddress": PHONE},
    {"ConversionName": "Short", "ConversionTime": _at(HOUR + 1800), "HashedEmailAddress": SHA},
    {"ConversionName": "Short", "ConversionTime": _at(HOUR + 1799), "HashedEmailAddress": SHA},
]
MIX = [
    GOOD,
    {**GOOD, "ConversionValue": 12.5, "ConversionCurrencyCode": " EUR "},
    {**GOOD, "ConversionValue": 7, "ConversionCurrencyCode": "USD"},
    {**GOOD, "ConversionValue": -0.0},
    {**GOOD, "ConversionTime": _at(HOUR, "Z")},
    {**GOOD, "ConversionTime": _at(HOUR, "")},
    {**GOOD, "ConversionTime": _at(HOUR, "+02:00")},
    {**GOOD, "ConversionTime": _at(HOUR + 0.25, "Z")},
    {**GOOD, "ConversionTime": " " + _at(HOUR)},
    {**GOOD, "ConversionTime": _at(24 * HOUR)[:11] + "24:00:00Z"},  # no hour 24
    {**GOOD, "ConversionTime": _at(24 * HOUR)[:5] + "02-30T10:00:00Z"},  # no 30 February
    {**GOOD, "ConversionTime": _at(24 * HOUR)[:11] + "10:61:00Z"},  # no minute 61
    {**GOOD, "ConversionTime": "yesterday"},
    {**GOOD, "ConversionTime": ""},
    {**GOOD, "ConversionTime": _at(-60)},
    {**GOOD, "ConversionTime": _at(91 * 86400)},
    {**GOOD, "ConversionTime": _at(4 * HOUR)},  # before its click
    {**GOOD, "ConversionName": "No such goal"},
    {**GOOD, "ConversionName": "  "},
    {**GOOD, "ConversionName": "New"},
    {**GOOD, "ConversionName": "Paused"},
    {**GOOD, "ConversionName": "External"},
    {**GOOD, "ConversionName": "External", "ExternalAttributionCredit": 0.5,
     "ExternalAttributionModel": "Linear"},
    {**GOOD, "ExternalAttributionCredit": 2.0},
    {**GOOD, "ExternalAttributionModel": " "},
    {**GOOD, "ConversionName": "Short"},
    {**GOOD, "ConversionName": "Short", "ConversionTime": _at(3 * HOUR - 1800)},  # the window
    {**GOOD, "ConversionName": "Short", "ConversionTime": _at(3 * HOUR - 1801)},  # past it
    {**GOOD, "MicrosoftClickId": " " + CLICK + " "},
    {**GOOD, "MicrosoftClickId": CLICK.lower()},
    {**GOOD, "MicrosoftClickId": "not-a-click-id"},
    {**GOOD, "MicrosoftClickId": "0x" + "ab" * 15},
    {**GOOD, "MicrosoftClickId": "ab" * 15 + " a"},
    {**GOOD, "MicrosoftClickId": "f" * 32},  # another account's click
    {**GOOD, "MicrosoftClickId": "e" * 32},  # a click after the conversion
    {**GOOD, "MicrosoftClickId": "c" * 32},  # a click never issued
    {**GOOD, "MicrosoftClickId": "   "},
    {**GOOD, "MicrosoftClickId": "   ", "HashedEmailAddress": SHA},
    {**GOOD, "MicrosoftClickId": None, "HashedEmailAddress": SHA},
    {**GOOD, "MicrosoftClickId": None, "HashedEmailAddress": SHA.upper() + " "},
    {**GOOD, "MicrosoftClickId": None, "HashedPhoneNumber": SHA},
    {**GOOD, "MicrosoftClickId": None, "HashedEmailAddress": "someone@example.com"},
    {**GOOD, "HashedPhoneNumber": "+1 555 0100"},
    {**GOOD, "MicrosoftClickId": None, "ConversionName": "Plain", "HashedEmailAddress": SHA},
    *HASHED,
    {**GOOD, "MicrosoftClickId": None, "HashedEmailAddress": SHA,
     "ConversionTime": _at(3 * HOUR)},
    {**GOOD, "MicrosoftClickId": None},
    {**GOOD, "ConversionValue": 1e10},
    {**GOOD, "ConversionValue": 10**400},
    {**GOOD, "ConversionValue": -1},
    {**GOOD, "ConversionCurrencyCode": "XXX"},
    {**GOOD, "ConversionCurrencyCode": ""},
    {**GOOD, "Unknown": [1, 2]},
    None,
]


def _full(raw: list, ctx: offline.Context) -> list:
    read = rest.OFFLINE_CONVERSION.read
    return [(i, offline.check_conversion(read(item, i), ctx, i)) for i, item in enumerate(raw)]


def _fast(raw: list, ctx: offline.Context) -> list:
    return offline.Conversions(ctx, offline.columns(raw)).check(
        raw, rest.OFFLINE_CONVERSION.read, {})[1]


@pytest.mark.parametrize("mix", [MIX, [GOOD] * 3, [m for m in MIX if m and "Value" not in str(m)]])
def test_the_shortcut_gives_what_the_rules_give_item_by_item(mix):
    ctx = _context()
    assert _fast(mix, ctx) == _full(mix, _context())
    plain = offline.Conversions(ctx, offline.columns(mix))
    assert plain.plain(GOOD, 0) is not None  # the shortcut took the common item


def test_the_shortcut_takes_common_items_without_a_click_id():
    ctx = _context()
    plain = offline.Conversions(ctx, offline.columns(HASHED))
    fast = [plain.plain(item, i) for i, item in enumerate(HASHED)]
    assert [(i, verdict) for i, verdict in enumerate(fast)] == _full(HASHED, _context())
    reason = offline.ACCEPTED.index("not_counted_reason")
    assert [verdict[reason] for verdict in fast] == [
        offline.OUTSIDE_WINDOW, None, offline.OUTSIDE_WINDOW, offline.OUTSIDE_WINDOW,
        offline.NO_MATCHING_CLICK, offline.NO_MATCHING_CLICK, offline.NO_MATCHING_CLICK, None,
        offline.OUTSIDE_WINDOW]


def test_a_refused_item_gives_the_same_codes_in_the_same_order():
    codes = [verdict for _, verdict in _fast(MIX, _context()) if isinstance(verdict, int)]
    assert codes == [v for _, v in _full(MIX, _context()) if isinstance(v, int)]
    assert {5602, 5603, 5604, 5605, 5606, 5607, 5608, 5609, 5610, 5611, 5614, 5615,
            5616} <= set(codes)


@pytest.mark.parametrize("bad", [{**GOOD, "ConversionValue": "12"}, {**GOOD, "ConversionName": 5},
                                 {**GOOD, "HashedEmailAddress": ["x"]}, [GOOD], True,
                                 {**GOOD, "ConversionValue": True}])
def test_an_unreadable_item_faults_the_call_as_before(bad):
    raw = [GOOD, bad, {**GOOD, "MicrosoftClickId": 1}]
    with pytest.raises(errors.Fault) as fast:
        _fast(raw, _context())
    with pytest.raises(errors.Fault) as full:
        _full(raw, _context())
    assert str(fast.value) == str(full.value)
    assert fast.value.as_json("t") == full.value.as_json("t")


def _stored_both_ways(accepted: list[tuple]) -> list[list[tuple]]:
    """The conversions (every column and its type) that one INSERT stores, and that the
    row-by-row INSERT stores (forced by a repeat within the request)."""
    columns = ("item_index, account_id, customer_id, goal_id, conversion_name, conversion_time, "
               "click_id, hashed_email, hashed_phone, value, currency, "
               "external_attribution_credit, external_attribution_model, identity, dedup_key, "
               "counted, not_counted_reason, request_id, received_at, dedup_number")
    stored = []
    for one_by_one in (False, True):
        store = Store()
        with store.transaction() as db:
            if one_by_one:  # a repeat within the request: each row is inserted on its own
                offline.record_conversions(db, [*accepted, accepted[0]], 3, NOW)
            else:
                offline.record_conversions(db, accepted, 3, NOW)
        rows = store.db.execute(
            f"SELECT {columns}, " + ", ".join(f"typeof({c})" for c in columns.split(", "))
            + " FROM conversions ORDER BY id").fetchall()
        stored.append([tuple(r) for r in rows])
        if one_by_one:
            assert len(store.query("SELECT * FROM duplicates")) == 1
    assert len(stored[0]) == len(accepted)
    assert not any(isinstance(v, float) and math.isnan(v) for row in stored[0] for v in row)
    return stored


def test_one_insert_stores_what_the_row_by_row_insert_stores():
    mix = [{**m, "ConversionTime": _at(2 * HOUR + i)}
           if m and m["ConversionTime"] == GOOD["ConversionTime"] else m
           for i, m in enumerate(MIX)]  # each accepted one its own dedup key
    key = offline.ACCEPTED.index("dedup_key")
    accepted = list({verdict[key]: verdict for _, verdict in reversed(_fast(mix, _context()))
                     if not isinstance(verdict, int)}.values())[::-1]
    assert len(accepted) > 20
    for field in ("value", "hashed_email", "external_attribution_credit", "not_counted_reason"):
        values = {c[offline.ACCEPTED.index(field)] for c in accepted}
        assert None in values and len(values) > 1, field
    stored, row_by_row = _stored_both_ways(accepted)
    assert stored == row_by_row


@pytest.mark.parametrize("name", ["Purchase", "O'Brien's \"deal\" — ünïcode ☃ ''",
                                  "x'); DROP TABLE conversions; --"])
@pytest.mark.parametrize("currency", ["USD", " EUR ", None])
def test_one_insert_of_one_goals_conversions_stores_what_the_row_by_row_insert_stores(
        name, currency):
    """All of a call's conversions of one goal and currency: what they share is written into
    the INSERT rather than bound, and stored the same."""
    ctx = _context()
    ctx.goals[name] = _goal(7, name)
    items = [{**item, "ConversionName": name, "ConversionTime": _at(2 * HOUR + i),
              "ConversionCurrencyCode": currency, "ConversionValue": i or None}
             for i, item in enumerate([GOOD, *HASHED, {**GOOD, "MicrosoftClickId": "c" * 32}])]
    accepted = [verdict for _, verdict in _fast(items, ctx)]
    assert all(type(verdict) is tuple for verdict in accepted)
    reason = offline.ACCEPTED.index("not_counted_reason")
    assert {None, offline.NO_MATCHING_CLICK} <= {c[reason] for c in accepted}
    assert offline._shared(accepted) is not None  # the INSERT that writes them in
    stored, row_by_row = _stored_both_ways(accepted)
    assert stored == row_by_row
    assert {row[4] for row in stored} == {name}


def test_a_stored_key_keeps_the_repeat_as_a_duplicate():
    accepted = [verdict for _, verdict in _fast([GOOD], _context())]
    store = Store()
    with store.transaction() as db:
        offline.record_conversions(db, accepted, 1, NOW)
    with store.transaction() as db:
        offline.record_conversions(db, accepted, 2, NOW)
    assert [r["request_id"] for r in store.query("SELECT * FROM conversions")] == [1]
    [duplicate] = store.query("SELECT * FROM duplicates")
    assert duplicate["request_id"] == 2 and duplicate["original_id"] == 1


@pytest.mark.parametrize("one_by_one", [False, True])
def test_stored_keys_among_new_ones_are_kept_as_duplicates_and_the_rest_stored(one_by_one):
    """The one INSERT stores the new conversions of a call with stored ones among them as the
    row-by-row path does (forced here by a repeat within the call): the same ids, in the order
    sent, and a duplicate of each stored one pointing at it."""
    items = [{**GOOD, "ConversionTime": _at(2 * HOUR + i)} for i in range(6)]
    accepted = [verdict for _, verdict in _fast(items, _context())]
    store = Store()
    with store.transaction() as db:
        offline.record_conversions(db, accepted[1:5:2], 1, NOW)  # items 1 and 3
    again = accepted + [accepted[4]] if one_by_one else accepted
    with store.transaction() as db:
        offline.record_conversions(db, again, 2, NOW)
    key = offline.ACCEPTED.index("dedup_key")
    assert [(r["id"], r["request_id"], r["dedup_key"]) for r in store.query(
        "SELECT * FROM conversions ORDER BY id")] == [
        (1, 1, accepted[1][key]), (2, 1, accepted[3][key]), (3, 2, accepted[0][key]),
        (4, 2, accepted[2][key]), (5, 2, accepted[4][key]), (6, 2, accepted[5][key])]
    assert [(r["id"], r["request_id"], r["item_index"], r["original_id"]) for r in store.query(
        "SELECT * FROM duplicates ORDER BY id")] == [(1, 2, 1, 1), (2, 2, 3, 2)] + (
        [(3, 2, 4, 5)] if one_by_one else [])


def test_the_click_lookups_give_the_stored_clicks_columns_the_rules_read():
    store = Store()
    try:
        customer = store.create_customer()["id"]
        mine, other = (store.create_account(customer)["id"] for _ in range(2))
        now = store.now()
        for n, (account, email, phone) in enumerate([
                (mine, SHA, None), (mine, None, SHA.upper()), (mine, SHA, "cd" * 32),
                (other, SHA, None), (mine, None, None)]):
            store.issue_click(account, now - n * HOUR, f"{n:032x}", email, phone)
        stored = {r["click_id"]: r for r in store.query("SELECT * FROM clicks")}
        by_id = store.clicks([f"{n:032x}" for n in range(6)] + ["", CLICK])
        assert by_id == {click_id: {k: row[k] for k in ("click_id", "account_id", "click_time")}
                         for click_id, row in stored.items()}
        found = store.clicks_by_hash(mine, [SHA, ""], [SHA, "cd" * 32])
        assert found == [stored[f"{n:032x}"] for n in (0, 2, 1)]
    finally:
        store.close()


def _common_times() -> list[str]:
    """Times as an upload sends them and the calendar's edges, around the day the test runs
    (the reader must agree with the one-by-one parser on any day), then the format's fixed
    edges: a year before 1000, year 0 and the Unix epoch."""
    day = datetime.now(UTC).date()
    d, y = day.isoformat(), day.year
    after = (day + timedelta(days=1)).isoformat()
    leap = next(n for n in range(y + 1, y + 9) if calendar.isleap(n))
    common = next(n for n in range(y + 1, y + 9) if not calendar.isleap(n))
    return [f"{d}T15:20:16Z", f"{d}T15:20:16", f"{d}T15:20:16+00:00", f"{d}T23:59:59Z",
            f"{after}T00:00:00Z", f"{leap}-02-29T12:00:00Z", f"{d}T15:20:16+02:00",
            f"{d}T15:20:16-00:00", "0999-12-31T23:59:59Z", f"{common}-02-29T12:00:00Z",
            f"{y}-13-01T00:00:00Z", f"{y}-12-00T00:00:00Z", f"{d}T24:00:00Z", f"{d}T12:60:00Z",
            f"{d}T12:00:60Z", "0000-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z"]


COMMON_TIMES = _common_times()


def _one_by_one(texts: list[str]) -> dict:
    plain, read = all_plain(texts), {}
    for text in texts:
        try:
            read[text] = parse_datetime_iso(text, plain)
        except ValueError:
            pass
    return read


@pytest.mark.parametrize("texts", [COMMON_TIMES, COMMON_TIMES[:6], [
    *COMMON_TIMES, " " + COMMON_TIMES[0], COMMON_TIMES[0].replace("16Z", "16.5Z"),
    "yesterday", ""]])
def test_times_read_at_once_are_read_as_one_by_one(texts):
    read = read_times(texts)
    assert read == _one_by_one(texts)
    assert len(read) >= 6
    for text, (epoch, text_iso) in read.items():
        assert epoch == parse_datetime(text) and text_iso == iso(epoch)


def test_a_call_rolled_back_leaves_its_numbers_to_its_resend():
    """The dedup numbers are held in memory (offline.StoredNumbers): what a call that rolls
    back added is forgotten with its rows, so its conversions sent again are stored, while
    those stored before stay found."""
    items = [{**GOOD, "ConversionTime": _at(2 * HOUR + i)} for i in range(4)]
    accepted = [verdict for _, verdict in _fast(items, _context())]
    store = Store()
    with store.transaction() as db:
        offline.record_conversions(db, accepted[:1], 1, NOW)
    for one_by_one in (False, True):  # the one INSERT, and the row-by-row one
        again = accepted + [accepted[1]] if one_by_one else accepted[1:]
        with pytest.raises(RuntimeError), store.transaction() as db:
            offline.record_conversions(db, again, 2, NOW)
            raise RuntimeError("the call fails after storing")
    with store.transaction() as db:
        offline.record_conversions(db, accepted, 3, NOW)
    rows = store.query("SELECT * FROM conversions ORDER BY id")
    assert [(r["id"], r["request_id"]) for r in rows] == [(1, 1), (2, 3), (3, 3), (4, 3)]
    # each with its key's number: none was taken by a row that is gone
    assert [r["dedup_number"] for r in rows] == [offline.dedup_number(r["dedup_key"])
                                                 for r in rows]
    assert [(r["request_id"], r["original_id"]) for r in store.query(
        "SELECT * FROM duplicates")] == [(3, 1)]


def test_after_a_reset_the_same_conversions_are_stored_again():
    accepted = [verdict for _, verdict in _fast([GOOD], _context())]
    store = Store()
    with store.transaction() as db:
        offline.record_conversions(db, accepted, 1, NOW)
    store.reset()
    with store.transaction() as db:
        offline.record_conversions(db, accepted, 2, NOW)
    [row] = store.query("SELECT * FROM conversions")
    assert (row["request_id"], row["dedup_number"]) == (2, offline.dedup_number(
        row["dedup_key"]))
    assert store.query("SELECT * FROM duplicates") == []
