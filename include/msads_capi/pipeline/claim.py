"""Stage 1, claim: take new events, late-committed events and due retries for this run.

New events are read in keyset order after the pick-up cursor; the overlap window before the
cursor is swept once per run for rows that committed late; both anti-join the ledger, so an
event already decided is never decided again. Every claim is a committed ledger row, so two runs
(or two workers) never take the same event, and a run that dies leaves claims the next run takes
over once the lease has passed.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from include.msads_capi.pipeline.adjustments import claim_adjustments
from include.msads_capi.settings import PipelineConfig
from include.msads_capi.sql import query
from include.msads_capi.warehouse import Warehouse, transaction

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)
CURSOR = "events"


@dataclass
class ClaimResult:
    new: int = 0
    late: int = 0
    due: int = 0
    adjustments: int = 0  # refunds and cancellations (pipeline/adjustments.py)

    @property
    def total(self) -> int:
        return self.new + self.late + self.due

    def as_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def _cursor(conn: psycopg.Connection) -> tuple[datetime | str, str]:
    row = conn.execute("SELECT ingested_at, event_id FROM msads.pickup_cursor WHERE name = %s",
                       (CURSOR,)).fetchone()
    return row if row else ("-infinity", "")


def claim(warehouse: Warehouse, run_id: str, now: datetime,
          config: PipelineConfig) -> ClaimResult:
    """Claim work for ``run_id``; returns how many events and ledger rows it took."""
    result = ClaimResult()
    with transaction(warehouse) as conn:
        result.due = len(conn.execute(query("claim_due"), {
            "run_id": run_id, "now": now, "stale_before": now - config.lease,
            "limit": config.max_events_per_run}).fetchall())
        after_at, after_id = _cursor(conn)
        if after_at != "-infinity":
            result.late = len(conn.execute(query("claim_late"), {
                "run_id": run_id, "now": now, "cursor_at": after_at, "cursor_id": after_id,
                "overlap": config.overlap, "limit": config.max_events_per_run}).fetchall())
    while result.new < config.max_events_per_run:
        limit = min(config.chunk_size, config.max_events_per_run - result.new)
        with transaction(warehouse) as conn:
            claimed, seen, last_at, last_id = conn.execute(query("claim_new"), {
                "run_id": run_id, "now": now, "after_at": after_at, "after_id": after_id,
                "limit": limit}).fetchone()
            if seen:
                conn.execute(
                    "INSERT INTO msads.pickup_cursor (name, ingested_at, event_id, run_id) "
                    "VALUES (%(n)s, %(at)s, %(id)s, %(run)s) ON CONFLICT (name) DO UPDATE SET "
                    "ingested_at = EXCLUDED.ingested_at, event_id = EXCLUDED.event_id, "
                    "run_id = EXCLUDED.run_id, updated_at = now() "
                    "WHERE (msads.pickup_cursor.ingested_at, msads.pickup_cursor.event_id) "
                    "< (EXCLUDED.ingested_at, EXCLUDED.event_id)",
                    {"n": CURSOR, "at": last_at, "id": last_id, "run": run_id})
        result.new += claimed
        if seen < limit:
            break
        after_at, after_id = last_at, last_id
    result.adjustments = claim_adjustments(warehouse, run_id, now, config)
    log.info("claimed %d new, %d late and %d due item(s)", result.new, result.late, result.due)
    return result
