"""Adjustments: refunds (restate) and cancellations (retract) of conversions already uploaded.

They go through the same run as conversions, stage by stage, and the same ledger rules:

- **claim**: new rows of the adjustments table by cursor (``adjustments``) with the overlap
  sweep, due retries and stale claims, each a committed placeholder in
  ``msads.adjustment_results`` (:func:`claim_adjustments`);
- **plan**: each adjustment is checked, then sent for every (account, goal) its original was
  uploaded to, reusing the original's goal name, conversion time and click id
  (:func:`plan_adjustments`). The rules, each with its reason (``outcomes.py``):

  - the adjustment row is gone → ``adjustment_deleted``;
  - not ``restate``/``retract``, or a restate without a value → ``invalid_adjustment``; a
    negative or unreadable value, or a currency Microsoft does not take → ``invalid_value``;
  - ``adjusted_at`` more than 5 minutes ahead → ``adjustment_in_future`` (a little ahead waits:
    ``not_due_yet``);
  - the original was never uploaded → ``original_not_uploaded``, held while it is still pending
    (up to ``original_hold``, 24 h);
  - earlier than the original's conversion time → ``adjustment_before_conversion`` (Microsoft:
    5620); the original more than 90 days old → ``outside_window`` (Microsoft: 5609);
  - per (event, account, goal), in ``adjusted_at`` order: a retract after a retract →
    ``already_retracted``; a restate after a retract → ``restate_after_retract``; of several
    restates only the latest is sent, the others are ``superseded`` (so is a restate older than
    one already sent, and a restate before a retract);
- **hash**: the identifiers the original was sent with are hashed again from the event, with the
  same rules (:func:`hash_adjustments`); none usable any more → ``no_identifier``;
- **upload**: per account after its conversions, at most 1,000 a call
  (``ApplyOfflineConversionAdjustments``; :func:`upload_adjustments`). Microsoft's refusal of one
  item is ``rejected:<ErrorCode>``; trouble with the whole request is never the adjustment's
  fault: it is retried with backoff (``retry``), and an account that cannot sign in holds them
  (``account_inactive``).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from include.msads_capi import ledger, rules
from include.msads_capi.ledger import Adjusting, AdjustmentDecided, AdjustmentHashed
from include.msads_capi.microsoft.faults import (
    AccountAuthError,
    AccountNotFoundError,
    MicrosoftError,
)
from include.msads_capi.outcomes import (
    ACCOUNT_INACTIVE,
    ADJUSTMENT_DELETED,
    ALREADY_RETRACTED,
    FAILED,
    NO_IDENTIFIER,
    NOT_DUE_YET,
    ORIGINAL_NOT_UPLOADED,
    READY,
    RESTATE_AFTER_RETRACT,
    RETRY,
    SUPERSEDED,
    UPLOADED,
    rejected,
)
from include.msads_capi.pipeline.pickup import ADJUSTMENTS, pick_up
from include.msads_capi.settings import PipelineConfig, adjustments_table, events_table
from include.msads_capi.sql import dicts
from include.msads_capi.warehouse import Warehouse, transaction

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from include.msads_capi.microsoft.client import AdsClient

log = logging.getLogger(__name__)
BATCH = 1000  # Microsoft publishes no limit for adjustments; conversions' 1,000 is assumed
RESTATE, RETRACT = "restate", "retract"


# ------------------------------------------------------------------------------------- claim


def claim_adjustments(warehouse: Warehouse, run_id: str, now: datetime,
                      config: PipelineConfig) -> int:
    """Claim due, late and new adjustments for ``run_id``; returns how many."""
    claimed = sum(pick_up(warehouse, ADJUSTMENTS, run_id, now, config))
    if claimed:
        log.info("claimed %d adjustment(s)", claimed)
    return claimed


# -------------------------------------------------------------------------------------- plan

_CLAIMED = """
SELECT adjustment_id, event_id, first_seen_at FROM msads.adjustment_results
WHERE run_id = %(run)s AND status = 'pending' AND reason = 'claimed' AND goal_id = 0
  AND event_id > %(after)s
