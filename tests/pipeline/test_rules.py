"""Properties: the column-wise check and the one-row check agree, on any row; and what a person
reads when a conversion fails one of Microsoft's limits.

The plan stage sends a row the column-wise check (:func:`rules.check_frame`) calls clean as it
is, and sends every other row through :func:`rules.check_row`; so a clean row must be one the
row check passes, with the same value and currency, and a row the row check passes (for a goal
without external attribution, with time-zone-aware times) must be clean. No database: the
frames are built here with the columns the checks read. The clock is fixed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd
import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.msads_capi import codes, rules
from include.msads_capi.explain import _identifiers
from include.msads_capi.identity import hash_identities
from include.msads_capi.outcomes import (
    ATTRIBUTION_INVALID,
    ATTRIBUTION_MISSING,
    FUTURE_TIME,
    GOAL_TOO_NEW,
    INVALID_VALUE,
    NO_TIME_ZONE,
    NOT_DUE_YET,
    OUTSIDE_WINDOW,
)
from include.msads_capi.settings import PipelineConfig

NOW = datetime.fromtimestamp(1_900_000_000, UTC)
CONFIG = PipelineConfig()
DAY, TICK = timedelta(days=1), timedelta(microseconds=1)
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

VALUES = st.one_of(
    st.none(),
    st.floats(),  # NaN and ±inf included
    st.floats(min_value=0, max_value=2 * rules.MAX_VALUE),
    st.integers(min_value=-10, max_value=10**13),
    st.decimals(places=2),  # NaN, sNaN and ±Infinity included
    st.sampled_from([Decimal("NaN"), Decimal("-1"), Decimal("0"), Decimal("12.50"),
                     Decimal("1e400"), Decimal(rules.MAX_VALUE), 1e12, 1e12 + 1, -0.0,
                     "12.5", " 3 ", "abc", "", "nan", "-0", "1e13", "inf", "1_000"]))
# The columns read at once (rules._amounts): `numeric` (Decimals and NULLs), `double precision`
# (floats, NULL as NaN) and `bigint`; VALUES mixes types, and is read value by value.
COLUMN_VALUES = st.one_of(
    st.lists(st.one_of(st.none(), st.decimals(places=2), st.sampled_from(
        [Decimal("NaN"), Decimal("sNaN"), Decimal("-0"), Decimal("1e400"),
         Decimal(rules.MAX_VALUE), Decimal(rules.MAX_VALUE) + Decimal("0.01")]))),
    st.lists(st.one_of(st.none(), st.floats(),
                       st.floats(min_value=0, max_value=2 * rules.MAX_VALUE))),
    st.lists(st.one_of(st.integers(min_value=-10, max_value=10**13),
                       st.integers(min_value=0, max_value=10**6))))
EVENT_CURRENCIES = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "\t", "USD", "usd", " eur ", "gbp\n", "TRL", "TRY", "XXX", "US",
                     "USDD", "Usd"]),
    st.text(max_size=4))
SPACE_CURRENCIES = st.sampled_from([None, "USD", "EUR", "eur", " GBP ", "", " ", "XXX"])
# Around each limit: older than 90 days, within them, a little ahead, far ahead.
EVENT_AGES = st.one_of(
    st.timedeltas(min_value=-400 * DAY, max_value=-CONFIG.max_age - TICK),
    st.timedeltas(min_value=-CONFIG.max_age, max_value=timedelta(0)),
    st.timedeltas(min_value=TICK, max_value=CONFIG.future_tolerance),
    st.timedeltas(min_value=CONFIG.future_tolerance + TICK, max_value=30 * DAY),
    st.sampled_from([-CONFIG.max_age, -CONFIG.max_age - TICK, timedelta(0), TICK,
                     CONFIG.future_tolerance, CONFIG.future_tolerance + TICK]))
GOAL_AGES = st.one_of(
    st.none(),
    st.timedeltas(min_value=timedelta(0), max_value=CONFIG.goal_min_age),
    st.timedeltas(min_value=CONFIG.goal_min_age, max_value=400 * DAY),
    st.sampled_from([CONFIG.goal_min_age, CONFIG.goal_min_age - TICK, -timedelta(hours=1)]))
CREDITS = st.one_of(st.none(), st.floats(min_value=-0.5, max_value=1.5), st.floats(),
                    st.sampled_from([Decimal("0.4"), Decimal("NaN"), 0, 1, 1.0000001]))
MODELS = st.sampled_from([None, "", " ", "house-mmm", " last-click "])
ZONES = st.sampled_from([UTC, UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9)),
                         None])  # None: a `timestamp` column, no zone


@st.composite
def rows(draw, zone: timezone | None) -> dict:
    created = draw(GOAL_AGES)
    event_time = (NOW + draw(EVENT_AGES)).astimezone(zone or UTC)
    return {
        "goal_id": draw(st.integers(min_value=1, max_value=10**6)),
        "value": draw(VALUES),
        "currency_code": draw(EVENT_CURRENCIES),
        "space_currency": draw(SPACE_CURRENCIES),
        "event_time": event_time if zone else event_time.replace(tzinfo=None),
        "goal_created_at": None if created is None else NOW - created,
        "externally_attributed": draw(st.sampled_from([False, False, True, None])),
        "external_attribution_credit": draw(CREDITS),
        "external_attribution_model": draw(MODELS),
    }


@st.composite
def frames(draw) -> pd.DataFrame:
    zone = draw(ZONES)
    return pd.DataFrame(draw(st.lists(rows(zone), min_size=1, max_size=12)),
                        columns=list(rules.COLUMNS))


def _same(a: object, b: object) -> bool:
    return a == b and type(a) is type(b)


@SETTINGS
@given(frames())
def test_the_column_check_and_the_row_check_agree(df):
    clean, values, currencies = rules.check_frame(df, NOW, CONFIG)
    aware = isinstance(df["event_time"].dtype, pd.DatetimeTZDtype)
    for i, row in enumerate(df.itertuples(index=False)):
        one = rules.check_row(row, NOW, CONFIG)
        if clean[i]:
            assert one.reason is None, (row, one)
            assert _same(one.value, values[i]), (row, one.value, values[i])
            assert _same(one.currency, currencies[i]), (row, one.currency, currencies[i])
            assert one.credit is None and one.model is None
            assert one.currency is None or one.currency in codes.CURRENCIES
        elif aware and row.externally_attributed in (False, None):
            assert one.reason is not None, (row, one)
        if not aware:
            assert one.reason == NO_TIME_ZONE


PLATFORMS = st.one_of(
    st.none(), st.text(max_size=12),
    st.sampled_from(sorted(rules.MICROSOFT_PLATFORMS)).flatmap(
        lambda p: st.sampled_from([p, p.upper(), f"  {p.title()}\t", f"{p}!", p.replace(" ", "")])))


@SETTINGS
@given(st.lists(PLATFORMS, min_size=1, max_size=8))
def test_attributed_agrees_with_is_attributed(platforms):
    column = pd.Series(platforms, dtype=object)
    together = rules.attributed(column, CONFIG).tolist()
    assert together == [rules.is_attributed(p, CONFIG) for p in platforms]


# ---------------------------------------------------------------- what a person reads

def _row(**fields):
    base = {"goal_id": 7, "value": Decimal("10"), "currency_code": None,
            "space_currency": "USD", "event_time": NOW - DAY, "goal_created_at": NOW - 30 * DAY,
            "externally_attributed": False, "external_attribution_credit": None,
            "external_attribution_model": None}
    df = pd.DataFrame([base | fields], columns=list(rules.COLUMNS))
    return df, next(df.itertuples(index=False))


@SETTINGS
@given(COLUMN_VALUES.filter(len))
def test_a_typed_value_column_is_read_as_the_row_check_reads_each_value(values):
    """A `numeric`, `double precision` or `bigint` column is read at once (rules._amounts):
    the same rows are clean, with the same values, as the row check finds one by one."""
    floats = all(isinstance(v, float) or v is None for v in values)
    df = pd.concat([_row()[0]] * len(values), ignore_index=True).assign(
        value=pd.Series(values, dtype="float64" if floats else None))
    clean, got, _ = rules.check_frame(df, NOW, CONFIG)
    for i, row in enumerate(df.itertuples(index=False)):
        one = rules.check_row(row, NOW, CONFIG)
        assert bool(clean[i]) == (one.reason is None), (row.value, one)
        if clean[i]:
            assert _same(one.value, got[i]), (row.value, one.value, got[i])


def test_a_negative_value_is_invalid_and_not_sent():
    _, row = _row(value=Decimal("-1"))
    one = rules.check_row(row, NOW, CONFIG)
    assert (one.reason, one.detail) == (INVALID_VALUE, "value -1 is not a non-negative amount")
    assert one.value is None and one.currency is None


def test_a_currency_not_on_microsofts_list_names_the_list():
    _, row = _row(currency_code="XXX")
    one = rules.check_row(row, NOW, CONFIG)
    assert one.reason == INVALID_VALUE
    assert one.detail == ("currency 'XXX' is not one Microsoft takes for conversions (its list: "
                          f"{codes.CURRENCY_LIST_URL})")


def test_an_event_older_than_90_days_says_how_old():
    _, row = _row(event_time=NOW - 91 * DAY)
    one = rules.check_row(row, NOW, CONFIG)
    assert (one.reason, one.detail) == (
        OUTSIDE_WINDOW, "the event is 91 day(s) old; Microsoft accepts conversions up to 90 "
                        "days old")


def test_a_time_a_little_ahead_waits_and_one_far_ahead_is_refused():
    soon = NOW + timedelta(minutes=2)
    one = rules.check_row(_row(event_time=soon)[1], NOW, CONFIG)
    assert (one.reason, one.defer_until) == (NOT_DUE_YET, soon)
    assert one.detail.endswith("it is sent once that time has passed")
    far = rules.check_row(_row(event_time=NOW + timedelta(hours=1))[1], NOW, CONFIG)
    assert far.reason == FUTURE_TIME and far.defer_until is None
    assert "is more than 5 minutes ahead of now" in far.detail


def test_a_new_goal_holds_its_conversions_for_two_hours():
    created = NOW - timedelta(minutes=30)
    one = rules.check_row(_row(goal_created_at=created)[1], NOW, CONFIG)
    assert (one.reason, one.defer_until) == (GOAL_TOO_NEW, created + timedelta(hours=2))
    assert one.detail.startswith("goal 7 was created at ")


def test_external_attribution_needs_both_fields_and_a_credit_from_0_to_1():
    missing = rules.check_row(_row(externally_attributed=True,
                                   external_attribution_credit=0.4)[1], NOW, CONFIG)
    assert (missing.reason, missing.detail) == (
        ATTRIBUTION_MISSING, "goal 7 uses external attribution; the event has no "
                             "external_attribution_model")
    invalid = rules.check_row(_row(externally_attributed=True, external_attribution_credit=1.5,
                                   external_attribution_model="mmm")[1], NOW, CONFIG)
    assert (invalid.reason, invalid.detail) == (
        ATTRIBUTION_INVALID, "external_attribution_credit 1.5 is not between 0 and 1")
    sent = rules.check_row(_row(externally_attributed=True, external_attribution_credit=0.4,
                                external_attribution_model=" mmm ")[1], NOW, CONFIG)
    assert (sent.reason, sent.credit, sent.model) == (None, 0.4, "mmm")


def test_an_empty_or_blank_event_currency_takes_the_spaces():
    for blank in (None, "", "  "):
        df, row = _row(value=Decimal("12.5"), currency_code=blank, space_currency=" eur ")
        one = rules.check_row(row, NOW, CONFIG)
        assert (one.reason, one.value, one.currency) == (None, 12.5, "EUR")
        clean, values, currencies = rules.check_frame(df, NOW, CONFIG)
        assert (bool(clean[0]), values[0], currencies[0]) == (True, 12.5, "EUR")


def test_why_reads_a_phone_with_the_spaces_region_as_the_hash_stage_does():
    """A national number needs the Space's region; without one (no Space) neither the hash
    stage nor `msads why` guesses a country."""
    people = [("(650) 253-0000", "US"), ("(650) 253-0000", None), ("+1 650 253 0000", None)]
    frame = pd.DataFrame(people, columns=["phone", "phone_region"], dtype=object)
    hashed = hash_identities(frame, phone="phone", region="phone_region").frame
    assert hashed["phone_sha256"].notna().tolist() == [True, False, True]
    for (phone, region), digest in zip(people, hashed["phone_sha256"], strict=True):
        check, usable = _identifiers({"phone": phone, "phone_region": region})
        assert usable["phone"] == isinstance(digest, str)
        assert ("phone: usable" in check.answer) == usable["phone"]


def test_the_pipeline_sends_a_blank_currency_in_the_spaces(shop):
    """conversion_events.currency_code is char(3): an empty string reads back as blanks."""
    s = shop
    events = {s.event(currency_code=code): sent for code, sent in
              ((None, "USD"), ("", "USD"), ("   ", "USD"), ("eur", "EUR"), ("XXX", None))}
    s.run()
    with psycopg.connect(s.warehouse.url) as conn:
        got = dict(conn.execute("SELECT event_id, currency_code FROM msads.results WHERE "
                                "event_id = ANY(%s)", (list(events),)).fetchall())
    assert got == events
    assert [s.reason(e) for e in events] == [["uploaded"]] * 4 + [[INVALID_VALUE]]
