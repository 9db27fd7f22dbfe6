"""The whole pipeline in one process: what the DAG does task by task, for the demo and benches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from itertools import groupby

from include.msads_capi import spaces as cfg
from include.msads_capi.microsoft.client import AdsClient
from include.msads_capi.pipeline.claim import ClaimResult, claim
from include.msads_capi.pipeline.hashing import combined_coverage, hash_stage
from include.msads_capi.pipeline.parallel import PartWorkers, upload_one_part
from include.msads_capi.pipeline.plan import plan
from include.msads_capi.pipeline.summary import summarize
from include.msads_capi.pipeline.upload import Part, accounts_with_work
from include.msads_capi.settings import PipelineConfig
from include.msads_capi.warehouse import Warehouse, transaction


def utcnow() -> datetime:
    return datetime.now(UTC)


def run_once(warehouse: Warehouse, client_for: Callable[[cfg.Account], AdsClient], run_id: str,
             config: PipelineConfig | None = None,
             clock: Callable[[], datetime] = utcnow, *, claim_work: bool = True,
             workers: PartWorkers | None = None) -> dict:
    """claim → plan → hash → upload per account → summarise; returns the run summary.

    ``claim_work=False`` skips the claim stage: the run works only on rows already claimed for
    it (a replay reopens its rows itself). An account with a big backlog is uploaded in parts:
    part 1 here, the others by ``workers`` at the same time (or here, one after another, when
    there are none).
    """
    config = config or PipelineConfig()
    claimed = claim(warehouse, run_id, clock(), config) if claim_work else ClaimResult()
    planned = plan(warehouse, run_id, clock(), config, take_new=claim_work)
    claimed.new = planned.new_events  # new events are taken while planning (pipeline/plan.py)
    hashed = hash_stage(warehouse, run_id, clock(), config)
    uploads = []
    for account_id, parts in groupby(accounts_with_work(warehouse, run_id, config),
                                     key=lambda entry: entry["account_id"]):
        parts = list(parts)
        with transaction(warehouse) as conn:
            account = cfg.get_account(conn, account_id)
        handed = [workers.submit(warehouse, entry, run_id, config)
                  for entry in parts[1:]] if workers else []
        for entry in parts[:1] if workers else parts:
            uploads.append(upload_one_part(warehouse, client_for(account), account_id, run_id,
                                           config, Part.of_entry(entry), clock))
        uploads.extend(future.result() for future in handed)
    summary = summarize(warehouse, run_id,
                        coverage=combined_coverage(planned.coverage, hashed.coverage))
    summary["claimed"] = claimed.as_dict()
    summary["uploads"] = uploads
    return summary

