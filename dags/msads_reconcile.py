"""
### msads_reconcile

Asks Microsoft's **offline conversion reports** what became of every conversion uploaded in the
last days ("Did Microsoft count it?"): counted or not, attributed to a click or not, with
Microsoft's reason (`NoMatchingClickFound`, `MissingMatchIdentifiers`,
`GoalNotFoundOrInactive`, ...), and when Microsoft last reported it.

- **When:** hourly, and on demand (Trigger in the UI).
- **What:** one mapped task per active linked account (named by account id, name and Space),
  in the `msads_api` pool. Each conversion's ledger row gets Microsoft's view; per goal and
  day, Microsoft's own totals are kept beside it.
- **Settings:** `MSADS_RECONCILE_DAYS` (default 7): how far back to look.
- **Report lag:** Microsoft's reports can take up to 24 hours. A conversion not reported yet is
  "not reported yet", never an alarm; only after the lag is it `NotReported`.
- **Where to look:** `msads report --since 7d` (per account and goal: accepted, counted,
  attributed, match rate by click id, email and phone, the top reasons), and `msads why EVENT_ID`
  (its last line).
- **Re-running:** always safe: it only reads Microsoft's reports and records what they say.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=15),
}


@dag(
    dag_id="msads_reconcile",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["msads", "microsoft-ads", "reconcile"],
    doc_md=__doc__,
)
def msads_reconcile() -> None:
    @task
    def list_active_accounts() -> list[dict]:
        from include.msads_capi.tasks.reconcile import active_accounts

        return active_accounts()

    @task(pool="msads_api", map_index_template="{{ account['label'] }}")
    def reconcile_account(account: dict) -> dict:
        from include.msads_capi.tasks.reconcile import reconcile_one

        return reconcile_one(account)

    @task(trigger_rule="all_done")
    def summarize_reconciliation(results: list[dict]) -> dict:
        from include.msads_capi.tasks.reconcile import summarize

        return summarize([r for r in results if r])

    summarize_reconciliation(reconcile_account.expand(account=list_active_accounts()))


msads_reconcile()
