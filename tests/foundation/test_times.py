"""Times given by people: ISO 8601 with a time zone, or refused with the fix (times.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from include.msads_capi.errors import MsadsError
from include.msads_capi.times import parse_time

# Any moment will do; built in code, so no test depends on a written date or on today.
MOMENT = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
PARIS_WINTER = timezone(timedelta(hours=1))


def test_a_time_in_utc_or_with_an_offset_is_read_as_written():
    utc = MOMENT.isoformat().replace("+00:00", "Z")
    assert parse_time(utc, "--start") == MOMENT
    assert parse_time(utc.lower(), "--start") == MOMENT  # RFC 3339 allows a small z
    # what Airflow's trigger form sends: UTC with milliseconds
    assert parse_time(MOMENT.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                      "start") == MOMENT
    plus_one = MOMENT.astimezone(PARIS_WINTER).isoformat()
    assert plus_one.endswith("+01:00")
    parsed = parse_time(plus_one, "--start")
    assert parsed == MOMENT and parsed.utcoffset() == timedelta(hours=1)
    assert parse_time(f"  {utc} ", "--start") == MOMENT
    assert parse_time(MOMENT, "start") == MOMENT


def test_a_time_without_a_zone_is_refused_never_guessed():
    naive = MOMENT.replace(tzinfo=None).isoformat()
    with pytest.raises(MsadsError) as caught:
        parse_time(naive, "--start")
    message = str(caught.value)
    assert message == (f"--start {naive!r} has no time zone; add Z or +01:00, e.g. {naive}Z")
    assert "\n" not in message
    assert parse_time(message.rsplit("e.g. ", 1)[1], "--start") == MOMENT  # the hint works
    with pytest.raises(MsadsError, match="has no time zone"):
        parse_time(MOMENT.date().isoformat(), "end")  # a date alone has no zone either
    with pytest.raises(MsadsError, match="^start '.*' has no time zone"):
        parse_time(MOMENT.replace(tzinfo=None), "start")


@pytest.mark.parametrize("garbage", ["yesterday", "31/12 noon", "T+01:00", "Z", "12"])
def test_garbage_is_refused_with_an_example(garbage):
    with pytest.raises(MsadsError) as caught:
        parse_time(garbage, "--end")
    message = str(caught.value)
    assert message.startswith(f"--end {garbage!r} is not an ISO 8601 time; write it like ")
    example = message.rsplit("like ", 1)[1].split(" or ")[0]
    assert parse_time(example, "--end").utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_nothing_means_unbounded(empty):
    assert parse_time(empty, "--start") is None