ORDER BY event_id, adjustment_id LIMIT %(n)s
"""
_ORIGINALS = """
SELECT r.event_id, r.account_id, r.goal_id, r.status, r.conversion_name, r.conversion_time,
       r.currency_code, r.sent_click_id, r.sent_email, r.sent_phone, a.customer_id
FROM msads.results r JOIN msads.accounts a USING (account_id)
WHERE r.event_id = ANY(%(events)s) AND r.goal_id <> 0
UNION ALL
SELECT p.event_id, p.account_id, p.goal_id, p.status, p.conversion_name, p.conversion_time,
       p.currency_code, false, false, false, a.customer_id
FROM msads.outbox_pending p JOIN msads.accounts a USING (account_id)
WHERE p.event_id = ANY(%(events)s)
"""
_EARLIER = """
SELECT adjustment_id, event_id, account_id, goal_id, lower(btrim(adjustment_type)) AS kind,
       adjusted_at
FROM msads.adjustment_results
WHERE event_id = ANY(%(events)s) AND goal_id <> 0
  AND (status = 'uploaded' OR (status IN ('pending', 'deferred') AND reason <> 'claimed'
                               AND NOT (run_id = %(run)s AND adjustment_id = ANY(%(ids)s))))
"""


class _Planner:
    """Decides one chunk of claimed adjustments (all those of each event in it)."""

    def __init__(self, run_id: str, now: datetime, config: PipelineConfig) -> None:
        self.run_id, self.now, self.config = run_id, now, config

    def row(self, claim: dict, adj: dict | None, status: str, reason: str,
            detail: str | None = None, *, target: dict | None = None,
            next_at: datetime | None = None, value: float | None = None,
            currency: str | None = None, click: str | None = None) -> Adjusting:
        t, a = target or {}, adj or {}
        return Adjusting(
            claim["adjustment_id"], t.get("account_id", 0), t.get("goal_id", 0),
            claim["event_id"], a.get("adjustment_type"), status, reason, detail or None,
            next_at, self.now if status == "skipped" else None, t.get("customer_id"),
            t.get("conversion_name"), t.get("conversion_time"), click,
            bool(t.get("sent_email")), bool(t.get("sent_phone")), a.get("adjusted_at"), value,
            currency, self.run_id, self.now, claim["first_seen_at"])

    def per_goal(self, claim: dict, adj: dict, target: dict, click: str | None) -> Adjusting:
        """The checks against one (account, goal) the original was uploaded to."""
        reason, detail, value, currency = rules.check_adjustment_target(
            adj, target["conversion_time"], target["currency_code"], self.now, self.config)
        status = {READY: "pending", NOT_DUE_YET: "deferred"}.get(reason, "skipped")
        return self.row(claim, adj, status, reason, detail, target=target, value=value,
                        currency=currency, click=click,
                        next_at=adj["adjusted_at"] if reason == NOT_DUE_YET else None)

    def waiting(self, claim: dict, adj: dict, originals: list[dict],
                exists: bool) -> Adjusting:
        """No (account, goal) has the original uploaded: held while it may still be."""
        event = claim["event_id"]
        pending = any(o["status"] in ("pending", "deferred") for o in originals)
        hold_until = claim["first_seen_at"] + self.config.original_hold
        if (pending or (exists and not originals)) and self.now < hold_until:
            # an original this run is about to upload: look again in the next run
            sending = any(o["status"] == "pending" for o in originals)
            recheck = self.now if sending else self.now + self.config.hold_recheck
            return self.row(claim, adj, "deferred", ORIGINAL_NOT_UPLOADED,
                            f"event {event} is not uploaded yet; the adjustment waits for it "
                            f"until {hold_until:%Y-%m-%d %H:%M} UTC",
                            next_at=min(recheck, hold_until))
        if not exists and not originals:
            why = f"there is no event {event} in {events_table()}"
        elif originals and not pending:
            ended = ", ".join(sorted({o["status"] for o in originals}))
            why = f"event {event} was not uploaded: it ended {ended} (msads why {event})"
        else:
            why = (f"event {event} was not uploaded within {self.config.original_hold} of the "
                   "adjustment")
        return self.row(claim, adj, "skipped", ORIGINAL_NOT_UPLOADED, why)


def _sequence(candidates: list[Adjusting], earlier: list[dict]) -> list[Adjusting]:
    """The order rules for one (event, account, goal): a retract is final, and of several
    restates only the latest counts; what is not sent says which adjustment wins."""
    kind = rules.adjustment_kind
    retracted = any(e["kind"] == RETRACT for e in earlier)
    last_restate = max((e["adjusted_at"] for e in earlier if e["kind"] == RESTATE),
                       default=None)
    sending = sorted((r for r in candidates if r.status != "skipped"),
                     key=lambda r: (r.adjusted_at, r.adjustment_id))
    out = [r for r in candidates if r.status == "skipped"]
    retracts = [r for r in sending if kind(r.adjustment_type) == RETRACT]
    keep = None
    if not retracted and retracts:
        keep = retracts[0]
    elif not retracted and sending and (last_restate is None
                                        or sending[-1].adjusted_at > last_restate):
        keep = sending[-1]
    for r in sending:
        if r is keep:
            out.append(r)
            continue
        after_retract = retracted or (keep is not None and kind(keep.adjustment_type) == RETRACT
                                      and r.adjusted_at >= keep.adjusted_at)
        if after_retract:
            reason = ALREADY_RETRACTED if kind(r.adjustment_type) == RETRACT else (
                RESTATE_AFTER_RETRACT)
        else:
            reason = SUPERSEDED
        winner = (f"adjustment {keep.adjustment_id} ({kind(keep.adjustment_type)} at "
                  f"{keep.adjusted_at:%Y-%m-%d %H:%M} UTC) is sent instead" if keep else
                  "an adjustment sent earlier already did")
        out.append(r._replace(status="skipped", reason=reason, detail=winner,
                              next_attempt_at=None, decided_at=r.claimed_at))
    return out


def plan_adjustments(warehouse: Warehouse, run_id: str, now: datetime,
                     config: PipelineConfig) -> Counter:
    """Plan every adjustment this run claimed; returns counts per reason decided here."""
    counts: Counter = Counter()
    planner = _Planner(run_id, now, config)
    after = ""
    while True:
        with transaction(warehouse) as conn:
            claims = dicts(conn.execute(_CLAIMED, {"run": run_id, "after": after,
                                                   "n": config.chunk_size}))
            if not claims:
                break
            if len(claims) == config.chunk_size and claims[0]["event_id"] != claims[-1][
                    "event_id"]:  # the last event's other adjustments come with the next chunk
                claims = [c for c in claims if c["event_id"] != claims[-1]["event_id"]]
            after = claims[-1]["event_id"]
            rows = _plan_chunk(conn, planner, claims)
            ledger.plan_adjustments(conn, rows, sorted({r.adjustment_id for r in rows
                                                        if r.goal_id}))
            counts.update(r.reason for r in rows)
    if counts:
        log.info("planned adjustments: %s", dict(counts))
    return counts


def _plan_chunk(conn: psycopg.Connection, planner: _Planner,
                claims: list[dict]) -> list[Adjusting]:
    ids = [c["adjustment_id"] for c in claims]
    events = sorted({c["event_id"] for c in claims})
    adjustments = {a["adjustment_id"]: a for a in dicts(conn.execute(
        f"SELECT adjustment_id, event_id, adjustment_type, adjusted_value, currency_code, "
        f"adjusted_at FROM {adjustments_table()} WHERE adjustment_id = ANY(%s)", (ids,)))}
    originals: dict[str, list[dict]] = defaultdict(list)
    for o in dicts(conn.execute(_ORIGINALS, {"events": events})):
        originals[o["event_id"]].append(o)
    clicks = dict(conn.execute(f"SELECT event_id, btrim(msclkid) FROM {events_table()} "
                               "WHERE event_id = ANY(%s)", (events,)).fetchall())
    earlier: dict[tuple, list[dict]] = defaultdict(list)
    for e in dicts(conn.execute(_EARLIER, {"events": events, "run": planner.run_id,
                                           "ids": ids})):
        earlier[(e["event_id"], e["account_id"], e["goal_id"])].append(e)
    rows: list[Adjusting] = []
    per_goal: dict[tuple, list[Adjusting]] = defaultdict(list)
    for claim in claims:
        adj = adjustments.get(claim["adjustment_id"])
        if adj is None:
            rows.append(planner.row(claim, None, "skipped", ADJUSTMENT_DELETED))
            continue
        failed = rules.check_adjustment(adj, planner.now, planner.config)
        if failed:
            rows.append(planner.row(claim, adj, "skipped", *failed))
            continue
        mine = originals.get(claim["event_id"], [])
        uploaded = [o for o in mine if o["status"] == "uploaded"]
        if not uploaded:
            rows.append(planner.waiting(claim, adj, mine, claim["event_id"] in clicks))
            continue
        for target in uploaded:
            click = clicks.get(claim["event_id"]) if target["sent_click_id"] else None
            key = (claim["event_id"], target["account_id"], target["goal_id"])
            per_goal[key].append(planner.per_goal(claim, adj, target, click or None))
    for key, candidates in per_goal.items():
        rows.extend(_sequence(candidates, earlier.get(key, [])))
    return rows


# -------------------------------------------------------------------------------------- hash

_TO_HASH = """
SELECT r.adjustment_id, r.account_id, r.goal_id, r.click_id, r.need_email, r.need_phone,
       e.email, e.phone, s.phone_region
