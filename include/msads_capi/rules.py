"""The checks made before a conversion is sent, and Microsoft's limits they use: one owner.

The plan stage runs them on every conversion it may send, in two forms that must agree:
:func:`check_frame` decides a whole chunk column-wise (the fast path: a row it calls clean is
sent as it is) and :func:`check_row` looks at one row and writes the sentence a person reads.
``tests/pipeline/test_rules.py`` holds the two to the same answers. :func:`is_attributed` and
:func:`attributed` say whether an event counts as attributed to Microsoft (send rule
``attributed_only``), for the plan stage and for ``msads why`` alike.

Microsoft's limits, as its reference documents them (docs/pipeline.md, "Microsoft's rules"):

- "The date and time must be within the last 90 days" at upload (``OfflineConversion``,
  ``ConversionTime``; 5609) → ``outside_window``. The goal's own conversion window runs from
  the click, which only Microsoft knows, so it is not checked here.
- A conversion time in the future is refused, by any amount (5614). Clocks differ, so a time
  up to :data:`FUTURE_TOLERANCE` ahead waits (``not_due_yet``); further ahead it is
  ``future_time``.
- Conversions for a goal created less than two hours ago are refused (``ApplyOfflineConversions``:
  "wait two hours"; 5615) → ``goal_too_new``, held until the goal is old enough.
- The value must be a non-negative number (5610); Microsoft publishes no maximum, so
  :data:`MAX_VALUE` is ours. The currency must be on Microsoft's "Conversion Goal Revenue
  Currencies" list (5611; :data:`include.msads_capi.codes.CURRENCIES`). An event without a
  currency (NULL, or an empty or blank string) takes its Space's.
- An externally attributed goal needs ``ExternalAttributionCredit`` (0 to 1) and
  ``ExternalAttributionModel`` (``OfflineConversion``) → ``attribution_missing`` /
  ``attribution_invalid``; other goals never get them.
- A ``timestamp`` (zone-less) event time is ``no_time_zone``: the moment is never guessed.

The reason codes are :mod:`include.msads_capi.outcomes`'s. :class:`PipelineConfig` takes its
defaults from the constants here. pandas is imported where it is used, so that importing the
settings (every CLI command does) stays light.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from include.msads_capi import codes
from include.msads_capi.outcomes import (
    ADJUSTMENT_BEFORE_CONVERSION,
    ADJUSTMENT_IN_FUTURE,
    ATTRIBUTION_INVALID,
    ATTRIBUTION_MISSING,
    FUTURE_TIME,
    GOAL_TOO_NEW,
    INVALID_ADJUSTMENT,
    INVALID_VALUE,
    NO_TIME_ZONE,
    NOT_DUE_YET,
    OUTSIDE_WINDOW,
    READY,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from include.msads_capi.settings import PipelineConfig

#: Microsoft: the conversion time "must be within the last 90 days" at upload (5609).
MAX_AGE = timedelta(days=90)
#: Microsoft: conversions for a goal wait until it is two hours old (5615).
GOAL_MIN_AGE = timedelta(hours=2)
#: A time ahead of now by at most this waits (``not_due_yet``); further ahead, ``future_time``.
FUTURE_TOLERANCE = timedelta(minutes=5)
#: The largest value sent: ours, as Microsoft publishes no maximum (it refuses a bad value: 5610).
MAX_VALUE = 1e12
#: How long Microsoft's offline conversion reports may take to show a conversion. Microsoft says
#: "it can take up to six hours to view conversion data" (OfflineConversion); 24 hours, as the
#: product's own promise to users, is assumed to cover the reports' daily files as well.
REPORT_LAG = timedelta(hours=24)
#: ``attributed_platform`` values (trimmed, lower case) that mean "attributed to Microsoft".
MICROSOFT_PLATFORMS = frozenset({"microsoft", "microsoft ads", "microsoft_ads",
                                 "microsoft advertising", "bing", "bing ads", "msads"})

#: The frame columns the two checks read.
COLUMNS = ("goal_id", "value", "currency_code", "space_currency", "event_time",
           "goal_created_at", "externally_attributed", "external_attribution_credit",
           "external_attribution_model")


class Preflight(NamedTuple):
    """What :func:`check_row` decided for one conversion; ``reason`` None means it may be sent."""

    value: float | None
    currency: str | None
    reason: str | None
    detail: str | None
    defer_until: datetime | None  # held until then (goal_too_new, not_due_yet)
    credit: float | None  # ExternalAttributionCredit, for externally attributed goals only
    model: str | None  # ExternalAttributionModel, likewise


class FrameCheck(NamedTuple):
    """What :func:`check_frame` decided for each row of a frame, in its order."""

    clean: np.ndarray  # bool: passes every check; the others go through check_row
    values: np.ndarray  # float or None, as objects
    currencies: np.ndarray  # str or None, as objects


# ---------------------------------------------------------------- attribution to Microsoft

def is_attributed(platform: object, config: PipelineConfig) -> bool:
    """Whether an event's ``attributed_platform`` names Microsoft (trimmed, any case)."""
    return isinstance(platform, str) and platform.strip().lower() in config.attributed_platforms


