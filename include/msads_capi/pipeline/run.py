"""The whole pipeline in one process: what the DAG does task by task, for the demo and benches."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from include.msads_capi import configuration as cfg
from include.msads_capi.microsoft.client import AdsClient
from include.msads_capi.microsoft.faults import AccountAuthError
from include.msads_capi.pipeline.claim import ClaimResult, claim
from include.msads_capi.pipeline.config import PipelineConfig
from include.msads_capi.pipeline.hashing import hash_stage
from include.msads_capi.pipeline.plan import plan
from include.msads_capi.pipeline.summary import summarize
from include.msads_capi.pipeline.upload import accounts_with_work, upload_account
from include.msads_capi.warehouse import Warehouse, transaction

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def run_once(warehouse: Warehouse, client_for: Callable[[cfg.Account], AdsClient], run_id: str,
             config: PipelineConfig | None = None,
             clock: Callable[[], datetime] = utcnow, *, claim_work: bool = True) -> dict:
    """claim → plan → hash → upload per account → summarise; returns the run summary.

    ``claim_work=False`` skips the claim stage: the run works only on rows already claimed for
    it (a replay reopens its rows itself).
    """
    config = config or PipelineConfig()
    claimed = claim(warehouse, run_id, clock(), config) if claim_work else ClaimResult()
    plan(warehouse, run_id, clock(), config)
    hashed = hash_stage(warehouse, run_id, clock(), config)
    uploads = []
    for item in accounts_with_work(warehouse, run_id):
        with transaction(warehouse) as conn:
            account = cfg.get_account(conn, item["account_id"])
        try:
            uploads.append(upload_account(warehouse, client_for(account), account.account_id,
                                          run_id, config, clock).as_dict())
        except AccountAuthError as exc:
            log.error("account %s: %s", account.account_id, exc)
            uploads.append({"account_id": account.account_id, "stopped": str(exc)})
    summary = summarize(warehouse, run_id, coverage=dict(hashed.coverage))
    summary["claimed"] = claimed.as_dict()
    summary["uploads"] = uploads
    return summary
