"""Hostile input: whatever analysts write into the events table, the run completes and every event
gets an outcome with a reason a person can read.

Two things the data contract rules out before the pipeline sees them: PostgreSQL text cannot hold
NUL characters, and the default table's ``event_id`` primary key and ``timestamptz`` column
refuse duplicate ids and naive times at insert. A custom table (``MSADS_EVENTS_TABLE``) may allow
both, so the last test feeds the pipeline exactly that.
"""

from __future__ import annotations

import itertools
from datetime import UTC, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.msads_capi.settings import PipelineConfig
from tests.reliability.conftest import assert_accounted

pytestmark = pytest.mark.slow

_n = itertools.count()
CLICK_POOL = 64

# PostgreSQL text holds neither NUL nor lone surrogates (not UTF-8): the contract stops them.
chars = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
junk = st.text(alphabet=chars, max_size=40)
nasty = st.sampled_from([
    "x" * 10_000, "'; DROP TABLE msads.results; --", "Robert'); DELETE FROM conversion_events;--",
    "\x01\x02\x1b[31m\x7f", "line\nbreak\r\n", "\t", "   ", "", "🙂🛒💶", "‮evil‬", "NULL", "None",
    "nan", "%s %(x)s {0}", "\\x00", "ｆｕｌｌ　ｗｉｄｔｈ",
])
text_or_junk = st.one_of(st.none(), nasty, junk)

spaces = st.one_of(st.sampled_from(["shop", "shop", "SHOP", " shop", "shop\n", "nowhere"]),
                   nasty, junk)
names = st.one_of(st.sampled_from(["Purchase", "Purchase", "Lead", "purchase", "Purchase ",
                                   "PURCHASE", "Signup"]), nasty, junk)
values = st.one_of(
    st.none(), st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"),
                                Decimal("-0.01"), Decimal("0"), Decimal("1e30"),
                                Decimal("9" * 40), Decimal("0.000000001")]),
    st.decimals(min_value=-10**12, max_value=10**15, allow_nan=False, places=4))
currencies = st.one_of(st.none(), st.sampled_from(["USD", "usd", " US", "ZZZ", "€€€", "12", "U",
                                                   "TRL", "eur", "\t\n ", "🙂"]),
                       st.text(alphabet=chars, min_size=1, max_size=3))
emails = st.one_of(text_or_junk, st.sampled_from([
    " Ana@Example.COM ", "ANA@EXAMPLE.COM\t", "a@b", "x" * 10_000 + "@example.com",
    "名前@例え.jp", "🙂@example.com", "ana@example.com'; DROP TABLE x; --", "a@@b.com",
    "ana+tag@gmail.com", "ana@example.com\x0b"]))
phones = st.one_of(text_or_junk, st.sampled_from([
    "+1 (415) 555-0100", "415.555.0100", "+44 20 7946 0958 ext. 12", "٠١٢٣٤٥٦٧٨٩",
    "+1 415 555 0100 🙂", "1" * 10_000, "+", "00000000000"]))
offsets = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)),
                           timezone(timedelta(hours=5, minutes=45))])
platforms = st.one_of(st.none(), st.sampled_from(["microsoft", " Microsoft ", "BING", "google",
                                                  "MSADS\n"]), nasty, junk)


@st.composite
def event(draw, clicks: int) -> dict:
    click = draw(st.one_of(st.none(), st.integers(0, clicks - 1).map(lambda i: ("pool", i)),
                           nasty, junk))
    shape = draw(st.sampled_from(["as_issued", "upper", "padded"]))
    return {
        "event_id": draw(st.one_of(nasty, junk)).replace("x" * 10_000, "x" * 300),
        "space_id": draw(spaces), "event_name": draw(names),
        "age": draw(st.floats(min_value=-30 * 86400, max_value=400 * 86400)),
        "tz": draw(offsets), "value": draw(values), "currency_code": draw(currencies),
        "msclkid": click, "click_shape": shape, "email": draw(emails), "phone": draw(phones),
        "attributed_platform": draw(platforms),
    }


def _insert(s, pool: list[str], events: list[dict]) -> list[str]:
    ids, now = [], s.now()
    with psycopg.connect(s.warehouse.url) as conn:
        for e in events:
            event_id = f"{e['event_id']}#{next(_n)}"  # hostile, but unique
            click = e["msclkid"]
            if isinstance(click, tuple):
                click = pool[click[1]]
                click = {"upper": click.upper(), "padded": f"  {click}\n"}.get(e["click_shape"],
                                                                               click)
            conn.execute(
                "INSERT INTO conversion_events (event_id, space_id, event_name, event_time, "
                "value, currency_code, msclkid, email, phone, attributed_platform) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (event_id, e["space_id"], e["event_name"],
                 (now - timedelta(seconds=e["age"])).astimezone(e["tz"]), e["value"],
                 e["currency_code"], click, e["email"], e["phone"], e["attributed_platform"]))
            ids.append(event_id)
    return ids


