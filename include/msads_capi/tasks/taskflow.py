"""TaskFlow tasks shared by msads_upload_conversions and msads_replay.

A preparing task (``claim_plan_hash`` for the upload DAG, ``plan_and_hash`` after a replay's
reopen) returns the accounts with work, and ``upload_conversions.expand(account=...)`` runs one
mapped task per account (or part); the stage counts go to the XCom ``summary``, which the last
task reads. Few tasks mean few task starts, and each start costs seconds under Airflow.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import task


def _accounts(ti: Any, prepared: dict) -> list[dict]:
    """Keep the stage counts as the XCom ``summary``; return the accounts to upload to."""
    ti.xcom_push("summary", {k: v for k, v in prepared.items() if k != "accounts"})
    return prepared["accounts"]


@task
def claim_plan_hash(ti: Any = None, run_id: str | None = None) -> list[dict]:
    from include.msads_capi.tasks import upload as upload_tasks

    return _accounts(ti, upload_tasks.claim_plan_hash(run_id))


@task
def plan_and_hash(ti: Any = None, run_id: str | None = None) -> list[dict]:
    from include.msads_capi.tasks import upload as upload_tasks

    return _accounts(ti, upload_tasks.plan_and_hash(run_id))


@task(pool="msads_api", map_index_template="{{ account['label'] }}")
def upload_conversions(account: dict, run_id: str | None = None) -> dict:
    from include.msads_capi.tasks import upload as upload_tasks

    return upload_tasks.upload_for_account(account, run_id)

