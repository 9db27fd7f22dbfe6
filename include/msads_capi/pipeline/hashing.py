"""Stage 3, hash: normalise and SHA-256 email and phone, then the checks that follow identity.

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
from typing import Any

import pandas as pd

from include.msads_capi import ledger
from include.msads_capi.identity import describe, hash_identities
from include.msads_capi.ledger import Decided, Hashed
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


def hash_stage(warehouse: Warehouse, run_id: str, now: datetime,
               config: PipelineConfig) -> HashSummary:
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
            people = frame.drop_duplicates("event_id")[["event_id", "email", "phone",
                                                        "phone_region", "click_id"]]
            result = hash_identities(people.reset_index(drop=True), email="email", phone="phone",
                                     region="phone_region", click_id="click_id")
            summary.coverage.update(result.coverage)
            hashed = pd.concat([people[["event_id"]].reset_index(drop=True),
                                result.frame.reset_index(drop=True)], axis=1)
            frame = frame.drop(columns=["email", "phone"]).merge(hashed, on="event_id")
            del people, result, hashed
            has_id = (frame["click_id"].notna() | frame["email_sha256"].notna()
                      | frame["phone_sha256"].notna())
            ready: list[Hashed] = []
            decided: list[Decided] = []
            for row, ok in zip(frame.itertuples(index=False), has_id, strict=True):
                key = (row.event_id, int(row.account_id), int(row.goal_id))
                if not ok:
                    decided.append(Decided(*key, "skipped", NO_IDENTIFIER, _why_absent(row),
                                           None, now))
                elif not isinstance(row.click_id, str) and not row.enhanced:
                    decided.append(Decided(*key, "skipped", ENHANCED_CONVERSIONS_OFF,
                                           f"no click id, only a hashed email or phone, and goal "
                                           f"{row.goal_id} ({row.conversion_name}) does not have "
                                           "enhanced conversions turned on", None, now))
                elif isinstance(row.preflight_reason, str):
                    if not pd.isna(row.defer_until):  # goal_too_new, not_due_yet: held
                        decided.append(Decided(*key, "deferred", row.preflight_reason,
                                               row.preflight_detail, row.defer_until, None))
                    else:
                        decided.append(Decided(*key, "skipped", row.preflight_reason,
                                               row.preflight_detail, None, now))
                else:
                    ready.append(Hashed(*key, _str(row.email_sha256), _str(row.phone_sha256),
                                        True))
            ledger.mark_hashed(conn, ready)
            ledger.record(conn, "hash", decided)
            summary.outcomes.update(d.reason for d in decided)
            summary.outcomes[READY] += len(ready)
    log.info("hashed: %s; identifier coverage %s", dict(summary.outcomes), dict(summary.coverage))
    hash_adjustments(warehouse, run_id, now)
    return summary


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
