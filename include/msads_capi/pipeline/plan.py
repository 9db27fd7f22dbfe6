"""Stage 2, plan: decide per event and per mapped goal, in the order of the troubleshooting list.

1. CAPI off for the event's Space → ``capi_off`` (whole event; not sent later either);
2. no enabled mapping for the event name in its Space → ``not_mapped``;
3. mapping or goal broken → ``goal_missing`` (held while goals are not fetched yet);
4. account not active → ``account_inactive`` (held up to 7 days, then final);
5. goal paused in Microsoft Advertising → ``goal_paused`` (held up to 7 days, then final);
6. send rule ``attributed_only`` and not attributed to Microsoft → ``not_attributed``.
What passes is checked against Microsoft's rules (``goal_too_new``, ``no_time_zone``,
``outside_window``, ``future_time`` / ``not_due_yet``, ``invalid_value``,
``attribution_missing`` / ``attribution_invalid``), and its identifiers are hashed in the same
pass, before anything is written (:func:`include.msads_capi.pipeline.hashing.hash_frame`, the
hash stage's own checks: ``no_identifier`` comes before the rules above). What may be sent goes
to the outbox hashed (a new event's conversion gets its ledger row only once it is decided,
by the upload); everything else gets its outcome in the ledger. Each chunk is written once:
the ledger rows and the outbox rows, by COPY, the common case built column-wise. Raw
email and phone are read from the events table into this process and only their SHA-256 hashes
are written.

Microsoft's rules, as documented (docs/pipeline.md): a conversion more than 90 days old at upload
is refused; the goal's conversion window runs from the click, which only Microsoft knows, so it
is not checked here; a time in the future is refused, so a time a little ahead of now waits.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from include.msads_capi import rules
from include.msads_capi.events import select_optional
from include.msads_capi.ledger import Decided, Outgoing, Planned, ReadyFrames, plan_rows
from include.msads_capi.microsoft.client import MAX_CONVERSIONS_PER_CALL
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
from include.msads_capi.pipeline.hashing import hash_frame
from include.msads_capi.pipeline.pickup import (
    EVENTS,
    advance,
    cursor_position,
    lock_cursor,
    same_position,
)
from include.msads_capi.settings import PipelineConfig, events_table
from include.msads_capi.sql import frame, query
from include.msads_capi.warehouse import Warehouse, connect, transaction

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

_MAPPING_KEY = ("account_id", "goal_id", "space_id", "event_name")

_MAPPINGS = """
SELECT m.account_id, m.goal_id, a.space_id, m.event_name, m.send_rule, m.broken_reason,
       a.customer_id, a.status AS account_status, a.status_reason AS account_reason,
       a.goals_fetched_at IS NOT NULL AS goals_fetched, g.goal_id IS NOT NULL AS goal_present,
       g.missing_since, g.status AS goal_status, COALESCE(g.name, m.goal_name) AS goal_name,
       g.created_at AS goal_created_at, g.window_minutes,
       COALESCE(g.externally_attributed, false) AS externally_attributed,
       g.enhanced_conversions IS NOT FALSE AS enhanced  -- unknown until goals are refreshed
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
           "attributed_platform, email, phone, {optional} FROM {events} WHERE event_id IN (SELECT event_id "
           + _CLAIMED + " AND event_id <= %(upto)s)")
_DECIDED = ("SELECT r.event_id, r.account_id, r.goal_id FROM msads.results r WHERE r.event_id "
            "IN (SELECT event_id " + _CLAIMED + " AND event_id <= %(upto)s) AND r.goal_id <> 0 "
            "AND NOT (r.run_id = %(run)s AND r.reason = 'claimed') "
            "UNION SELECT p.event_id, p.account_id, p.goal_id FROM msads.outbox_pending p "
            "WHERE p.event_id IN (SELECT event_id " + _CLAIMED + " AND event_id <= %(upto)s)")