FROM msads.adjustment_results r
LEFT JOIN {events} e ON e.event_id = r.event_id
LEFT JOIN msads.spaces s ON s.space_id = e.space_id
WHERE r.run_id = %(run)s AND r.status = 'pending' AND r.reason = 'ready' AND NOT r.hashed
"""


def hash_adjustments(warehouse: Warehouse, run_id: str, now: datetime) -> Counter:
    """Hash the identifiers each adjustment's original was sent with, from the event."""
    import pandas as pd

    from include.msads_capi.identity import hash_identities

    counts: Counter = Counter()
    with transaction(warehouse) as conn:
        rows = dicts(conn.execute(_TO_HASH.format(events=events_table()), {"run": run_id}))
        if not rows:
            return counts
        frame = pd.DataFrame(rows)
        wants = frame["need_email"] | frame["need_phone"]
        frame.loc[~frame["need_email"].astype(bool), "email"] = None
        frame.loc[~frame["need_phone"].astype(bool), "phone"] = None
        hashed = hash_identities(frame[["email", "phone", "phone_region"]].reset_index(
            drop=True), email="email", phone="phone", region="phone_region").frame
        done, decided = [], []
        for r, want, email, phone in zip(rows, wants.tolist(), hashed["email_sha256"].tolist(),
                                         hashed["phone_sha256"].tolist(), strict=True):
            email, phone = (_text(email), _text(phone)) if want else (None, None)
            if not (r["click_id"] or email or phone):
                decided.append(AdjustmentDecided(
                    r["adjustment_id"], r["account_id"], r["goal_id"], "skipped",
                    NO_IDENTIFIER, "the event's email and phone, which the conversion was sent "
                    "with, are no longer usable, so Microsoft could not find the conversion",
                    None, None, None, None, None, now))
                continue
            done.append(AdjustmentHashed(r["adjustment_id"], r["account_id"], r["goal_id"],
                                         email, phone, True))
        ledger.mark_adjustments_hashed(conn, done)
        ledger.record_adjustments(conn, "hash", decided)
        counts.update(d.reason for d in decided)
    return counts


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# ------------------------------------------------------------------------------------ upload

