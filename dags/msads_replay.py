"""
### msads_replay

Manual. **After a mapping or an account has been fixed**, sends again the events that were not
sent, under today's configuration. It never sends an `uploaded` conversion again, and leaves
an event's already-uploaded goals alone when its other goals are replayed.

**Params** (Trigger DAG w/ config):
- `space`: only this Space (empty: all);
- `event_names`: only these event names (empty: all);
- `start`, `end`: event_time range, `end` exclusive (empty: unbounded). The form's date-time
  picker reads the time in the UI's time zone (top right) and sends it with its zone; a
  time written by hand (JSON configuration, `--conf`, REST) needs `Z` or an offset such as
  `+01:00`: without one the task fails at once, as `msads replay --start` refuses it;
- `outcomes`: which outcomes to resend, e.g. `not_mapped`, `goal_missing`,
  `account_inactive`, `goal_paused`, `failed`, `capi_off`, `rejected` (every `rejected:*`),
  `refused` (rejections that earlier versions recorded when Microsoft refused a whole
  request);
- `dry_run` (default **true**): only report how many events would be planned again, and how
  many of them now have an enabled mapping with CAPI on. Run it, read the report in
  `reopen_selected`'s log or XCom, then trigger again with `dry_run` off.

Then the same stages as `msads_upload_conversions`: `plan_and_hash` → `upload_conversions` per
account → `record_and_summarise`.
Re-running is safe: a cleared task only finishes what its run reopened.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from include.msads_capi.hooks.alerting import TASK_ALERTS
from include.msads_capi.outcomes import REPLAY_DEFAULT, REPLAYABLE
from include.msads_capi.tasks.taskflow import plan_and_hash, upload_conversions

OUTCOMES = list(REPLAYABLE)
# The rule for times is in include/msads_capi/times.py, shared with `msads replay`.
ZONED = "picked in the UI's time zone; typed by hand it needs Z or +01:00"


@dag(
    dag_id="msads_replay",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-engineering", "retries": 1,
                  "retry_delay": timedelta(seconds=30), **TASK_ALERTS},
    tags=["msads", "microsoft-ads", "replay"],
    doc_md=__doc__,
    params={
        "space": Param(None, type=["null", "string"], description="Space id, or empty"),
        "event_names": Param([], type="array", items={"type": "string"},
                             description="event names, or empty for all"),
        "start": Param(None, type=["null", "string"], format="date-time",
                       description=f"event_time from (inclusive); {ZONED}"),
        "end": Param(None, type=["null", "string"], format="date-time",
                     description=f"event_time until (exclusive); {ZONED}"),
        "outcomes": Param(list(REPLAY_DEFAULT),
                          type="array", items={"type": "string", "enum": OUTCOMES},
                          description="outcomes to resend (never uploaded)"),
        "dry_run": Param(True, type="boolean", description="only report what would be sent"),
    },
)
def msads_replay() -> None:
    @task
    def reopen_selected(params: dict | None = None, run_id: str | None = None) -> dict:
        from include.msads_capi.tasks import upload as upload_tasks

        return upload_tasks.reopen_for_replay(dict(params), run_id)

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def resend_requested(report: dict) -> bool:
        return not report["dry_run"] and report["events"] > 0

    @task(trigger_rule="none_failed")
    def record_and_summarise(report: dict, run_id: str | None = None) -> dict:
        from include.msads_capi.tasks import upload as upload_tasks

        return {**upload_tasks.record_and_summarise(run_id, None), "replay": report}

    report = reopen_selected()
    accounts = plan_and_hash()
    resend_requested(report) >> accounts
    upload_conversions.expand(account=accounts) >> record_and_summarise(report)


msads_replay()
