"""Hashing: normalise and SHA-256 email and phone, then the checks that follow identity.

The plan stage hashes what it plans with :func:`hash_frame`, in the same pass; the hash stage
(:func:`hash_stage`) then finds only what is still unhashed: adjustments, and rows planned by
an earlier version of this product.

For each planned conversion the event's raw email and phone are read here, in the warehouse's
process, hashed in pandas (:mod:`include.msads_capi.identity`) and only the digests are written
to the outbox. Then, in the troubleshooting order: no usable click id, email or phone →
``no_identifier``; only a hashed email or phone for a goal without enhanced conversions →
``enhanced_conversions_off``; the checks the plan stage prepared (deferred until their time when
they carry one: ``goal_too_new``, ``not_due_yet``; final otherwise).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from include.msads_capi import ledger
from include.msads_capi.identity import describe, hash_identities
from include.msads_capi.ledger import Decided
from include.msads_capi.outcomes import ENHANCED_CONVERSIONS_OFF, NO_IDENTIFIER, READY
from include.msads_capi.pipeline.adjustments import hash_adjustments
from include.msads_capi.settings import PipelineConfig, events_table
from include.msads_capi.sql import frame as as_frame
from include.msads_capi.warehouse import Warehouse, transaction

log = logging.getLogger(__name__)

_CHUNK = """
WITH o AS (  -- the next keys first, by the primary key: the joins then touch only these rows
    SELECT event_id, account_id, goal_id, click_id, preflight_reason, preflight_detail,
           defer_until, conversion_name
    FROM msads.outbox
    WHERE run_id = %(run)s AND NOT hashed
      AND (event_id, account_id, goal_id) > (%(e)s, %(a)s, %(g)s)
    ORDER BY event_id, account_id, goal_id
    LIMIT %(n)s)
SELECT o.event_id, o.account_id, o.goal_id, o.click_id, o.preflight_reason,
       o.preflight_detail, o.defer_until, o.conversion_name, e.email, e.phone, s.phone_region,
       g.enhanced_conversions IS NOT FALSE AS enhanced  -- unknown until goals are refreshed
