"""
### msads_upload_conversions

Sends new rows of `conversion_events` to Microsoft Advertising as offline conversions, usually
within seconds, and records **one outcome per event and mapped goal** in `msads.results`
(`SELECT * FROM msads.event_outcomes WHERE event_id = '...'`, or `msads why EVENT_ID`).

**When it runs:** as soon as new rows arrive (asset `msads_new_rows`: a watcher in the
triggerer looks past the pick-up cursor every 2 seconds), and every minute in any case (the
backstop for retries, late-committed rows, and times when the watcher is down). One run at a
time: rows that arrive during a run start one more run after it, never a queue of them.

**Flow:** `claim_plan_hash` (claim: new rows after the cursor, late-committed rows in the
overlap window, due retries; plan: CAPI switch, mapping, goal, account, send rule; hash:
normalise and SHA-256 email and phone, then no identifier, goal too new, outside window, future
time, invalid value; its log has one line per stage) → `upload_conversions` (one mapped task
per account, ≤1,000 conversions per call, pool `msads_api`) → `record_and_summarise` (counts
per outcome and account, identifier coverage, pending work; no personal data).

**Re-running is safe.** Clear any task or the whole run at any time: every stage reads its work
from the ledger, never decides an event twice, and resends only what has no recorded outcome
(Microsoft ignores duplicates of click id, time and goal). Transient Microsoft trouble is not
an outcome: rows wait with a next attempt and are retried with backoff for 24 hours. A sign-in
failure fails only that account's task, with the fix (`msads auth login --conn-id ...`).

Settings: the Airflow Variables `msads_chunk_size` (default 20,000 events) and
`msads_run_time_budget_seconds` (per account and run, default 45), under Admin > Variables; or
the environment variables `MSADS_CHUNK_SIZE` and `MSADS_RUN_BUDGET_SECONDS` (docs/configuration.md).

**Alerts** (docs/alerts.md): a task that fails for good sends one alert, and one more when it
works again; a run not finished 5 minutes after it was queued sends one (deadline alert).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    AssetWatcher,
    CronTriggerTimetable,
    dag,
    task,
)

from include.msads_capi.hooks.alerting import TASK_ALERTS, run_deadline
from include.msads_capi.hooks.watcher import NewRowsTrigger
from include.msads_capi.tasks.taskflow import claim_plan_hash, upload_conversions

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=5),
    **TASK_ALERTS,  # one alert when a task fails for good, one when it works again
}


# New events or adjustments beyond the pick-up cursor (include/msads_capi/hooks/watcher.py).
NEW_ROWS = Asset("msads_new_rows", watchers=[
    AssetWatcher(name="msads_new_rows_watcher", trigger=NewRowsTrigger())])


@dag(
    dag_id="msads_upload_conversions",
    # As soon as the watcher sees new rows, and every minute as the backstop.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("* * * * *", timezone="UTC"), assets=NEW_ROWS),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    dagrun_timeout=timedelta(minutes=15),
    deadline=run_deadline(timedelta(minutes=5)),  # one alert when a run is late (docs/alerts.md)
    tags=["msads", "microsoft-ads"],
    doc_md=__doc__,
)
def msads_upload_conversions() -> None:
    @task(trigger_rule="all_done")
    def record_and_summarise(ti: Any = None, run_id: str | None = None) -> dict:
        from include.msads_capi.tasks import upload as upload_tasks

        # claim_plan_hash's stage counts (none when it failed: the run's outcomes still count)
        summary = ti.xcom_pull(task_ids="claim_plan_hash", key="summary")
        return upload_tasks.record_and_summarise(run_id, summary)

    accounts = claim_plan_hash()
    # record after every upload, however each one ended
    upload_conversions.expand(account=accounts) >> record_and_summarise()


msads_upload_conversions()