_READY = """
SELECT adjustment_id, event_id, account_id, goal_id, customer_id, adjustment_type, conversion_name,
       conversion_time, click_id, email_sha256, phone_sha256, adjusted_at, adjusted_value,
       currency_code, attempts, first_seen_at
FROM msads.adjustment_results
WHERE run_id = %(run)s AND account_id = %(a)s AND status = 'pending' AND reason = 'ready'
  AND hashed AND (event_id, adjusted_at, adjustment_id) > (%(e)s, %(t)s, %(i)s)
ORDER BY event_id, adjusted_at, adjustment_id
LIMIT %(n)s
"""


def accounts_with_adjustments(warehouse: Warehouse, run_id: str) -> list[int]:
    with transaction(warehouse) as conn:
        return [r[0] for r in conn.execute(
            "SELECT DISTINCT account_id FROM msads.adjustment_results WHERE run_id = %s AND "
            "status = 'pending' AND reason = 'ready' AND hashed ORDER BY 1", (run_id,))]


def item(row: dict) -> dict:
    """The OfflineConversionAdjustment fields for one row (None fields are left out)."""
    restate = rules.adjustment_kind(row["adjustment_type"]) == RESTATE
    return {"ConversionName": row["conversion_name"], "ConversionTime": row["conversion_time"],
            "MicrosoftClickId": row["click_id"], "HashedEmailAddress": row["email_sha256"],
            "HashedPhoneNumber": row["phone_sha256"],
            "AdjustmentType": rules.ADJUSTMENT_TYPES[rules.adjustment_kind(
                row["adjustment_type"])],
            "AdjustmentTime": row["adjusted_at"],
            "AdjustmentValue": float(row["adjusted_value"]) if restate else None,
            "AdjustmentCurrencyCode": row["currency_code"] if restate else None}