FROM o
LEFT JOIN {events} e ON e.event_id = o.event_id
LEFT JOIN msads.spaces s ON s.space_id = e.space_id
LEFT JOIN msads.goals g ON g.account_id = o.account_id AND g.goal_id = o.goal_id
ORDER BY o.event_id, o.account_id, o.goal_id
"""


@dataclass
class HashSummary:
    outcomes: Counter = field(default_factory=Counter)
    coverage: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"outcomes": dict(self.outcomes), "coverage": dict(self.coverage)}


def _why_absent(row: Any) -> str:
    parts = []
    for name in ("email", "phone"):
        reason = getattr(row, f"{name}_reason")
        parts.append(f"{name}: {describe(reason) if isinstance(reason, str) else 'missing'}")
    return "no click id; " + "; ".join(parts)


class HashedFrame(NamedTuple):
    """What :func:`hash_frame` made of a chunk of conversions."""

    ready: pd.DataFrame  # key, email_sha256, phone_sha256, hashed: what may be sent
    decided: list[Decided]  # not sent as it stands, in the checklist's order
    coverage: Counter
    kept: np.ndarray  # the positions in the frame hashed of the rows in ``ready``


def hash_frame(frame: pd.DataFrame, now: datetime) -> HashedFrame:
    """Hash the identifiers of a chunk of conversions and apply the checks that follow.

    ``frame`` has the conversion's key, ``click_id``, ``preflight_reason``,
    ``preflight_detail``, ``defer_until`` and ``conversion_name``, and the event's raw
    ``email``, ``phone`` and its Space's ``phone_region``, and ``enhanced`` (the goal takes
    hashed identifiers). Each event is hashed once, however many goals it goes to.
    """
    once = frame["event_id"].is_unique  # each event to one goal: no event to hash twice
    people = (frame if once else frame.drop_duplicates("event_id"))[
        ["event_id", "email", "phone", "phone_region", "click_id"]].reset_index(drop=True)
    result = hash_identities(people, email="email", phone="phone", region="phone_region",
                             click_id="click_id")
    hashes = result.frame.reset_index(drop=True)
    rest = frame.drop(columns=["email", "phone"]).reset_index(drop=True)
    if once:  # the hashes are in the frame's order
        frame = pd.concat([rest, hashes], axis=1)
    else:  # each row gets its event's (the merge keeps the frame's order)
        frame = rest.merge(pd.concat([people[["event_id"]], hashes], axis=1), on="event_id")
    del people, hashes, rest
    has_id = (frame["click_id"].notna() | frame["email_sha256"].notna()
              | frame["phone_sha256"].notna()).to_numpy()
    clicked = frame["click_id"].notna().to_numpy()
    enhanced = frame["enhanced"].fillna(False).astype(bool).to_numpy()
    checked = frame["preflight_reason"].isna().to_numpy()
    fine = has_id & (clicked | enhanced) & checked
    ready = frame.loc[fine, ["event_id", "account_id", "goal_id", "email_sha256",
                             "phone_sha256"]].assign(hashed=True)
    decided = [_decide(row, ok, now) for row, ok in zip(
        frame[~fine].itertuples(index=False), has_id[~fine], strict=True)] if not fine.all() else []
    return HashedFrame(ready, decided, Counter(result.coverage), np.flatnonzero(fine))


def hash_stage(warehouse: Warehouse, run_id: str, now: datetime,
               config: PipelineConfig) -> HashSummary:
    """Hash what is planned and not hashed yet: rows the plan stage left (planned by an earlier
    version), and the adjustments; the plan stage hashes what it plans (:mod:`.plan`)."""
    summary = HashSummary()
    last = ("", 0, 0)
    query = _CHUNK.format(events=events_table())
    while True:
        with transaction(warehouse) as conn:
            cur = conn.execute(query, {"run": run_id, "e": last[0], "a": last[1], "g": last[2],
                                       "n": config.chunk_size})
            frame = as_frame(cur)
            if frame.empty:
                break
            tail = frame.iloc[-1]
            last = (str(tail.event_id), int(tail.account_id), int(tail.goal_id))
            done = hash_frame(frame, now)
            ledger.mark_hashed(conn, done.ready)
            ledger.record(conn, "hash", done.decided)
            summary.coverage.update(done.coverage)
            summary.outcomes.update(d.reason for d in done.decided)
            if len(done.ready):
                summary.outcomes[READY] += len(done.ready)
    log.info("hashed: %s; identifier coverage %s", dict(summary.outcomes), dict(summary.coverage))
    hash_adjustments(warehouse, run_id, now)
    return summary


def combined_coverage(*parts: dict | Counter) -> dict:
    """Identifier coverage counted by several passes, as one (zero counts kept)."""
    total: Counter = Counter()
    for part in parts:
        total.update(part or {})  # update keeps the zero counts, unlike +
    return dict(total)


def _decide(row: Any, has_id: bool, now: datetime) -> Decided:
    """The outcome of a conversion that will not be sent as it stands, in the checklist's
    order: no identifier, only a hash for a goal without enhanced conversions, then what the
    plan stage found (held until its time when it carries one)."""
    key = (row.event_id, int(row.account_id), int(row.goal_id))
    if not has_id:
        return Decided(*key, "skipped", NO_IDENTIFIER, _why_absent(row), None, now)
    if not isinstance(row.click_id, str) and not row.enhanced:
        return Decided(*key, "skipped", ENHANCED_CONVERSIONS_OFF,
                       f"no click id, only a hashed email or phone, and goal {row.goal_id} "
                       f"({row.conversion_name}) does not have enhanced conversions turned on",
                       None, now)
    if not pd.isna(row.defer_until):  # goal_too_new, not_due_yet: held
        return Decided(*key, "deferred", row.preflight_reason, row.preflight_detail,
                       row.defer_until, None)
    return Decided(*key, "skipped", row.preflight_reason, row.preflight_detail, None, now)
