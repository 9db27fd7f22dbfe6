"""Stage 2, plan: decide per event and per mapped goal, in the order of the troubleshooting list.

1. CAPI off for the event's Space → ``capi_off`` (whole event; not sent later either);
2. no enabled mapping for the event name in its Space → ``not_mapped``;
3. mapping or goal broken → ``goal_missing`` (held while goals are not fetched yet);
4. account not active → ``account_inactive`` (held up to 7 days, then final);
5. goal paused in Microsoft Advertising → ``goal_paused`` (held up to 7 days, then final);
6. send rule ``attributed_only`` and not attributed to Microsoft → ``not_attributed``.
What passes goes to the outbox with the checks that come after identity hashing worked out in
advance (``goal_too_new``, ``no_time_zone``, ``outside_window``, ``future_time`` /
``not_due_yet``, ``invalid_value``, ``attribution_missing`` / ``attribution_invalid``); the hash
stage applies them after ``no_identifier``. Raw email and phone are not read here.

Microsoft's rules, as documented (docs/pipeline.md): a conversion more than 90 days old at upload
is refused; the goal's conversion window runs from the click, which only Microsoft knows, so it
is not checked here; a time in the future is refused, so a time a little ahead of now waits.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from include.msads_capi import rules
from include.msads_capi.events import select_optional
from include.msads_capi.ledger import Outgoing, Planned, plan_rows
from include.msads_capi.outcomes import (
    ACCOUNT_INACTIVE,
    CAPI_OFF,
    EVENT_DELETED,
    GOAL_MISSING,
    GOAL_PAUSED,
    NOT_ATTRIBUTED,
    NOT_MAPPED,
    READY,
)
from include.msads_capi.pipeline.adjustments import plan_adjustments
from include.msads_capi.settings import PipelineConfig, events_table
from include.msads_capi.sql import frame
from include.msads_capi.warehouse import Warehouse, transaction

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

_MAPPINGS = """
SELECT m.account_id, m.goal_id, a.space_id, m.event_name, m.send_rule, m.broken_reason,
       a.customer_id, a.status AS account_status, a.status_reason AS account_reason,
       a.goals_fetched_at IS NOT NULL AS goals_fetched, g.goal_id IS NOT NULL AS goal_present,
       g.missing_since, g.status AS goal_status, COALESCE(g.name, m.goal_name) AS goal_name,
       g.created_at AS goal_created_at, g.window_minutes,
       COALESCE(g.externally_attributed, false) AS externally_attributed