def upload_adjustments(warehouse: Warehouse, client: AdsClient, account_id: int, run_id: str,
                       config: PipelineConfig, clock: Callable[[], datetime]) -> Counter:
    """Send the account's ready adjustments of this run; returns counts per reason."""
    counts: Counter = Counter()
    last: tuple = ("", datetime.min.replace(tzinfo=clock().tzinfo), "")
    while True:
        with transaction(warehouse) as conn:
            rows = dicts(conn.execute(_READY, {"run": run_id, "a": account_id, "e": last[0],
                                               "t": last[1], "i": last[2], "n": BATCH}))
            if not rows:
                return counts
            last = (rows[-1]["event_id"], rows[-1]["adjusted_at"], rows[-1]["adjustment_id"])
            rows, overtaken = _still_current(conn, rows, clock())
        _write(warehouse, counts, overtaken)
        if not rows:
            continue
        try:
            result = client.adjust(account_id, rows[0]["customer_id"], [item(r) for r in rows])
        except (AccountAuthError, AccountNotFoundError) as exc:
            _write(warehouse, counts, [_decided(r, "deferred", ACCOUNT_INACTIVE, str(exc),
                                                next_at=clock() + config.hold_recheck)
                                       for r in rows])
            return counts
        except MicrosoftError as exc:  # the whole request: never the adjustments' fault
            now = clock()
            _write(warehouse, counts, [_retry(r, now, config, str(exc), exc.tracking_id)
                                       for r in rows])
            return counts
        now = clock()
        decided = []
        for r, out in zip(rows, result.outcomes, strict=True):
            if out.accepted:
                decided.append(_decided(r, "uploaded", UPLOADED, tracking=result.tracking_id,
                                        decided_at=now))
            elif out.transient:
                decided.append(_retry(r, now, config, out.message, result.tracking_id,
                                      error=(out.code, out.error_code)))
            else:
                decided.append(_decided(r, "rejected", rejected(out.error_code or out.code),
                                        out.message, error=(out.code, out.error_code),
                                        tracking=result.tracking_id, decided_at=now))
        _write(warehouse, counts, decided)