def attributed(platforms: pd.Series, config: PipelineConfig) -> pd.Series:
    """:func:`is_attributed` for a column; missing values are not attributed."""
    text = platforms.astype("string").str.strip().str.lower()
    return text.isin(config.attributed_platforms).fillna(False).astype(bool)


# ---------------------------------------------------------------- shared readings

def _absent(value: object) -> bool:
    """No value: NULL, or a float NaN (pandas' "missing" after a join). The warehouse's own NaN
    arrives as a Decimal and is a value, an invalid one."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _missing(value: object) -> bool:
    """A scalar pandas counts as missing (None, NaN, <NA>, NaT, a Decimal NaN)."""
    import pandas as pd

    return bool(pd.isna(value))


def _as_float(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError, ArithmeticError):
        return math.inf  # unparseable: invalid


def _valid_amount(number: float, config: PipelineConfig) -> bool:
    return math.isfinite(number) and 0 <= number <= config.max_value


def _code(value: object) -> str:
    """A currency code as compared with Microsoft's list: trimmed, upper case; "" if none."""
    return value.strip().upper() if isinstance(value, str) else ""


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


# ---------------------------------------------------------------- column-wise

def _currencies(event: pd.Series, space: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each row's currency as :func:`_value` reads it (the event's code, else its Space's;
    "" if neither has one), and whether Microsoft's list has it. :func:`_code` runs once per
    distinct text: a column holds few."""
    import numpy as np
    import pandas as pd

    def read(column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        at, texts = pd.factorize(column)  # a missing value: -1, the "" appended
        found = [_code(text) for text in texts] + [""]
        return (np.array(found, dtype=object)[at], np.array([c != "" for c in found])[at],
                np.array([c in codes.CURRENCIES for c in found])[at])

    ours, has, ours_listed = read(event)
    theirs, _, theirs_listed = read(space)
    return np.where(has, ours, theirs), np.where(has, ours_listed, theirs_listed)


def check_frame(df: pd.DataFrame, now: datetime, config: PipelineConfig) -> FrameCheck:
    """Which rows pass every check, decided column-wise, with their value and currency.

    Rows not clean, or not knowable here, go through :func:`check_row` one by one, which also
    writes the detail; the results are the same either way. Conversions for externally
    attributed goals always go that way (they are few, and carry two more fields), and so does
    every row of a frame whose ``event_time`` is not one time-zone-aware column.
    """
    import numpy as np
    import pandas as pd

    n = len(df)
    if not isinstance(df["event_time"].dtype, pd.DatetimeTZDtype):
        nothing = np.full(n, None, dtype=object)
        return FrameCheck(np.zeros(n, dtype=bool), nothing, nothing.copy())
    now_ts = pd.Timestamp(now)
    missing, number = _amounts(df["value"])
    with np.errstate(invalid="ignore"):
        good_value = missing | (np.isfinite(number) & (number >= 0) & (number <= config.max_value))
    currency, listed = _currencies(df["currency_code"], df["space_currency"])
    good_currency = missing | listed
    times = pd.to_datetime(df["event_time"], utc=True)
    in_time = (times.notna() & (times >= now_ts - config.max_age) & (times <= now_ts)).to_numpy()
    created = pd.to_datetime(df["goal_created_at"], utc=True)
    old_enough = (created.isna() | (created + config.goal_min_age <= now_ts)).to_numpy()
    internal = ~df["externally_attributed"].fillna(False).astype(bool).to_numpy()
    clean = good_value & good_currency & in_time & old_enough & internal
    values = number.astype(object)  # Python floats, as float(value) gives them
    values[missing] = None
    currencies = currency.copy()
    currencies[missing] = None
    return FrameCheck(clean, values, currencies)


def _amounts(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Which values are absent (:func:`_absent`), and the others as numbers (:func:`_as_float`).

    A ``numeric`` column (Decimals and NULLs: the default events table) is converted at once,
    and so is a ``double precision`` or ``bigint`` one (numpy's float or int dtype); a column of
    anything else goes value by value.
    """
    import numpy as np
    import pandas as pd

    kind = column.dtype.kind if isinstance(column.dtype, np.dtype) else ""  # not pandas' own
    if kind == "f":  # a float NaN is absent (a join's "missing", or a NULL)
        number = column.to_numpy(dtype=float)
        return np.isnan(number), number
    if kind in ("i", "u"):
        return np.zeros(len(column), dtype=bool), column.to_numpy(dtype=float)
    raw = column.to_numpy(dtype=object)
    if set(map(type, raw)) <= {Decimal, type(None)}:
        try:  # a Decimal NaN is a value (an invalid one) and becomes a float NaN; sNaN raises
            missing = pd.isna(raw)  # the Decimal NaNs too, which are not absent:
            if missing.any():
                missing[missing] = [v is None for v in raw[missing]]
            return missing, np.where(missing, math.nan, raw).astype(float)
        except (TypeError, ValueError, ArithmeticError):
            pass
    missing = np.array([_absent(v) for v in raw], dtype=bool)
    return missing, np.array([math.nan if m else _as_float(v)
                              for v, m in zip(raw, missing, strict=True)], dtype=float)


