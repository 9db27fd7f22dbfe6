"""The tasks of ``msads_upload_conversions`` as plain functions the DAG file calls."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from include.msads_capi import migrations, settings
from include.msads_capi import spaces as cfg
from include.msads_capi.errors import MsadsError
from include.msads_capi.microsoft.faults import AccountAuthError
from include.msads_capi.pipeline.claim import claim
from include.msads_capi.pipeline.hashing import combined_coverage, hash_stage
from include.msads_capi.pipeline.plan import plan
from include.msads_capi.pipeline.summary import summarize
from include.msads_capi.pipeline.upload import Part, accounts_with_work, upload_account
from include.msads_capi.tasks.common import task_errors, task_warehouse
from include.msads_capi.times import parse_time
from include.msads_capi.warehouse import transaction

log = logging.getLogger(__name__)


def _now() -> datetime:
    # Microsoft's rules (90 days, 2 hours, future times) are about the moment of upload, so the
    # checks use the clock; which events a run takes comes from the ledger, not from time.
    return datetime.now(UTC)


# Settings a data engineer can change in the Airflow UI (Admin > Variables); set there, they
# win over the environment variables of the same meaning (docs/configuration.md).
AIRFLOW_VARIABLES = (("msads_chunk_size", "chunk_size", int),
                     ("msads_run_time_budget_seconds", "upload_budget_seconds", float))


def _config() -> settings.PipelineConfig:
    from airflow.sdk import Variable

    overrides = {}
    for key, name, kind in AIRFLOW_VARIABLES:
        raw = Variable.get(key, default=None)
        if raw is None or not str(raw).strip():
            continue
        try:
            overrides[name] = kind(str(raw).strip())
        except ValueError:
            raise MsadsError(f"the Airflow Variable {key} is {raw!r}, not a number; fix it in "
                             "Admin > Variables, or delete it to use the default") from None
    return settings.pipeline_config(**overrides)


def claim_new_events(run_id: str) -> dict:
    """Claim due retries, events that committed late and new adjustments; new events are
    taken by the plan stage, chunk by chunk, under the pick-up cursor's lock."""
    with task_errors("claiming new events"):
        warehouse = task_warehouse()
        migrations.require_current(warehouse)
        return claim(warehouse, run_id, _now(), _config()).as_dict()


def plan_conversions(run_id: str, *, take_new: bool = True) -> dict:
    """Counts per reason decided while planning, ``coverage``: the identifiers of what was
    hashed in the same pass, and ``new_events``: how many new events it took (none for a
    replay, ``take_new=False``)."""
    with task_errors("planning conversions"):
        counts = plan(task_warehouse(), run_id, _now(), _config(), take_new=take_new)
        return {"outcomes": dict(counts), "coverage": dict(counts.coverage),
                "new_events": counts.new_events}


def _prepared(planned: dict, hashed: dict) -> dict:
    """The plan's and the hash stage's results as one: what the last task summarises."""
    return {**hashed, "coverage": combined_coverage(planned["coverage"], hashed.get("coverage")),
            "planned": planned["outcomes"]}


def hash_identifiers(run_id: str) -> dict:
    with task_errors("hashing identifiers"):
        warehouse = task_warehouse()
        summary = hash_stage(warehouse, run_id, _now(), _config())
        return {**summary.as_dict(),
                "accounts": accounts_with_work(warehouse, run_id, _config())}


def claim_plan_hash(run_id: str) -> dict:
    """The upload DAG's first task: claim, plan and hash in one task (one task start instead of
    three: each costs seconds under Airflow, and a new event waits for all of them). Each stage
    logs its own line, and an error names the stage it came from."""
    claimed = claim_new_events(run_id)
    log.info("claim: %s", claimed)
    planned = plan_conversions(run_id)
    log.info("plan: %s", planned)
    claimed = {**claimed, "new": planned["new_events"],
               "total": claimed["total"] + planned["new_events"]}
    return {**_prepared(planned, hash_identifiers(run_id)), "claimed": claimed}


def plan_and_hash(run_id: str) -> dict:
    """Plan, then hash, for the replay DAG (after its own reopen step)."""
    planned = plan_conversions(run_id, take_new=False)
    log.info("plan: %s", planned)
    return _prepared(planned, hash_identifiers(run_id))


def upload_for_account(account: dict, run_id: str) -> dict:
    from include.msads_capi.hooks.msads import MicrosoftAdsHook

    with task_errors("upload"):
        warehouse = task_warehouse()
        with transaction(warehouse) as conn:
            linked = cfg.get_account(conn, account["account_id"])
        hook = MicrosoftAdsHook(linked.conn_id)
        part = Part.of_entry(account)
        try:
            result = upload_account(warehouse, hook.client, linked.account_id, run_id,
                                    _config(), clock=_now, part=part).as_dict()
        except AccountAuthError as exc:
            raise MsadsError(f"account {linked.account_id} is now auth_failed and its "
                             f"conversions are held: {exc}") from exc
        # AccountRefusedError (a person must look; the next run tries again after the
        # backoff) fails the task at once, like every MsadsError.
        return {**result, "part": part.number, "parts": part.of}


def record_and_summarise(run_id: str, hashed: dict | None) -> dict:
    coverage = (hashed or {}).get("coverage") or {}
    with task_errors("recording the run's outcomes"):
        return summarize(task_warehouse(), run_id, coverage=coverage)


def reopen_for_replay(params: dict, run_id: str) -> dict:
    """The replay DAG's first task: reopen the selected rows, or report them (dry run)."""
    from include.msads_capi.pipeline.replay import ReplayRequest, reopen

    with task_errors("replay parameters"):
        # A time without a zone fails the task at once, as the CLI refuses it (times.py).
        req = ReplayRequest(space=params.get("space") or None,
                            event_names=list(params.get("event_names") or []),
                            start=parse_time(params.get("start"), "start"),
                            end=parse_time(params.get("end"), "end"),
                            outcomes=list(params.get("outcomes") or []),
                            dry_run=bool(params.get("dry_run", True)))
        report = reopen(task_warehouse(), req, run_id, _now())
    log.info("replay %s: %s", "dry run" if req.dry_run else "reopened", report)
    return report
