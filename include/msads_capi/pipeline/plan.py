"""Stage 2, plan: decide per event and per mapped goal, in the order of the troubleshooting list.

1. CAPI off for the event's Space → ``capi_off`` (whole event; not sent later either);
2. no enabled mapping for the event name in its Space → ``not_mapped``;
3. mapping or goal broken → ``goal_missing`` (held while goals are not fetched yet);
4. account not active → ``account_inactive`` (held up to 7 days, then final);
5. send rule ``attributed_only`` and not attributed to Microsoft → ``not_attributed``.
What passes goes to the outbox with the checks that come after identity hashing
(``goal_too_new``, ``outside_window``, ``future_time``, ``invalid_value``) worked out in advance;
the hash stage applies them after ``no_identifier``. Raw email and phone are not read here.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd

from include.msads_capi import codes
from include.msads_capi.pipeline.config import PipelineConfig
from include.msads_capi.pipeline.store import delete_keys, upsert
from include.msads_capi.settings import events_table
from include.msads_capi.warehouse import Warehouse, transaction

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("event_id", "account_id", "goal_id", "space_id", "event_name", "status",
                  "reason", "detail", "next_attempt_at", "decided_at", "conversion_name",
                  "conversion_time", "conversion_value", "currency_code", "run_id",
                  "claimed_at", "first_seen_at", "attempts")
OUTBOX_COLUMNS = ("event_id", "account_id", "goal_id", "customer_id", "run_id",
                  "conversion_name", "conversion_time", "conversion_value", "currency_code",
                  "click_id", "email_sha256", "phone_sha256", "hashed", "preflight_reason",
                  "preflight_detail", "defer_until", "sent_at")

_MAPPINGS = """
SELECT m.account_id, m.goal_id, a.space_id, m.event_name, m.send_rule, m.broken_reason,
       a.customer_id, a.status AS account_status, a.status_reason AS account_reason,
       a.goals_fetched_at IS NOT NULL AS goals_fetched, g.goal_id IS NOT NULL AS goal_present,
       g.missing_since, g.status AS goal_status, COALESCE(g.name, m.goal_name) AS goal_name,
       g.created_at AS goal_created_at, g.window_minutes
