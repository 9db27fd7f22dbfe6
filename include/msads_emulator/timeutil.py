"""Emulator time: xs:dateTime parsing and formatting, all in epoch seconds (UTC)."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, date, datetime, timedelta

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0

_DATETIME = re.compile(
    r"\s*(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?\s*")

# No spaces, hour 00-23, six fraction digits at most: datetime.fromisoformat gives the same.
_PLAIN = re.compile(r"\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):\d{2}:\d{2}(?:\.\d{1,6})?"
                    r"(?:Z|[+-]\d{2}:\d{2})?")
# all_plain: every ASCII digit as 0, and the shapes that leaves of _PLAIN's common texts
_ZEROS = str.maketrans("123456789", "000000000")
_SHAPES = frozenset("0000-00-00T00:00:00" + zone for zone in ("", "Z", "+00:00", "-00:00"))


def parse_datetime(text: str) -> float:
    """An ``xs:dateTime`` as epoch seconds; raises ValueError when it is not one.

    A value without an offset is taken as UTC, as Microsoft asks for UTC and .NET reads an
    unspecified time that way for this API. Fractions beyond microseconds are truncated.
    """
    if text and _PLAIN.fullmatch(text):  # the common shape: what fromisoformat reads alike
        return _plain(text)
    m = _DATETIME.fullmatch(text or "")
    if not m:
        raise ValueError(f"not an xs:dateTime: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    zone = m.group(8)
    if hour == 24 and minute == 0 and second == 0 and micro == 0:
        base = datetime(year, month, day, tzinfo=UTC) + timedelta(days=1)
    else:
        base = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        base -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return base.timestamp()


def _plain(text: str) -> float:
    parsed = datetime.fromisoformat(text[:-1] if text[-1] == "Z" else text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def all_plain(texts: Collection[str]) -> bool:
    """Whether every text has one of the common shapes (whole seconds; ``Z``, ``+hh:mm``,
    ``-hh:mm`` or no offset), checked for all at once, character by character (ASCII digits).
    Such a text matches ``_PLAIN`` but for an hour past 23, which fromisoformat refuses."""
    joined = "\n".join(texts)
    shapes = joined.translate(_ZEROS).split("\n")
    return bool(texts) and len(shapes) == len(texts) and _SHAPES.issuperset(shapes)


def parse_datetime_iso(text: str, plain: bool = False) -> tuple[float, str]:
    """``parse_datetime(text)`` and ``iso`` of it (``plain``: ``all_plain`` said the text has
    a common shape; fromisoformat then reads it as ``parse_datetime`` does, or refuses an hour
    ``parse_datetime`` may read: the caller asks ``parse_datetime`` about what this refuses).
    A whole-second UTC time in the common shape (``Z``, ``+00:00`` or no offset) is its own
    ISO form up to the seconds, so it is not formatted again; anything else goes through
    ``iso``."""
    if plain or (text and _PLAIN.fullmatch(text)):
        epoch = _plain(text)
        if len(text) in (19, 20, 25) and text[19:] in ("", "Z", "+00:00") \
                and text[0] != "0":  # years before 1000 are iso's own
            return epoch, text[:19] + "Z"
    else:
        epoch = parse_datetime(text)
    return epoch, iso(epoch)  # type: ignore[return-value]


# read_times: "hh:mm" and "ss" of a time of day -> its seconds, for the hours 00-23, minutes
# and seconds 00-59 that fromisoformat reads; the ordinal of 1970-01-01.
_HOURS_MINUTES = {f"{h:02d}:{m:02d}": h * 3600 + m * 60 for h in range(24) for m in range(60)}
_SECONDS = {f"{s:02d}": s for s in range(60)}
_UTC_ZONES = ("", "Z", "+00:00")
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def read_times(texts: Collection[str]) -> dict[str, tuple[float, str]]:
    """``parse_datetime_iso(text, all_plain(texts))`` of each text, for the texts it reads.

    When all texts have a common shape, a whole-second UTC time after the year 999 is read
    from its parts: the date once per distinct date (``date.fromisoformat``, which refuses
    what ``fromisoformat`` refuses), the time of day from tables of the hours, minutes and
    seconds ``fromisoformat`` accepts; the sum is a whole number of seconds, so it is the
    same float. Anything else, or a part those refuse, goes through ``parse_datetime_iso``."""
    plain = all_plain(texts)
    found: dict[str, tuple[float, str]] = {}
    others = [] if plain else texts
    if plain:
        days: dict[str, int | None] = {}
        for text in texts:
            day = days.get(text[:10])
            if day is None:  # a date not seen yet, or one that cannot be read
                day = days[text[:10]] = None if text[:10] in days else _day(text[:10])
            zone = text[19:]
            minutes = _HOURS_MINUTES.get(text[11:16])
            seconds = _SECONDS.get(text[17:19])
            if day is None or minutes is None or seconds is None or zone not in _UTC_ZONES:
                others.append(text)
            else:
                found[text] = (float(day + minutes + seconds),
                               text if zone == "Z" else text[:19] + "Z")
    for text in others:
        try:
            found[text] = parse_datetime_iso(text, plain)
        except ValueError:
            continue
    return found


def _day(text: str) -> int | None:
    """The epoch seconds of a date ``yyyy-mm-dd`` after the year 999 (``iso`` writes earlier
    years its own way), or None."""
    if text[0] == "0":
        return None
    try:
        return (date.fromisoformat(text).toordinal() - _EPOCH_DAY) * 86400
    except ValueError:
        return None


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as ``2026-10-01T12:30:00Z`` (microseconds only when there are some)."""
    if epoch is None:
        return None
    dt = datetime.fromtimestamp(epoch, UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_admin_time(value: object, now: float) -> float:
    """A time given to the admin API: ISO text, epoch seconds, or ``{"ago": seconds}``."""
    if value is None:
        return now
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict) and "ago" in value:
        return now - float(value["ago"])
    if isinstance(value, str):
        return parse_datetime(value)
    raise ValueError(f"not a time: {value!r}; give ISO 8601 text, epoch seconds or "
                     '{"ago": seconds}')
