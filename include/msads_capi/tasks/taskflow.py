"""TaskFlow tasks shared by msads_upload_conversions and msads_replay (plan → hash → upload)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import task

if TYPE_CHECKING:
    from airflow.sdk import XComArg


@task
def plan_conversions(upstream: dict | None = None, run_id: str | None = None) -> dict:
    from include.msads_capi.tasks import upload as upload_tasks

    return upload_tasks.plan_conversions(run_id)


@task
def hash_identifiers(planned: dict, run_id: str | None = None) -> dict:
    from include.msads_capi.tasks import upload as upload_tasks

    return upload_tasks.hash_identifiers(run_id)


@task
def accounts_to_upload(hashed: dict) -> list[dict]:
    return hashed["accounts"]


@task(pool="msads_api", map_index_template="{{ account['label'] }}")
def upload_conversions(account: dict, run_id: str | None = None) -> dict:
    from include.msads_capi.tasks import upload as upload_tasks

    return upload_tasks.upload_for_account(account, run_id)


def plan_hash_upload(upstream: XComArg | None = None) -> tuple[XComArg, XComArg, XComArg]:
    """Wire plan → hash → upload per account; returns (planned, hashed, uploads) for what
    follows."""
    planned = plan_conversions(upstream) if upstream is not None else plan_conversions()
    hashed = hash_identifiers(planned)
    uploads = upload_conversions.expand(account=accounts_to_upload(hashed))
    return planned, hashed, uploads