_SENT = """
SELECT r.event_id, r.account_id, r.goal_id, lower(btrim(r.adjustment_type)) AS kind,
       r.adjusted_at, r.adjustment_id
FROM msads.adjustment_results r
JOIN unnest(%s::text[], %s::bigint[], %s::bigint[]) AS k(e, a, g)
  ON r.event_id = k.e AND r.account_id = k.a AND r.goal_id = k.g
WHERE r.status = 'uploaded'
"""


def _still_current(conn: psycopg.Connection, rows: list[dict],
                   now: datetime) -> tuple[list[dict], list[AdjustmentDecided]]:
    """Check, right before sending, each adjustment against what was uploaded since it was
    planned: one held for a retry or by a dead run must not undo a newer one (Microsoft keeps
    the last restate it receives) nor follow a retract. Returns (to send, overtaken)."""
    sent: dict[tuple, list[dict]] = defaultdict(list)
    keys = list({(r["event_id"], r["account_id"], r["goal_id"]) for r in rows})
    for u in dicts(conn.execute(_SENT, tuple(map(list, zip(*keys, strict=True))))):
        sent[(u["event_id"], u["account_id"], u["goal_id"])].append(u)
    send, overtaken = [], []
    for r in rows:
        kind = rules.adjustment_kind(r["adjustment_type"])
        done = sent.get((r["event_id"], r["account_id"], r["goal_id"]), [])
        retract = next((u for u in done if u["kind"] == RETRACT), None)
        newer = next((u for u in done if u["kind"] == RESTATE
                      and u["adjusted_at"] > r["adjusted_at"]), None)
        winner = retract or (newer if kind == RESTATE else None)
        if winner is None:
            send.append(r)
            continue
        reason = (SUPERSEDED if winner is newer else ALREADY_RETRACTED if kind == RETRACT
                  else RESTATE_AFTER_RETRACT)
        overtaken.append(_decided(r, "skipped", reason, f"adjustment {winner['adjustment_id']} "
                                  f"({winner['kind']} at {winner['adjusted_at']:%Y-%m-%d %H:%M} "
                                  "UTC) was sent first", decided_at=now))
    return send, overtaken


def _decided(row: dict, status: str, reason: str, detail: str | None = None, *,
             error: tuple[int | None, str | None] = (None, None), tracking: str | None = None,
             next_at: datetime | None = None,
             decided_at: datetime | None = None) -> AdjustmentDecided:
    """A ledger update for one adjustment row; Microsoft's message is kept with its code."""
    message = detail if error[0] is not None or error[1] is not None else None
    return AdjustmentDecided(row["adjustment_id"], row["account_id"], row["goal_id"], status,
                             reason, detail, error[0], error[1], message, tracking, next_at,
                             decided_at)


def _retry(row: dict, now: datetime, config: PipelineConfig, message: str | None,
           tracking: str | None, *, error: tuple[int | None, str | None] = (None, None),
           ) -> AdjustmentDecided:
    attempts = row["attempts"] + 1
    next_at = config.next_attempt(attempts, row["first_seen_at"], now)
    if next_at is None:
        return _decided(row, "failed", FAILED, f"gave up after {attempts} attempt(s): {message}",
                        error=error, tracking=tracking, decided_at=now)
    return _decided(row, "pending", RETRY, f"attempt {attempts} failed ({message}); next at "
                    f"{next_at:%H:%M:%S} UTC", error=error, tracking=tracking, next_at=next_at)


def _write(warehouse: Warehouse, counts: Counter, rows: list[AdjustmentDecided]) -> None:
    if not rows:
        return
    with transaction(warehouse) as conn:
        ledger.record_adjustments(conn, "upload", rows)
        conn.execute("UPDATE msads.adjustment_results SET attempts = attempts + 1 "
                     "WHERE (adjustment_id, account_id, goal_id) IN (SELECT * FROM unnest("
                     "%s::text[], %s::bigint[], %s::bigint[]))",
                     ([r.adjustment_id for r in rows], [r.account_id for r in rows],
                      [r.goal_id for r in rows]))
    counts.update(r.reason for r in rows)
