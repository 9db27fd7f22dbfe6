"""Stage 1, claim: take new events, late-committed events and due retries for this run.

New events are read in keyset order after the pick-up cursor; the overlap window before the
cursor is swept for rows that committed late (at most once a minute: ``pickup.sweep_due``);
both anti-join the ledger, so an event already decided is never decided again. Every claim is a
committed ledger row, so two runs (or two workers) never take the same event, and a run that
dies leaves claims the next run takes over once the lease has passed.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from include.msads_capi import ledger
from include.msads_capi.pipeline.adjustments import claim_adjustments
from include.msads_capi.pipeline.pickup import EVENTS, pick_up
from include.msads_capi.settings import PipelineConfig
from include.msads_capi.warehouse import Warehouse, transaction

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


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


def claim(warehouse: Warehouse, run_id: str, now: datetime,
          config: PipelineConfig) -> ClaimResult:
    """Claim work for ``run_id``; returns how many events and ledger rows it took."""
    result = ClaimResult()
    with transaction(warehouse) as conn:
        # batches of a run whose lease has passed become outbox rows, which the claim of due
        # work below takes over (claim_due.sql)
        stale = ledger.unpack_batches(conn, ledger.UNPACK_STALE,
                                      {"stale_before": now - config.lease})
    if stale:
        log.info("%d conversion(s) of runs whose lease has passed, unpacked to take over",
                 len(stale))
    result.new, result.late, result.due = pick_up(warehouse, EVENTS, run_id, now, config)
    result.adjustments = claim_adjustments(warehouse, run_id, now, config)
    log.info("claimed %d late and %d due item(s); new events are taken while planning",
             result.late, result.due)
    return result
