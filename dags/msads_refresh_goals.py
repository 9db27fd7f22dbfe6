"""
### msads_refresh_goals

Fetches the **offline conversion goals** of every linked Microsoft Advertising account and
checks that each account is still reachable and active ("Does the Conversion Goal exist in
Microsoft Ads?", "Is the account active?").

- **When:** hourly, and on demand (Trigger in the UI).
- **What:** one mapped task per linked account (named by account id, name and Space), in the
  `msads_api` pool. Goals are upserted (first seen, last seen). A goal that disappeared or was
  renamed holds the mappings that point at it, so the upload skips those events as
  `goal_missing` until someone fixes the mapping (`msads map list` shows why).
- **Account status:** `active`, `paused`, `not_found` or `auth_failed`. A sign-in failure fails
  that account's task with the fix (`msads auth login --conn-id ...`); other accounts go on.
- **Alerts** (docs/alerts.md): a task that fails for good sends one alert (per account), and
  one more when it works again.
- **Re-running:** always safe. Clear any task or the whole run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from include.msads_capi.hooks.alerting import TASK_ALERTS

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=15),
    **TASK_ALERTS,  # one alert when a task fails for good, one when it works again
}


@dag(
    dag_id="msads_refresh_goals",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["msads", "microsoft-ads"],
    doc_md=__doc__,
)
def msads_refresh_goals() -> None:
    @task
    def list_linked_accounts() -> list[dict]:
        from include.msads_capi.tasks.refresh_goals import linked_accounts

        return linked_accounts()

    @task(pool="msads_api", map_index_template="{{ account['label'] }}")
    def refresh_account_goals(account: dict) -> dict:
        from include.msads_capi.tasks.refresh_goals import refresh_one

        return refresh_one(account)

    @task(trigger_rule="all_done")
    def summarize_refresh(results: list[dict]) -> dict:
        from include.msads_capi.tasks.refresh_goals import summarize

        return summarize([r for r in results if r])

    summarize_refresh(refresh_account_goals.expand(account=list_linked_accounts()))


msads_refresh_goals()
