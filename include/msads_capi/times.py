"""Times given by people (``msads replay --start/--end``, the ``msads_replay`` DAG's Params).

The rule, for every way in: an ISO 8601 time **with** a time zone (``Z`` or an offset such as
``+01:00``); a time without one is refused, never guessed. Airflow 3.3's trigger form already
sends a ``format="date-time"`` Param with a zone: its date-time picker reads the date and time
in the time zone selected in the UI (the browser's unless changed) and sends them as UTC, e.g.
``...T08:00:00.000Z``. Only values written by hand (the CLI, the trigger form's JSON
configuration, ``airflow dags trigger --conf``, the REST API; Airflow does not check the
format, see docs/pipeline.md) can lack a zone, and reading those as UTC or as the server's zone
would silently move a replay window by hours.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from include.msads_capi.errors import MsadsError


def parse_time(value: object, what: str) -> datetime | None:
    """``value`` as an aware datetime; None when it is empty (an unbounded range).

    ``what`` names the value in the error, e.g. ``--start`` or ``start``. Raises
    :class:`MsadsError` with the fix when the value is not ISO 8601 or has no time zone.
    """
    if isinstance(value, datetime):
        parsed, text = value, value.isoformat()
    else:
        text = "" if value is None else str(value).strip()
        if not text:
            return None
        try:
            # RFC 3339 allows a lower-case z, which Python 3.11 does not read.
            parsed = datetime.fromisoformat(text[:-1] + "Z" if text.endswith("z") else text)
        except ValueError:
            raise MsadsError(f"{what} {text!r} is not an ISO 8601 time; write it like "
                             "2026-11-01T09:00:00+01:00 or 2026-11-01T08:00:00Z") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise MsadsError(f"{what} {text!r} has no time zone; add Z or +01:00, e.g. "
                         f"{parsed.isoformat()}Z")
    return parsed


_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_span(value: str, what: str) -> timedelta:
    """A span of time given by a person: a whole number and ``m``, ``h`` or ``d`` (``7d``)."""
    text = (value or "").strip().lower()
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit() or int(number) <= 0:
        raise MsadsError(f"{what} {value!r} is not a span of time; write a whole number and "
                         "m, h or d, e.g. 90m, 24h or 7d")
    return timedelta(**{_UNITS[unit]: int(number)})