FROM msads.mappings m
JOIN msads.accounts a USING (account_id)
LEFT JOIN msads.goals g ON g.account_id = m.account_id AND g.goal_id = m.goal_id
WHERE m.enabled
"""


def _frame(cursor) -> pd.DataFrame:
    cols = [d.name for d in cursor.description]
    return pd.DataFrame(cursor.fetchall(), columns=cols)


def _as_float(value) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError, ArithmeticError):
        return math.inf  # unparseable: flagged as invalid below


def load_configuration(conn) -> tuple[pd.DataFrame, pd.DataFrame]:
    spaces = _frame(conn.execute(
        "SELECT space_id, capi_enabled, currency_code AS space_currency FROM msads.spaces"))
    mappings = _frame(conn.execute(_MAPPINGS))
    return spaces, mappings


class Planner:
    """Plans one chunk of claimed events at a time against one snapshot of the configuration."""

    def __init__(self, spaces: pd.DataFrame, mappings: pd.DataFrame, run_id: str,
                 now: datetime, config: PipelineConfig) -> None:
        self.spaces = spaces.set_index("space_id")
        self.mappings = mappings
        self.run_id, self.now, self.config = run_id, now, config

    # ---------------------------------------------------------------- event level

    def expand(self, events: pd.DataFrame, ledger: pd.DataFrame,
               decided: set[tuple]) -> tuple[list[tuple], pd.DataFrame, list[tuple]]:
        """Placeholders → final per-event outcomes, or one candidate row per mapped goal."""
        finals, drop = [], []
        holders = ledger[ledger.goal_id == 0].merge(events, on="event_id", how="left",
                                                    suffixes=("", "_e"))
        pairs = []
        # plain dicts: a pandas lookup per event (.loc, get_group) cost ~0.3 ms each
        capi_on = dict(zip(self.spaces.index, self.spaces.capi_enabled.astype(bool),
                           strict=True))
        maps = {key: list(zip(group.account_id, group.goal_id, strict=True))
                for key, group in self.mappings.groupby(["space_id", "event_name"])}
        for row in holders.itertuples(index=False):
            key = (row.event_id, 0, 0)
            if pd.isna(row.event_time):
                finals.append(self._final(row, 0, 0, "event_deleted", None))
                continue
            if row.space_id not in capi_on:
                finals.append(self._final(row, 0, 0, "not_mapped",
                                          f"Space {row.space_id!r} is not configured; add it "
                                          "with msads space add"))
                continue
            if not capi_on[row.space_id]:
                finals.append(self._final(row, 0, 0, "capi_off",
                                          f"Microsoft CAPI was off for Space {row.space_id}"))
                continue
            candidates = maps.get((row.space_id, row.event_name))
            if candidates is None:
                finals.append(self._final(row, 0, 0, "not_mapped",
                                          f"no enabled mapping sends {row.event_name!r} in "
                                          f"Space {row.space_id}"))
                continue
            fresh = [(a, g) for a, g in candidates if (row.event_id, a, g) not in decided]
            drop.append(key)
            for a, g in fresh:
                pairs.append({"event_id": row.event_id, "account_id": a, "goal_id": g,
                              "first_seen_at": row.first_seen_at, "attempts": row.attempts})
        return finals, pd.DataFrame(pairs), drop

    def _final(self, row, account_id: int, goal_id: int, reason: str, detail: str | None,
               status: str = "skipped") -> tuple:
        return (row.event_id, account_id, goal_id, getattr(row, "space_id", None),
                getattr(row, "event_name", None), status, reason, detail, None, self.now,
                None, None, None, None, self.run_id, self.now, row.first_seen_at, row.attempts)

    # ---------------------------------------------------------------- goal level

    def decide(self, pairs: pd.DataFrame, events: pd.DataFrame) -> tuple[list[tuple], list[tuple]]:
        """Apply the per-goal rules; returns (ledger rows, outbox rows)."""
        if pairs.empty:
            return [], []
        df = pairs.merge(events, on="event_id", how="left")
        df = df.merge(self.spaces, left_on="space_id", right_index=True, how="left")
        df = df.merge(self.mappings, on=["account_id", "goal_id", "space_id", "event_name"],
                      how="left", indicator="mapped")
        now, cfg = self.now, self.config
        mapped = df["mapped"].eq("both")
        missing_event = df["event_time"].isna()
        capi_off = ~df["capi_enabled"].fillna(False).astype(bool)
        broken = mapped & (df["broken_reason"].notna() | df["missing_since"].notna()
                           | (df["goals_fetched"].fillna(False).astype(bool)
                              & ~df["goal_present"].fillna(False).astype(bool))
                           | df["goal_status"].eq("Deleted"))
        unverified = mapped & ~df["goals_fetched"].fillna(False).astype(bool)
        inactive = mapped & df["account_status"].ne("active")
        platform = df["attributed_platform"].astype("string").str.strip().str.lower()
        not_attributed = mapped & df["send_rule"].eq("attributed_only") & ~platform.isin(
            cfg.attributed_platforms).fillna(False)
        first_seen = pd.to_datetime(df["first_seen_at"], utc=True)
        now_ts = pd.Timestamp(now)
        unverified_over = first_seen + cfg.unverified_hold <= now_ts
        inactive_over = first_seen + cfg.account_hold <= now_ts

        reason = np.select(
            [missing_event, capi_off, ~mapped, broken, unverified, inactive, not_attributed],
            ["event_deleted", "capi_off", "not_mapped", "goal_missing", "goal_missing",
             "account_inactive", "not_attributed"], default="ready")
        held = ((reason == "goal_missing") & unverified.to_numpy() & ~unverified_over.to_numpy()
                & ~broken.to_numpy()) | ((reason == "account_inactive") & ~inactive_over.to_numpy())
        df["reason"] = reason
        df["held"] = held
        hold_until = np.where(df["reason"].eq("account_inactive"), first_seen + cfg.account_hold,
                              first_seen + cfg.unverified_hold)
        clean, values, currencies = self._clean(df)
        times = [pd.Timestamp(t).to_pydatetime() if not pd.isna(t) else None
                 for t in df["event_time"]] if not clean.any() else list(
            pd.to_datetime(df["event_time"], utc=True).dt.to_pydatetime())
        ledger, outbox = [], []
        for i, (row, until) in enumerate(zip(df.itertuples(index=False), hold_until,
                                             strict=True)):
            base = (row.event_id, int(row.account_id), int(row.goal_id), row.space_id,
                    row.event_name)
            tail = (self.run_id, now, row.first_seen_at, row.attempts)
            if row.reason != "ready":
                if row.held:
                    next_at = min(now + cfg.hold_recheck, pd.Timestamp(until).to_pydatetime())
                    ledger.append(base + ("deferred", row.reason, self._detail(row), next_at,
                                          None, None, None, None, None) + tail)
                else:
                    ledger.append(base + ("skipped", row.reason, self._detail(row), None, now,
                                          None, None, None, None) + tail)
                continue
            if clean[i]:  # the common case, decided column-wise in _clean
                value, currency, pre, pre_detail, defer = values[i], currencies[i], None, None, None
            else:
                value, currency, pre, pre_detail, defer = self._preflight(row)
            conv_time = times[i]
            click = row.msclkid.strip() if isinstance(row.msclkid, str) else None
            ledger.append(base + ("pending", "ready", None, None, None, row.goal_name, conv_time,
                                  value, currency) + tail)
            outbox.append((row.event_id, int(row.account_id), int(row.goal_id),
                           int(row.customer_id), self.run_id, row.goal_name, conv_time, value,
                           currency, click or None, None, None, False, pre, pre_detail, defer,
                           None))
        return ledger, outbox

    def _detail(self, row) -> str | None:
        reason = row.reason
        if reason == "capi_off":
            return f"Microsoft CAPI is off for Space {row.space_id}"
        if reason == "not_mapped":
            return (f"no enabled mapping sends {row.event_name!r} to goal {row.goal_id} of "
                    f"account {row.account_id} any more")
        if reason == "goal_missing":
            if isinstance(row.broken_reason, str):
                return row.broken_reason
            if not row.goals_fetched:
                return (f"goals of account {row.account_id} have not been fetched yet, so goal "
                        f"{row.goal_id} cannot be checked; run the msads_refresh_goals DAG")
            return (f"goal {row.goal_id} is not an offline conversion goal of account "
                    f"{row.account_id} in Microsoft Advertising")
        if reason == "account_inactive":
            why = f": {row.account_reason}" if isinstance(row.account_reason, str) else ""
            return f"account {row.account_id} is {row.account_status}{why}"
        if reason == "not_attributed":
            platform = row.attributed_platform if isinstance(row.attributed_platform, str) else None
            return (f"attributed to {platform!r}" if platform else "not attributed to any "
                    "platform") + "; the mapping sends only events attributed to Microsoft"
        return None

    def _clean(self, df: pd.DataFrame) -> tuple[np.ndarray, list, list]:
        """Which rows pass every later check, decided column-wise, with their value/currency.

        Rows not clean (or not knowable here) go through :meth:`_preflight` one by one, which
        also writes the detail; the results are the same either way.
        """
        cfg, now = self.config, pd.Timestamp(self.now)
        raw = df["value"].tolist()
        missing = np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in raw],
                           dtype=bool)
        number = np.array([math.nan if m else _as_float(v) for v, m in zip(raw, missing,
                                                                         strict=True)])
        with np.errstate(invalid="ignore"):
            good_value = missing | (np.isfinite(number) & (number >= 0)
                                    & (number <= cfg.max_value))
        event_cur = df["currency_code"].astype("string").str.strip().str.upper()
        currency = event_cur.fillna(df["space_currency"].astype("string")).fillna("")
        good_currency = missing | currency.isin(codes.CURRENCIES).to_numpy()
        aware = isinstance(df["event_time"].dtype, pd.DatetimeTZDtype)
        times = pd.to_datetime(df["event_time"], utc=True) if aware else None
        if times is None:  # naive or mixed times: _preflight looks at each one
            return np.zeros(len(df), dtype=bool), [None] * len(df), [None] * len(df)
        window = pd.to_timedelta(df["window_minutes"].astype("float64"), unit="min")
        limit = window.fillna(cfg.max_age).clip(upper=cfg.max_age)
        in_time = ((times >= now - limit) & (times <= now + cfg.future_tolerance)).to_numpy()
        created = pd.to_datetime(df["goal_created_at"], utc=True)
        old_enough = (created.isna() | (created + cfg.goal_min_age <= now)).to_numpy()
        clean = good_value & good_currency & in_time & old_enough & times.notna().to_numpy()
        values = [None if m else float(n) for m, n in zip(missing, number, strict=True)]
        currencies = [None if m else c for m, c in zip(missing, currency.tolist(), strict=True)]
        return clean, values, currencies

    def _preflight(self, row) -> tuple:
        """(value, currency, reason, detail, defer_until) for a conversion that may be sent."""
        now, cfg = self.now, self.config
        raw_value = row.value
        # A float NaN here is pandas' "no value"; the warehouse's own NaN arrives as Decimal.
        value = None if raw_value is None or (isinstance(raw_value, float)
                                              and math.isnan(raw_value)) else raw_value
        currency = None
        reasons: list[tuple[str, str, datetime | None]] = []
        created = row.goal_created_at
        if isinstance(created, datetime) and not pd.isna(created):
            ready_at = created + cfg.goal_min_age
            if now < ready_at:
                reasons.append(("goal_too_new", f"goal {row.goal_id} was created at "
                                f"{created:%Y-%m-%d %H:%M} UTC; Microsoft accepts conversions "
                                f"from {ready_at:%H:%M} UTC", ready_at))
        event_time = pd.Timestamp(row.event_time).to_pydatetime()
        if event_time.tzinfo is None:
            # A custom events table with `timestamp` columns: the zone is never guessed.
            return (None, None, "future_time", f"event_time {event_time:%Y-%m-%d %H:%M} has no "
                    "time zone (the column is timestamp, not timestamptz); write timestamptz",
                    None)
        window = timedelta(minutes=int(row.window_minutes)) if not pd.isna(
            row.window_minutes) else cfg.max_age
        limit = min(window, cfg.max_age)
        if event_time < now - limit:
            reasons.append(("outside_window", f"the event is {(now - event_time).days} day(s) "
                            f"old; the limit is {limit.days or 1} day(s)", None))
        elif event_time > now + cfg.future_tolerance:
            reasons.append(("future_time", f"event_time {event_time:%Y-%m-%d %H:%M} UTC is "
                            "in the future", None))
        if value is not None and not (isinstance(value, Decimal) and value.is_nan()):
            number = _as_float(value)
            cur_raw = row.currency_code if isinstance(row.currency_code, str) else None
            currency = (cur_raw or row.space_currency or "").strip().upper()
            if math.isnan(number) or math.isinf(number) or number < 0 or number > cfg.max_value:
                reasons.append(("invalid_value", f"value {value} is not a non-negative amount",
                                None))
            elif currency not in codes.CURRENCIES:
                reasons.append(("invalid_value", f"currency {currency!r} is not an ISO 4217 "
                                "code", None))
            value = number
        elif value is not None:
            reasons.append(("invalid_value", "value is NaN (not a number)", None))
            value = None
        if not reasons:
            return value, currency or None, None, None, None
        reason, detail, defer = reasons[0]
        return (value if reason != "invalid_value" else None,
                currency if reason != "invalid_value" else None, reason, detail, defer)


def plan(warehouse: Warehouse, run_id: str, now: datetime, config: PipelineConfig) -> Counter:
    """Plan every ledger row this run claimed; returns counts per reason decided here."""
    counts: Counter = Counter()
    with transaction(warehouse) as conn:
        spaces, mappings = load_configuration(conn)
    planner = Planner(spaces, mappings, run_id, now, config)
    last = ""
    while True:
        with transaction(warehouse) as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT DISTINCT event_id FROM msads.results WHERE run_id = %s AND "
                "reason = 'claimed' AND status = 'pending' AND event_id > %s "
                "ORDER BY event_id LIMIT %s", (run_id, last, config.chunk_size)).fetchall()]
            if not ids:
                break
            last = ids[-1]
            events = _frame(conn.execute(
                f"SELECT event_id, space_id, event_name, event_time, value, currency_code, "
                f"msclkid, attributed_platform FROM {events_table()} WHERE event_id = ANY(%s)",
                (ids,)))
            events = events.drop_duplicates("event_id")
            ledger = _frame(conn.execute(
                "SELECT event_id, account_id, goal_id, first_seen_at, attempts FROM msads.results "
                "WHERE run_id = %s AND reason = 'claimed' AND status = 'pending' "
                "AND event_id = ANY(%s)", (run_id, ids)))
            decided = set(conn.execute(
                "SELECT event_id, account_id, goal_id FROM msads.results WHERE event_id = ANY(%s) "
                "AND NOT (run_id = %s AND reason = 'claimed') AND goal_id <> 0",
                (ids, run_id)).fetchall())
            finals, pairs, drop = planner.expand(events, ledger, decided)
            per_goal = ledger[ledger.goal_id != 0][["event_id", "account_id", "goal_id",
                                                     "first_seen_at", "attempts"]]
            frames = [p for p in (pairs, per_goal) if not p.empty]
            all_pairs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            rows, outbox = planner.decide(all_pairs, events) if not all_pairs.empty else ([], [])
            if drop:  # placeholders that became one row per goal
                conn.execute("DELETE FROM msads.results WHERE run_id = %s AND reason = 'claimed' "
                             "AND account_id = 0 AND goal_id = 0 AND event_id = ANY(%s)",
                             (run_id, [key[0] for key in drop]))
            upsert(conn, "msads.results", RESULT_COLUMNS, finals + rows, touch_updated_at=True)
            if not per_goal.empty:  # planned again: an earlier run may have left outbox rows
                delete_keys(conn, "msads.outbox", list(per_goal[["event_id", "account_id",
                                                                 "goal_id"]].itertuples(
                                                                     index=False, name=None)))
            upsert(conn, "msads.outbox", OUTBOX_COLUMNS, outbox)
            counts.update(r[6] for r in finals + rows)
    log.info("planned: %s", dict(counts))
    return counts