# ---------------------------------------------------------------- one row

_Found = list[tuple[str, str, datetime | None]]  # (reason, detail, held until), in check order


def check_row(row: Any, now: datetime, config: PipelineConfig) -> Preflight:
    """The checks for one conversion that may be sent; the first that fails gives the reason.

    ``row`` has the attributes :data:`COLUMNS` names (a frame's ``itertuples`` row) and a
    present ``event_time``. A value that fails is not returned, nor its currency.
    """
    import pandas as pd

    event_time = pd.Timestamp(row.event_time).to_pydatetime()
    if event_time.tzinfo is None:
        # A custom events table with `timestamp` columns: the zone is never guessed.
        return Preflight(None, None, NO_TIME_ZONE, f"event_time {event_time:%Y-%m-%d %H:%M} has "
                         "no time zone (the column is timestamp, not timestamptz); write "
                         "timestamptz", None, None, None)
    found: _Found = []
    _goal_age(row, now, config, found)
    _event_time(event_time, now, config, found)
    value, currency = _value(row, config, found)
    credit, model = _attribution(row, found)
    if not found:
        return Preflight(value, currency, None, None, None, credit, model)
    reason, detail, defer = found[0]
    if reason == INVALID_VALUE:
        value = currency = None
    return Preflight(value, currency, reason, detail, defer, credit, model)


def _goal_age(row: Any, now: datetime, config: PipelineConfig, found: _Found) -> None:
    created = row.goal_created_at
    if not isinstance(created, datetime) or _missing(created):
        return
    ready_at = created + config.goal_min_age
    if now < ready_at:
        found.append((GOAL_TOO_NEW, f"goal {row.goal_id} was created at "
                      f"{created:%Y-%m-%d %H:%M} UTC; Microsoft accepts conversions from "
                      f"{ready_at:%H:%M} UTC", ready_at))


def _event_time(event_time: datetime, now: datetime, config: PipelineConfig,
                found: _Found) -> None:
    if event_time < now - config.max_age:
        found.append((OUTSIDE_WINDOW, f"the event is {(now - event_time).days} day(s) old; "
                      f"Microsoft accepts conversions up to {config.max_age.days} days old",
                      None))
    elif event_time > now + config.future_tolerance:
        found.append((FUTURE_TIME, f"event_time {event_time:%Y-%m-%d %H:%M} UTC is more than "
                      f"{_minutes(config.future_tolerance)} ahead of now "
                      f"({now:%Y-%m-%d %H:%M} UTC)", None))
    elif event_time > now:
        found.append((NOT_DUE_YET, f"event_time {event_time:%H:%M:%S} UTC is ahead of now "
                      f"({now:%H:%M:%S} UTC); it is sent once that time has passed",
                      event_time))


def _value(row: Any, config: PipelineConfig, found: _Found) -> tuple[float | None, str | None]:
    """The value as a number and its currency (the event's, else its Space's); None, None
    without a value."""
    raw = row.value
    if _absent(raw):
        return None, None
    if isinstance(raw, Decimal) and raw.is_nan():
        found.append((INVALID_VALUE, "value is NaN (not a number)", None))
        return None, None
    number = _as_float(raw)
    currency = _code(row.currency_code) or _code(row.space_currency)
    if not _valid_amount(number, config):
        found.append((INVALID_VALUE, f"value {raw} is not a non-negative amount", None))
    elif currency not in codes.CURRENCIES:
        found.append((INVALID_VALUE, f"currency {currency!r} is not one Microsoft takes for "
                      f"conversions (its list: {codes.CURRENCY_LIST_URL})", None))
    return number, currency