FROM msads.mappings m
JOIN msads.accounts a USING (account_id)
LEFT JOIN msads.goals g ON g.account_id = m.account_id AND g.goal_id = m.goal_id
WHERE m.enabled
"""


# A chunk: the run's claimed ledger rows in event order after the last event read, then the
# events they name and what earlier runs already decided for them, by the same event range.
_CLAIMED = ("FROM msads.results WHERE run_id = %(run)s AND status = 'pending' "
            "AND reason = 'claimed' AND event_id > %(after)s")
_LEDGER = ("SELECT event_id, account_id, goal_id, first_seen_at, attempts " + _CLAIMED
           + " ORDER BY event_id LIMIT %(n)s")
_LEDGER_OF = ("SELECT event_id, account_id, goal_id, first_seen_at, attempts FROM msads.results "
              "WHERE run_id = %(run)s AND status = 'pending' AND reason = 'claimed' "
              "AND event_id = %(e)s")
_EVENTS = ("SELECT event_id, space_id, event_name, event_time, value, currency_code, msclkid, "
           "attributed_platform, {optional} FROM {events} WHERE event_id IN (SELECT event_id "
           + _CLAIMED + " AND event_id <= %(upto)s)")
_DECIDED = ("SELECT r.event_id, r.account_id, r.goal_id FROM msads.results r WHERE r.event_id "
            "IN (SELECT event_id " + _CLAIMED + " AND event_id <= %(upto)s) AND r.goal_id <> 0 "
            "AND NOT (r.run_id = %(run)s AND r.reason = 'claimed')")


def load_configuration(conn: psycopg.Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
    spaces = frame(conn.execute(
        "SELECT space_id, capi_enabled, currency_code AS space_currency FROM msads.spaces"))
    mappings = frame(conn.execute(_MAPPINGS))
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
               decided: set[tuple]) -> tuple[list[Planned], pd.DataFrame, list[tuple]]:
        """Placeholders → final per-event outcomes, or one candidate row per mapped goal."""
        finals, drop = [], []
        holders = ledger[ledger.goal_id == 0].merge(events, on="event_id", how="left",
                                                    suffixes=("", "_e"))
        # plain dicts: a pandas lookup per event (.loc, get_group) cost ~0.3 ms each
        capi_on = dict(zip(self.spaces.index, self.spaces.capi_enabled.astype(bool),
                           strict=True))
        maps = {key: list(zip(group.account_id, group.goal_id, strict=True))
                for key, group in self.mappings.groupby(["space_id", "event_name"])}
        pairs: list[tuple] = []
        columns = [holders[c].tolist() for c in ("event_id", "space_id", "event_name",
                                                  "first_seen_at", "attempts")]
        gone = holders["event_time"].isna().tolist()
        for i, (event_id, space_id, name, first_seen, attempts) in enumerate(zip(
                *columns, strict=True)):
            reason = None
            if gone[i]:
                reason, detail = EVENT_DELETED, None
            elif space_id not in capi_on:
                reason, detail = NOT_MAPPED, (f"Space {space_id!r} is not configured; add it "
                                                "with msads space add")
            elif not capi_on[space_id]:
                reason, detail = CAPI_OFF, _capi_off(space_id)
            elif (candidates := maps.get((space_id, name))) is None:
                reason, detail = NOT_MAPPED, (f"no enabled mapping sends {name!r} in "
                                                f"Space {space_id}")
            if reason is not None:
                finals.append(self._final(holders.iloc[i], 0, 0, reason, detail))
                continue
            drop.append((event_id, 0, 0))
            pairs.extend((event_id, a, g, first_seen, attempts) for a, g in candidates
                         if (event_id, a, g) not in decided)
        return finals, pd.DataFrame(pairs, columns=[
            "event_id", "account_id", "goal_id", "first_seen_at", "attempts"]) if pairs else (
            pd.DataFrame()), drop

    def _final(self, row: pd.Series, account_id: int, goal_id: int, reason: str, detail: str | None,
               status: str = "skipped") -> Planned:
        return Planned(row.event_id, account_id, goal_id, getattr(row, "space_id", None),
                       getattr(row, "event_name", None), status, reason, detail, None, self.now,
                       None, None, None, None, self.run_id, self.now, row.first_seen_at,
                       row.attempts)

    # ---------------------------------------------------------------- goal level

    def decide(self, pairs: pd.DataFrame,
               events: pd.DataFrame) -> tuple[list[Planned], list[Outgoing]]:
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
        paused = mapped & df["goal_status"].eq("Paused")
        not_attributed = mapped & df["send_rule"].eq("attributed_only") & ~rules.attributed(
            df["attributed_platform"], cfg)
        first_seen = pd.to_datetime(df["first_seen_at"], utc=True)
        now_ts = pd.Timestamp(now)
        unverified_over = first_seen + cfg.unverified_hold <= now_ts
        inactive_over = first_seen + cfg.account_hold <= now_ts
        paused_over = first_seen + cfg.goal_hold <= now_ts

        reason = np.select(
            [missing_event, capi_off, ~mapped, broken, unverified, inactive, paused,
             not_attributed],
            [EVENT_DELETED, CAPI_OFF, NOT_MAPPED, GOAL_MISSING, GOAL_MISSING,
             ACCOUNT_INACTIVE, GOAL_PAUSED, NOT_ATTRIBUTED], default=READY)
        held = (((reason == GOAL_MISSING) & unverified.to_numpy() & ~unverified_over.to_numpy()
                 & ~broken.to_numpy())
                | ((reason == ACCOUNT_INACTIVE) & ~inactive_over.to_numpy())
                | ((reason == GOAL_PAUSED) & ~paused_over.to_numpy()))
        df["reason"] = reason
        df["held"] = held
        hold_until = np.select(
            [df["reason"].eq(ACCOUNT_INACTIVE), df["reason"].eq(GOAL_PAUSED)],
            [first_seen + cfg.account_hold, first_seen + cfg.goal_hold],
            default=first_seen + cfg.unverified_hold)
        clean, values, currencies = rules.check_frame(df, now, cfg)
        times = [pd.Timestamp(t).to_pydatetime() if not pd.isna(t) else None
                 for t in df["event_time"]] if not clean.any() else list(
            pd.to_datetime(df["event_time"], utc=True).dt.to_pydatetime())
        # Plain lists, read once: iterating a frame row by row costs ~10x more per value.
        col = {c: df[c].tolist() for c in ("event_id", "space_id", "event_name", "goal_name",
                                           "msclkid", "first_seen_at", "attempts")}
        accounts, goals = df["account_id"].astype("int64").tolist(), df["goal_id"].astype(
            "int64").tolist()
        customers = df["customer_id"].tolist()
        ready = reason == READY
        slow = np.flatnonzero(~(ready & clean))  # decided here, or checked one by one
        rows = dict(zip(slow.tolist(), df.iloc[slow].itertuples(index=False), strict=True))
        ledger: list[Planned] = []
        outbox: list[Outgoing] = []
        run_id = self.run_id
        for i, event_id in enumerate(col["event_id"]):
            if not ready[i]:
                row = rows[i]
                status, next_at, decided_at = "skipped", None, now
                if held[i]:
                    status, decided_at = "deferred", None
                    next_at = min(now + cfg.hold_recheck,
                                  pd.Timestamp(hold_until[i]).to_pydatetime())
                ledger.append(Planned(event_id, accounts[i], goals[i], col["space_id"][i],
                                      col["event_name"][i], status, row.reason,
                                      self._detail(row), next_at, decided_at, None, None, None,
                                      None, run_id, now, col["first_seen_at"][i],
                                      col["attempts"][i]))
                continue
            if clean[i]:  # the common case, decided column-wise by rules.check_frame
                value, currency, pre, pre_detail, defer = values[i], currencies[i], None, None, None
                credit = model = None
            else:
                value, currency, pre, pre_detail, defer, credit, model = rules.check_row(
                    rows[i], now, cfg)
            conv_time, goal_name, click = times[i], col["goal_name"][i], col["msclkid"][i]
            click = click.strip() if isinstance(click, str) else None
            ledger.append(Planned(event_id, accounts[i], goals[i], col["space_id"][i],
                                  col["event_name"][i], "pending", READY, None, None, None,
                                  goal_name, conv_time, value, currency, run_id, now,
                                  col["first_seen_at"][i], col["attempts"][i]))
            outbox.append(Outgoing(event_id, accounts[i], goals[i], int(customers[i]), run_id,
                                   goal_name, conv_time, value, currency, click or None, None,
                                   None, False, pre, pre_detail, defer, None, credit, model))
        return ledger, outbox

    def _detail(self, row: Any) -> str | None:
        reason = row.reason
        if reason == CAPI_OFF:
            return _capi_off(row.space_id)
        if reason == NOT_MAPPED:
            return (f"no enabled mapping sends {row.event_name!r} to goal {row.goal_id} of "
                    f"account {row.account_id} any more")
        if reason == GOAL_MISSING:
            if isinstance(row.broken_reason, str):
                return row.broken_reason
            if not row.goals_fetched:
                return (f"goals of account {row.account_id} have not been fetched yet, so goal "
                        f"{row.goal_id} cannot be checked; run the msads_refresh_goals DAG")
            return (f"goal {row.goal_id} is not an offline conversion goal of account "
                    f"{row.account_id} in Microsoft Advertising")
        if reason == ACCOUNT_INACTIVE:
            why = f": {row.account_reason}" if isinstance(row.account_reason, str) else ""
            return f"account {row.account_id} is {row.account_status}{why}"
        if reason == GOAL_PAUSED:
            return (f"goal {row.goal_id} ({row.goal_name}) of account {row.account_id} is paused "
                    "in Microsoft Advertising, where it counts nothing")
        if reason == NOT_ATTRIBUTED:
            platform = row.attributed_platform if isinstance(row.attributed_platform, str) else None
            return (f"attributed to {platform!r}" if platform else "not attributed to any "
                    "platform") + "; the mapping sends only events attributed to Microsoft"
        return None

def plan(warehouse: Warehouse, run_id: str, now: datetime, config: PipelineConfig) -> Counter:
    """Plan every ledger row this run claimed; returns counts per reason decided here."""
    counts: Counter = Counter()
    with transaction(warehouse) as conn:
        spaces, mappings = load_configuration(conn)
        optional = select_optional(conn)
    planner = Planner(spaces, mappings, run_id, now, config)
    after = ""
    while True:
        with transaction(warehouse) as conn:
            ledger = frame(conn.execute(_LEDGER, {"run": run_id, "after": after,
                                                   "n": config.chunk_size}))
            if ledger.empty:
                break
            if len(ledger) == config.chunk_size:  # the last event may have more rows
                last = ledger.event_id.iloc[-1]
                if ledger.event_id.iloc[0] != last:
                    ledger = ledger[ledger.event_id != last]  # read with the next chunk
                else:  # one event fills the chunk: take all its rows
                    ledger = frame(conn.execute(_LEDGER_OF, {"run": run_id, "e": last}))
            chunk = {"run": run_id, "after": after, "upto": ledger.event_id.iloc[-1]}
            after = chunk["upto"]
            events = frame(conn.execute(_EVENTS.format(events=events_table(),
                                                        optional=optional), chunk))
            events = events.drop_duplicates("event_id")
            decided = set(conn.execute(_DECIDED, chunk).fetchall())
            finals, pairs, drop = planner.expand(events, ledger, decided)
            per_goal = ledger[ledger.goal_id != 0][["event_id", "account_id", "goal_id",
                                                     "first_seen_at", "attempts"]]
            frames = [p for p in (pairs, per_goal) if not p.empty]
            all_pairs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            rows, outbox = planner.decide(all_pairs, events) if not all_pairs.empty else ([], [])
            if drop:  # placeholders become one row per goal (or their final outcome, below)
                conn.execute("DELETE FROM msads.results WHERE run_id = %(run)s AND status = "
                             "'pending' AND reason = 'claimed' AND event_id > %(after)s AND "
                             "event_id <= %(upto)s AND account_id = 0 AND goal_id = 0", chunk)
            # planned again: an earlier run may have left outbox rows for them
            again = list(per_goal[["event_id", "account_id", "goal_id"]].itertuples(
                index=False, name=None))
            plan_rows(conn, finals + rows, outbox, replanned=again)
            counts.update(r.reason for r in finals + rows)
    log.info("planned: %s", dict(counts))
    plan_adjustments(warehouse, run_id, now, config)
    return counts


def _capi_off(space_id: str) -> str:
    return f"Microsoft CAPI was off for Space {space_id} when the event was planned"