def _assert_explained(s, event_ids: list[str]) -> None:
    assert_accounted(s, event_ids)
    with psycopg.connect(s.warehouse.url) as conn:
        rows = conn.execute(
            "SELECT event_id, status, reason, explanation, detail FROM msads.event_outcomes "
            "WHERE event_id = ANY(%s)", (event_ids,)).fetchall()
        known = {r[0] for r in conn.execute("SELECT reason FROM msads.reasons")}
    for event_id, status, reason, explanation, detail in rows:
        assert reason in known or reason.startswith("rejected:"), (event_id, reason)
        assert reason not in ("claimed", "ready"), (event_id, status, reason)
        assert explanation and explanation != reason, (event_id, reason)
        if status == "skipped" and reason not in ("capi_off",):
            assert detail, (event_id, reason)


@pytest.fixture
def click_pool(shop) -> list[str]:
    return shop.emu.admin.issue_clicks(shop.tenant.account_id, CLICK_POOL,
                                       click_time={"ago": 2 * 86400})


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(batch=st.lists(event(CLICK_POOL), min_size=1, max_size=8))
def test_every_hostile_event_gets_an_outcome_with_a_reason(shop, click_pool, batch):
    s = shop
    ids = _insert(s, click_pool, batch)
    s.run()
    _assert_explained(s, ids)


def _loose_table(s, column_type: str) -> list[str]:
    """A custom events table without a primary key; event_time of ``column_type``."""
    now = s.now()
    when = (now.replace(tzinfo=None) if column_type == "timestamp" else now) - timedelta(hours=1)
    rows = [("single", "Purchase", when, s.click(), None),
            ("dup", "Purchase", when, None, "ana@example.com"),
            ("dup", "Purchase", when - timedelta(minutes=5), None, "bob@example.com"),
            ("dup-lead", "Lead", when, s.click(), None),
            ("dup-lead", "Purchase", when, s.click(), None)]
    with psycopg.connect(s.warehouse.url) as conn:
        conn.execute(f"CREATE TABLE loose_events (event_id text, space_id text NOT NULL, "
                     f"event_name text NOT NULL, event_time {column_type} NOT NULL, "
                     "value numeric, currency_code text, msclkid text, email text, phone text, "
                     "attributed_platform text, ingested_at timestamptz NOT NULL DEFAULT now())")
        for event_id, name, at, click, email in rows:
            conn.execute("INSERT INTO loose_events (event_id, space_id, event_name, event_time, "
                         "value, msclkid, email, attributed_platform) VALUES "
                         "(%s, 'shop', %s, %s, 10, %s, %s, 'microsoft')",
                         (event_id, name, at, click, email))
    return ["single", "dup", "dup-lead"]


def test_naive_times_in_a_custom_table_are_refused_not_guessed(shop, monkeypatch):
    s = shop
    ids = _loose_table(s, "timestamp")
    monkeypatch.setenv("MSADS_EVENTS_TABLE", "loose_events")
    s.run()
    _assert_explained(s, ids)
    with psycopg.connect(s.warehouse.url) as conn:
        details = conn.execute("SELECT DISTINCT status, detail FROM msads.results").fetchall()
    assert {d[0] for d in details} == {"skipped"}
    assert all("has no time zone" in d[1] for d in details), details
    assert {r[3] for r in s.outcomes()} == {"no_time_zone"}  # not mistaken for future_time
    assert s.emu.admin.conversions() == []


def test_duplicate_event_ids_in_a_custom_table_are_sent_once(shop, monkeypatch):
    s = shop
    ids = _loose_table(s, "timestamptz")
    monkeypatch.setenv("MSADS_EVENTS_TABLE", "loose_events")
    s.run()
    _assert_explained(s, ids)
    s.run()  # a second run decides nothing again
    _assert_explained(s, ids)
    assert [r[2:] for r in s.outcomes("dup")] == [("uploaded", "uploaded")]
    assert len(s.emu.admin.conversions()) == 3 and s.emu.admin.duplicates() == []


def test_whole_chunks_of_repeated_event_ids_do_not_stop_the_new_events_after_them(
        shop, monkeypatch):
    s = shop
    ids = _loose_table(s, "timestamptz")
    monkeypatch.setenv("MSADS_EVENTS_TABLE", "loose_events")
    s.run()
    when = s.now() - timedelta(hours=1)
    with psycopg.connect(s.warehouse.url) as conn:
        for _ in range(5):  # the ledger has "single": two whole chunks and a half of repeats
            conn.execute("INSERT INTO loose_events (event_id, space_id, event_name, event_time, "
                         "value, msclkid, attributed_platform) VALUES ('single', 'shop', "
                         "'Purchase', %s, 10, %s, 'microsoft')", (when, s.click()))
        conn.execute("INSERT INTO loose_events (event_id, space_id, event_name, event_time, "
                     "value, msclkid, attributed_platform) VALUES ('fresh', 'shop', "
                     "'Purchase', %s, 10, %s, 'microsoft')", (when, s.click()))
    summary = s.run(config=PipelineConfig(chunk_size=2))
    assert summary["claimed"]["new"] == 1
    assert s.reason("fresh") == ["uploaded"] and s.reason("single") == ["uploaded"]
    _assert_explained(s, [*ids, "fresh"])
    assert len(s.emu.admin.conversions()) == 4 and s.emu.admin.duplicates() == []