def _attribution(row: Any, found: _Found) -> tuple[float | None, str | None]:
    """ExternalAttributionCredit and Model, sent only for an externally attributed goal,
    which needs both (and a credit from 0 to 1)."""
    flag = row.externally_attributed
    if _missing(flag) or not bool(flag):
        return None, None
    raw_credit, raw_model = row.external_attribution_credit, row.external_attribution_model
    model = raw_model.strip() if isinstance(raw_model, str) and raw_model.strip() else None
    credit = None if _missing(raw_credit) else _as_float(raw_credit)
    if credit is None or model is None:
        absent = " and ".join(name for name, v in (("external_attribution_credit", credit),
                                                   ("external_attribution_model", model))
                              if v is None)
        found.append((ATTRIBUTION_MISSING, f"goal {row.goal_id} uses external attribution; "
                      f"the event has no {absent}", None))
    elif not 0 <= credit <= 1:
        found.append((ATTRIBUTION_INVALID, f"external_attribution_credit {raw_credit} is not "
                      "between 0 and 1", None))
    return credit, model



# ---------------------------------------------------------------- adjustments

#: ``adjustment_type`` values (trimmed, lower case) and what Microsoft calls them.
ADJUSTMENT_TYPES = {"restate": "Restate", "retract": "Retract"}


def adjustment_kind(value: object) -> str:
    """An ``adjustment_type`` as compared: trimmed, lower case ("" if none)."""
    return value.strip().lower() if isinstance(value, str) else ""


def check_adjustment(adj: dict, now: datetime, config: PipelineConfig) -> tuple[str, str] | None:
    """The first failed check of an adjustment that does not depend on a goal:
    (reason, detail), or None. ``ApplyOfflineConversionAdjustments``: a restate needs a value
    (5625) and a retract must have none (5624, so its value is never sent); the value follows
    the conversions' rules (5610); an adjustment time in the future is refused (5622)."""
    kind = adjustment_kind(adj["adjustment_type"])
    if kind not in ADJUSTMENT_TYPES:
        return INVALID_ADJUSTMENT, (f"adjustment_type {adj['adjustment_type']!r} is not "
                                    "'restate' or 'retract'")
    if kind == "restate":
        raw = adj["adjusted_value"]
        if _absent(raw):
            return INVALID_ADJUSTMENT, "a restate needs adjusted_value (the new value)"
        if not _valid_amount(_as_float(raw), config):
            return INVALID_VALUE, f"adjusted_value {raw} is not a non-negative amount"
    if adj["adjusted_at"] > now + config.future_tolerance:
        return ADJUSTMENT_IN_FUTURE, (f"adjusted_at {adj['adjusted_at']:%Y-%m-%d %H:%M} UTC is "
                                      f"more than {_minutes(config.future_tolerance)} ahead of "
                                      f"now ({now:%Y-%m-%d %H:%M} UTC)")
    return None


def check_adjustment_target(adj: dict, conversion_time: datetime, original_currency: str | None,
                            now: datetime, config: PipelineConfig,
                            ) -> tuple[str, str, float | None, str | None]:
    """The checks against one uploaded original: (reason, detail, value, currency), the reason
    ``ready`` when it may be sent, ``not_due_yet`` while its time is a little ahead. Microsoft:
    not earlier than the conversion (5620); the conversion within the last 90 days (5609,
    5623); a restate's currency on Microsoft's list (5611), the original's when empty."""
    if adj["adjusted_at"] < conversion_time:
        return (ADJUSTMENT_BEFORE_CONVERSION, f"adjusted_at {adj['adjusted_at']:%Y-%m-%d %H:%M} "
                f"UTC is before the conversion ({conversion_time:%Y-%m-%d %H:%M} UTC)",
                None, None)
    if conversion_time < now - config.max_age:
        return (OUTSIDE_WINDOW, f"the conversion is {(now - conversion_time).days} day(s) old; "
                f"Microsoft adjusts conversions up to {config.max_age.days} days old", None, None)
    value = currency = None
    if adjustment_kind(adj["adjustment_type"]) == "restate":
        value = _as_float(adj["adjusted_value"])
        currency = _code(adj.get("currency_code")) or _code(original_currency)
        if currency not in codes.CURRENCIES:
            return (INVALID_VALUE, f"currency {currency!r} is not one Microsoft takes for "
                    f"conversions (its list: {codes.CURRENCY_LIST_URL})", None, None)
    if adj["adjusted_at"] > now:
        return (NOT_DUE_YET, f"adjusted_at {adj['adjusted_at']:%H:%M:%S} UTC is ahead of now; "
                "it is sent once that time has passed", value, currency)
    return READY, "", value, currency