def load_configuration(conn: psycopg.Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
    spaces = frame(conn.execute(
        "SELECT space_id, capi_enabled, currency_code AS space_currency, phone_region "
        "FROM msads.spaces"))
    mappings = frame(conn.execute(_MAPPINGS))
    return spaces, mappings


class Planner:
    """Plans one chunk of claimed events at a time against one snapshot of the configuration."""

    def __init__(self, spaces: pd.DataFrame, mappings: pd.DataFrame, run_id: str,
                 now: datetime, config: PipelineConfig) -> None:
        self.spaces = spaces.set_index("space_id")
        self.mappings = mappings
        self.run_id, self.now, self.config = run_id, now, config
        # an enabled mapping by its key (unique: its account has one Space, and the table
        # one row per account, goal and event name), and the columns the rules read from it
        self._mapping_at = pd.MultiIndex.from_frame(mappings[list(_MAPPING_KEY)])
        self._mapping_columns = mappings.drop(columns=list(_MAPPING_KEY))
        # the (Space, event name) pairs some mapping sends; when each has one mapping, the
        # n-th pair is the n-th mapping
        names = mappings[["space_id", "event_name"]]
        self._one_goal_each = not names.duplicated().any()
        self._names = pd.MultiIndex.from_frame(names.drop_duplicates())
        self._enhanced = mappings.drop_duplicates(["account_id", "goal_id"]).set_index(
            ["account_id", "goal_id"])["enhanced"]

    # ---------------------------------------------------------------- event level

    def expand(self, events: pd.DataFrame, ledger: pd.DataFrame | None,
               decided: set[tuple]) -> tuple[list[Planned], pd.DataFrame, int]:
        """Placeholders → final per-event outcomes, or one candidate row per mapped goal; also
        how many placeholders became candidates. ``ledger`` None: each event is new, with a
        placeholder first seen now."""
        if ledger is None:
            holders = events.assign(account_id=0, goal_id=0, first_seen_at=pd.Timestamp(
                self.now), attempts=0)
        else:
            holders = ledger[ledger.goal_id == 0].merge(events, on="event_id", how="left",
                                                        suffixes=("", "_e"))
        if holders.empty:
            return [], pd.DataFrame(), 0
        capi_on = self.spaces["capi_enabled"].astype(bool)
        space = holders["space_id"]
        known = space.isin(capi_on.index).to_numpy()
        # as sets: mapping an Arrow string column looks each value up as a Python object
        on = space.isin(capi_on.index[capi_on.to_numpy()]).to_numpy()
        named = self._names.get_indexer(pd.MultiIndex.from_arrays(
            [holders["space_id"], holders["event_name"]]))
        mapped = named >= 0
        why = np.select([holders["event_time"].isna().to_numpy(), ~known, ~on, ~mapped],
                        ["deleted", "unknown", "off", "unmapped"], default="")
        final = why != ""
        finals = [self._final(row, 0, 0, *_event_outcome(label, row))
                  for label, row in zip(why[final], holders[final].itertuples(
                      index=False), strict=True)] if final.any() else []
        go = why == ""
        passing = holders[go] if not go.all() else holders
        if self._one_goal_each:  # each passing event's one goal, by position
            at = named[go]
            pairs = pd.DataFrame({
                "event_id": passing["event_id"].array,
                "account_id": self.mappings["account_id"].to_numpy()[at],
                "goal_id": self.mappings["goal_id"].to_numpy()[at],
                "first_seen_at": passing["first_seen_at"].array,
                "attempts": passing["attempts"].array})
        else:
            pairs = passing[["event_id", "space_id", "event_name", "first_seen_at",
                             "attempts"]].merge(
                self.mappings[["space_id", "event_name", "account_id", "goal_id"]],
                on=["space_id", "event_name"])[
                ["event_id", "account_id", "goal_id", "first_seen_at", "attempts"]]
        if decided and not pairs.empty:
            done = pd.MultiIndex.from_tuples(list(decided))
            keys = pd.MultiIndex.from_frame(pairs[["event_id", "account_id", "goal_id"]])
            pairs = pairs[~keys.isin(done)]
        return finals, pairs.reset_index(drop=True), len(passing)

    def _final(self, row: Any, account_id: int, goal_id: int, reason: str, detail: str | None,
               status: str = "skipped") -> Planned:
        space, name = getattr(row, "space_id", None), getattr(row, "event_name", None)
        return Planned(row.event_id, account_id, goal_id, space if isinstance(space, str) else None,
                       name if isinstance(name, str) else None, status, reason, detail, None,
                       self.now, None, None, None, None, self.run_id, self.now, row.first_seen_at,
                       int(row.attempts))

    # ---------------------------------------------------------------- goal level

    def decide(self, pairs: pd.DataFrame, events: pd.DataFrame,
               ) -> tuple[list[Planned], list[Outgoing], ReadyFrames]:
        """Apply the per-goal rules; returns the ledger and outbox rows decided one by one, and
        those of the conversions that passed every check as frames."""
        if pairs.empty:
            return [], [], ReadyFrames(None, None)
        df = self._joined(pairs, events)
        now, cfg = self.now, self.config
        mapped = df["mapped"]
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
        clean, values, currencies = rules.check_frame(df, now, cfg)
        ready = reason == READY
        fast = ready & clean  # the common case, decided column-wise by rules.check_frame
        slow = np.flatnonzero(~fast)
        ledger, outbox = self._one_by_one(df, slow, held) if len(slow) else ([], [])
        if fast.all():  # nothing to leave out: no copy
            return ledger, outbox, self._ready_frames(df, values, currencies)
        return ledger, outbox, self._ready_frames(df[fast], values[fast], currencies[fast])

    def _joined(self, pairs: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
        """Each pair with its event's columns, its Space's and its mapping's, as left joins
        give them (none found: empty columns), and ``mapped``: an enabled mapping sends it.

        The rows are found by position: each merge copied every column it carried, so three
        of them cost more than all the rules. The raw email and phone stay out: the rules do
        not read them (:meth:`hash_outgoing` takes them for what may be sent).
        """
        read = events.drop(columns=["email", "phone"], errors="ignore")
        event = _rows(read.drop(columns="event_id"),
                      pd.Index(read["event_id"]).get_indexer(pairs["event_id"]))
        space = _rows(self.spaces, self.spaces.index.get_indexer(event["space_id"]))
        at = self._mapping_at.get_indexer(pd.MultiIndex.from_arrays(
            [pairs["account_id"], pairs["goal_id"], event["space_id"], event["event_name"]]))
        df = pd.concat([pairs.reset_index(drop=True), event, space,
                        _rows(self._mapping_columns, at)], axis=1)
        df["mapped"] = at >= 0
        return df

    def hash_outgoing(self, rows: list[Planned], outbox: list[Outgoing], ready: ReadyFrames,
                      events: pd.DataFrame, coverage: Counter,
                      ) -> tuple[list[Planned], ReadyFrames]:
        """Hash what may be sent, and decide what cannot be, before anything is written.

        The checks after hashing (no identifier, enhanced conversions off, what ``check_row``
        found) are the hash stage's own (:func:`hash_frame`); the rows they decide leave the
        outbox and take their outcome in the ledger. Returns the ledger rows decided one by one
        and the frames of the rest: every outbox row comes out hashed.
        """
        parts = [f for f in (ready.outbox, pd.DataFrame(outbox, columns=list(Outgoing._fields))
                             if outbox else None) if f is not None and len(f)]
        if not parts:
            return rows, ready
        out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        key = ["event_id", "account_id", "goal_id"]
        # each row's event and Space, by position (as left joins: none found, empty columns)
        person = _rows(events[["email", "phone", "space_id"]],
                       pd.Index(events["event_id"]).get_indexer(out["event_id"]))
        region = _rows(self.spaces[["phone_region"]],
                       self.spaces.index.get_indexer(person["space_id"]))
        chunk = pd.concat([out[[*key, "click_id", "preflight_reason", "preflight_detail",
                                "defer_until", "conversion_name"]].reset_index(drop=True),
                           person[["email", "phone"]], region], axis=1)
        chunk["enhanced"] = self._enhanced.reindex(pd.MultiIndex.from_frame(
            chunk[["account_id", "goal_id"]])).fillna(True).to_numpy(bool)
        done = hash_frame(chunk, self.now)
        del chunk, person
        coverage.update(done.coverage)
        sent = out.take(done.kept).reset_index(drop=True)
        sent["email_sha256"] = done.ready["email_sha256"].array
        sent["phone_sha256"] = done.ready["phone_sha256"].array
        sent["hashed"] = True
        fast = ready.ledger
        if done.decided:
            decided = {d[:3]: d for d in done.decided}
            if fast is not None:
                hit = pd.MultiIndex.from_frame(fast[key]).isin(list(decided))
                rows = rows + [Planned(*r) for r in fast[hit].itertuples(index=False, name=None)]
                fast = fast[~hit]
            rows = [_outcome(r, decided.get(r[:3])) for r in rows]
        return rows, ReadyFrames(fast, sent)

    def _hold_until(self, row: Any) -> datetime:
        """When a held row's hold ends: 7 days for an inactive account or a paused goal, the
        unverified-goal hold otherwise (``PipelineConfig``)."""
        hold = {ACCOUNT_INACTIVE: self.config.account_hold,
                GOAL_PAUSED: self.config.goal_hold}.get(row.reason, self.config.unverified_hold)
        return pd.to_datetime(row.first_seen_at, utc=True).to_pydatetime() + hold

    def _ready_frames(self, df: pd.DataFrame, values: np.ndarray,
                      currencies: np.ndarray) -> ReadyFrames:
        """Ledger and outbox rows of conversions that passed every check, built column-wise."""
        n = len(df)
        none = pd.Series([None] * n, index=df.index, dtype=object)
        times = pd.to_datetime(df["event_time"], utc=True)
        clicks = df["msclkid"].astype("string").str.strip()  # the events' text column
        blank = clicks.fillna("").eq("").to_numpy(bool)
        clicks = clicks.to_numpy(dtype=object, na_value=None)
        clicks[blank] = None
        keys = {"event_id": df["event_id"], "account_id": df["account_id"].astype("int64"),
                "goal_id": df["goal_id"].astype("int64")}
        sent = {"conversion_name": df["goal_name"], "conversion_time": times,
                "conversion_value": pd.Series(values, index=df.index, dtype=object),
                "currency_code": pd.Series(currencies, index=df.index, dtype=object)}
        ledger = pd.DataFrame({
            **keys, "space_id": df["space_id"], "event_name": df["event_name"],
            "status": "pending", "reason": READY, "detail": none, "next_attempt_at": none,
            "decided_at": none, **sent, "run_id": self.run_id,
            "claimed_at": pd.Timestamp(self.now), "first_seen_at": pd.to_datetime(
                df["first_seen_at"], utc=True), "attempts": df["attempts"].astype("int64")},
            columns=list(Planned._fields), copy=False)
        outbox = pd.DataFrame({
            **keys, "customer_id": df["customer_id"].astype("int64"), "run_id": self.run_id,
            **sent, "click_id": clicks, "email_sha256": none, "phone_sha256": none,
            "hashed": False, "preflight_reason": none, "preflight_detail": none,
            "defer_until": none, "sent_at": none, "attribution_credit": none,
            "attribution_model": none, "space_id": df["space_id"],
            "event_name": df["event_name"], "claimed_at": ledger["claimed_at"],
            "first_seen_at": ledger["first_seen_at"], "attempts": ledger["attempts"]},
            columns=list(Outgoing._fields), copy=False)
        return ReadyFrames(ledger, outbox) if n else ReadyFrames(None, None)

    def _one_by_one(self, df: pd.DataFrame, slow: np.ndarray,
                    held: np.ndarray) -> tuple[list[Planned], list[Outgoing]]:
        """The rows decided here with a detail, and the ready rows ``rules.check_row`` checks."""
        now, cfg, run_id = self.now, self.config, self.run_id
        ledger: list[Planned] = []
        outbox: list[Outgoing] = []
        for i, row in zip(slow.tolist(), df.iloc[slow].itertuples(index=False), strict=True):
            accounts, goals = int(row.account_id), int(row.goal_id)
            if row.reason != READY:
                status, next_at, decided_at = "skipped", None, now
                if held[i]:
                    status, decided_at = "deferred", None
                    next_at = min(now + cfg.hold_recheck, self._hold_until(row))
                ledger.append(Planned(row.event_id, accounts, goals, row.space_id,
                                      row.event_name, status, row.reason, self._detail(row),
                                      next_at, decided_at, None, None, None, None, run_id, now,
                                      row.first_seen_at, int(row.attempts)))
                continue
            value, currency, pre, pre_detail, defer, credit, model = rules.check_row(row, now, cfg)
            conv_time = pd.Timestamp(row.event_time).to_pydatetime()
            click = row.msclkid.strip() if isinstance(row.msclkid, str) else None
            ledger.append(Planned(row.event_id, accounts, goals, row.space_id, row.event_name,
                                  "pending", READY, None, None, None, row.goal_name, conv_time,
                                  value, currency, run_id, now, row.first_seen_at,
                                  int(row.attempts)))
            outbox.append(Outgoing(row.event_id, accounts, goals, int(row.customer_id), run_id,
                                   row.goal_name, conv_time, value, currency, click or None,
                                   None, None, False, pre, pre_detail, defer, None, credit,
                                   model, row.space_id, row.event_name, now,
                                   row.first_seen_at, int(row.attempts)))
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

class PlanCounts(Counter):
    """Counts per reason decided by the plan stage, the identifier coverage of what it hashed
    (``coverage``, as :func:`include.msads_capi.identity.hash_identities` counts it), and how
    many new events it took after the pick-up cursor (``new_events``)."""

    def __init__(self) -> None:
        super().__init__()
        self.coverage: Counter = Counter()
        self.new_events = 0

    def record(self, rows: list[Planned], ready: ReadyFrames) -> None:
        self.update(r.reason for r in rows)
        if ready.count:
            self[READY] += ready.count


def _decide(planner: Planner, finals: list[Planned], pairs: pd.DataFrame,
            events: pd.DataFrame, coverage: Counter) -> tuple[list[Planned], ReadyFrames]:
    """One chunk's per-goal rules and hashing: its ledger rows decided one by one (``finals``
    first) and the frames of the rest."""
    rows, outbox, ready = planner.decide(pairs, events)
    rows, ready = planner.hash_outgoing(rows, outbox, ready, events, coverage)
    return finals + rows, ready


def _decide_and_write(conn: psycopg.Connection, planner: Planner, finals: list[Planned],
                      pairs: pd.DataFrame, events: pd.DataFrame, counts: PlanCounts,
                      replanned: list[tuple] | None = None) -> None:
    """One chunk's per-goal rules and hashing, then its ledger and outbox rows, counted."""
    rows, ready = _decide(planner, finals, pairs, events, counts.coverage)
    plan_rows(conn, rows, [], replanned=replanned or [], ready=ready)
    counts.record(rows, ready)


@dataclass
class _Chunk:
    """New events read after ``after`` up to ``last`` (``seen`` rows, at most ``limit``), and
    what planning the ``taken`` ones (not in the ledger yet) made of them."""

    after: tuple[object, str]
    last: tuple[object, str]
    seen: int
    limit: int
    ids: pa.Array | None = None  # the event ids taken
    rows: list[Planned] = field(default_factory=list)
    ready: ReadyFrames = ReadyFrames(None, None)
    coverage: Counter = field(default_factory=Counter)

    @property
    def taken(self) -> int:
        return 0 if self.ids is None else len(self.ids)


def _fetch(reader: psycopg.Connection, sql: str, after: tuple[object, str],
           limit: int, run_id: str) -> pd.DataFrame:
    """The next chunk's events after ``after`` (up to ``limit``), as read for ``run_id``:
    nothing is planned here, so that this can run while the chunk before is planned."""
    return frame(reader.execute(sql, {"after_at": after[0], "after_id": after[1],
                                      "limit": limit, "run": run_id}))


def _plan_chunk(events: pd.DataFrame, planner: Planner, after: tuple[object, str],
                limit: int, writing: pa.Array | None, ids: pa.Array) -> _Chunk | None:
    """Plan a chunk read after ``after`` (nothing is written here); None when nothing was
    there. ``writing``: the event ids of the chunks that were being written when it was read,
    which the ledger did not show yet; ``ids``: the chunk's event ids as read."""
    if events.empty:
        return None
    last = events.iloc[-1]
    chunk = _Chunk(after, (last.ingested_at, last.event_id), len(events), limit)
    # the ledger has the known ones already; an event id twice in a custom table is one
    # event: its first row counts
    known = events["known"].to_numpy(dtype=bool)
    if writing is not None and len(writing):  # pandas' isin makes an Arrow scalar per value
        known = known | pc.is_in(ids, value_set=writing.cast(ids.type)).to_numpy(
            zero_copy_only=False)
    events = events[~known].drop(columns=["ingested_at", "known"]).drop_duplicates("event_id")
    if not events.empty:
        finals, pairs, _ = planner.expand(events, None, set())
        chunk.rows, chunk.ready = _decide(planner, finals, pairs, events, chunk.coverage)
        chunk.ids = pa.array(events["event_id"])
    return chunk


def _write_chunk(warehouse: Warehouse, chunk: _Chunk, run_id: str, batch_size: int) -> bool:
    """Write a planned chunk and move the cursor past it, in one transaction; False (nothing
    written) when the cursor is no longer where the chunk was read from: another run moved it,
    or the chunk before this one was not written.

    The rows are written first and the cursor is locked last (``lock_cursor``), so that the
    next chunk's rows are written meanwhile; the chunks of one run are still taken in order,
    each waiting at the cursor for the one before it. The rows are only inserted: should
    another run have written one of these events first, the chunk is given up at once, and
    that run's rows are neither changed nor locked (its upload never waits for this one).
    """
    import psycopg

    with transaction(warehouse) as conn:
        try:
            if chunk.taken:
                plan_rows(conn, chunk.rows, [], ready=chunk.ready, new_only=True,
                          batch_size=batch_size)
        except psycopg.errors.UniqueViolation:
            raise psycopg.Rollback from None  # another run took these events: read again
        if not same_position(lock_cursor(conn, EVENTS.cursor), chunk.after):
            raise psycopg.Rollback  # undoes the rows written above
        advance(conn, EVENTS.cursor, *chunk.last, run_id)
        return True
    return False


def batch_size(config: PipelineConfig) -> int:
    """Conversions an outbox batch holds (0019_outbox_batches.sql): one call's worth, or an
    upload part's least, whichever is smaller, since an account is split into parts of whole
    batches (:func:`include.msads_capi.pipeline.upload.accounts_with_work`); the upload sends
    small batches together, up to a call's worth."""
    return max(1, min(MAX_CONVERSIONS_PER_CALL, config.part_min_conversions))


# Chunks written at once (each in its own transaction and connection): while one waits for
# PostgreSQL to store its rows, the next one's are stored too. Planning a 1,000,000-event
# backlog (bench/pipeline.py, same machine) took 14.7-15.9 s over five runs with one writer,
# the machine 71% busy, and 14.3 s in three runs with two, 74% busy: reading and planning in
# this process is most of what is left.
_WRITERS = 2


def _plan_new_events(warehouse: Warehouse, planner: Planner, optional: str,
                     counts: PlanCounts) -> None:
    """Take new events after the pick-up cursor, a chunk at a time, and plan them.

    Each chunk is written in one transaction: its ledger and outbox rows, and the cursor moved
    past all it read (:func:`_write_chunk`). Up to :data:`_WRITERS` such transactions run in
    threads while the next chunk is planned here, and the chunk after it is read meanwhile
    (:class:`_Reads`): reading is the warehouse's work, planning and hashing this process's. A
    chunk is read from where the one before it ended, so its transaction checks that the cursor
    stands there before moving it: if another run moved it meanwhile, nothing of that chunk is
    written, the writes in flight finish, and the events are read again after the moved cursor.
    A run that dies leaves the cursor and the ledger as they were. Up to
    ``max_events_per_run`` new events per run.
    """
    config = planner.config
    sql = query("plan_new_events").replace("{{optional}}", optional)
    with ThreadPoolExecutor(_WRITERS, thread_name_prefix="msads-plan-write") as writer, \
            _Reads(warehouse, sql, planner.run_id) as reads:
        writing: deque[tuple[Future, _Chunk]] = deque()
        written: list[_Chunk] = []  # their events wait in this run's batches: skipped too
        after: tuple[object, str] | None = None
        more = True
        while True:
            chunk = None
            taken = counts.new_events + sum(c.taken for _, c in writing)
            if more and taken < config.max_events_per_run:
                after = after or reads.cursor()
                limit = min(config.chunk_size, config.max_events_per_run - taken)
                in_flight = _ids(written + [c for _, c in writing])
                events, limit, skip = reads.take(after, limit, in_flight)
                ids = pa.array(events["event_id"])
                if len(events) == limit and taken + limit < config.max_events_per_run:
                    # the chunk after this one, while this one is planned: it skips the event
                    # ids being written and those read here (planned here, or known already)
                    last = events.iloc[-1]
                    reads.ahead((last.ingested_at, last.event_id),
                                min(config.chunk_size, config.max_events_per_run - taken - limit),
                                ids if in_flight is None else pa.concat_arrays(
                                    [in_flight.cast(ids.type), ids]))
                chunk = _plan_chunk(events, planner, after, limit, skip, ids)
            moved = False
            while writing and (moved or chunk is None or len(writing) == _WRITERS):
                future, done = writing.popleft()
                if not future.result():
                    moved = True
                    continue
                written.append(done)
                counts.new_events += done.taken
                counts.record(done.rows, done.ready)
                counts.coverage.update(done.coverage)
            if moved:  # another run moved the cursor: read from where it stands now
                reads.drop()
                after, more = None, True
                continue
            if chunk is None:
                return
            writing.append((writer.submit(_write_chunk, warehouse, chunk, planner.run_id,
                                          batch_size(config)),
                            chunk))
            after, more = chunk.last, chunk.seen == chunk.limit


class _Reads:
    """The new events' reads, one chunk ahead: while a chunk is planned, the next one is read
    on a thread of its own, so that PostgreSQL reads while this process plans. A read ahead is
    used when the next chunk is asked for after the chunk it was read after, with a limit at
    least its own (the events this run may still take are counted before the chunk is
    planned, so it may ask for fewer); the event ids it must skip go with it: those being
    written when it was issued and those of the chunk before it, which the ledger did not show
    yet (:func:`_plan_chunk`)."""

    def __init__(self, warehouse: Warehouse, sql: str, run_id: str) -> None:
        self.warehouse, self.sql, self.run_id = warehouse, sql, run_id
        self._ahead: tuple[tuple, int, pa.Array | None, Future] | None = None

    def __enter__(self) -> _Reads:
        self._conn = connect(self.warehouse, autocommit=True)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="msads-plan-read")
        return self

    def __exit__(self, *exc) -> None:
        self.drop()
        self._thread.shutdown(wait=True)
        self._conn.close()

    def cursor(self) -> tuple[object, str]:
        self.drop()
        return cursor_position(self._conn, EVENTS.cursor)

    def ahead(self, after: tuple[object, str], limit: int, skip: pa.Array | None) -> None:
        self.drop()
        self._ahead = (after, limit, skip,
                       self._thread.submit(_fetch, self._conn, self.sql, after, limit,
                                           self.run_id))

    def take(self, after: tuple[object, str], limit: int, skip: pa.Array | None
             ) -> tuple[pd.DataFrame, int, pa.Array | None]:
        """The events of the chunk after ``after``: (events, the limit they were read with,
        the event ids to skip among them)."""
        if self._ahead is not None and self._ahead[0] == after and self._ahead[1] <= limit:
            _, limit, skip, future = self._ahead
            self._ahead = None
            return future.result(), limit, skip
        self.drop()
        return _fetch(self._conn, self.sql, after, limit, self.run_id), limit, skip

    def drop(self) -> None:
        """Forget a read ahead (after waiting for it: the connection is shared)."""
        if self._ahead is not None:
            future, self._ahead = self._ahead[3], None
            future.exception()


def _ids(chunks: list[_Chunk]) -> pa.Array | None:
    """The event ids the chunks take: being written (the ledger does not show them yet), or
    written by this run (their batches are not read back for the check)."""
    taken = [c.ids for c in chunks if c.ids is not None]
    return pa.concat_arrays(taken) if taken else None


def plan(warehouse: Warehouse, run_id: str, now: datetime, config: PipelineConfig, *,
         take_new: bool = True) -> PlanCounts:
    """Plan every ledger row this run claimed, then new events after the pick-up cursor
    (unless ``take_new`` is false: a replay plans only what it reopened), and hash what may be
    sent; returns counts per reason decided here, with the identifier coverage."""
    counts = PlanCounts()
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
            finals, pairs, replaced = planner.expand(events, ledger, decided)
            per_goal = ledger[ledger.goal_id != 0][["event_id", "account_id", "goal_id",
                                                     "first_seen_at", "attempts"]]
            frames = [p for p in (pairs, per_goal) if not p.empty]
            all_pairs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            if replaced:  # placeholders become one row per goal (or their final outcome)
                conn.execute("DELETE FROM msads.results WHERE run_id = %(run)s AND status = "
                             "'pending' AND reason = 'claimed' AND event_id > %(after)s AND "
                             "event_id <= %(upto)s AND account_id = 0 AND goal_id = 0", chunk)
            # planned again: an earlier run may have left outbox rows for them
            again = list(per_goal[["event_id", "account_id", "goal_id"]].itertuples(
                index=False, name=None))
            _decide_and_write(conn, planner, finals, all_pairs, events, counts, again)
    if take_new:
        _plan_new_events(warehouse, planner, optional, counts)
    log.info("took %d new event(s) after the pick-up cursor; planned: %s", counts.new_events,
             dict(counts))
    plan_adjustments(warehouse, run_id, now, config)
    return counts


def _rows(frame: pd.DataFrame, at: np.ndarray) -> pd.DataFrame:
    """The rows of ``frame`` at positions ``at``, numbered from 0; -1 gives a row of missing
    values, as a left join does where it finds nothing."""
    if len(at) and at.min() < 0:
        return pd.DataFrame({name: frame[name].array.take(at, allow_fill=True)
                             for name in frame.columns})
    return frame.take(at).reset_index(drop=True)


def _outcome(row: Planned, decided: Decided | None) -> Planned:
    """A planned ledger row with the outcome the checks after hashing gave it, if any."""
    if decided is None:
        return row
    return row._replace(status=decided.status, reason=decided.reason, detail=decided.detail,
                        next_attempt_at=decided.next_attempt_at, decided_at=decided.decided_at)


def _event_outcome(label: str, row: Any) -> tuple[str, str | None]:
    """The reason and detail of an event decided as a whole (:meth:`Planner.expand`)."""
    if label == "deleted":
        return EVENT_DELETED, None
    if label == "unknown":
        return NOT_MAPPED, f"Space {row.space_id!r} is not configured; add it with msads space add"
    if label == "off":
        return CAPI_OFF, _capi_off(row.space_id)
    return NOT_MAPPED, f"no enabled mapping sends {row.event_name!r} in Space {row.space_id}"


def _capi_off(space_id: str) -> str:
    return f"Microsoft CAPI was off for Space {space_id} when the event was planned"
