"""
### msads_alerts

Every 5 minutes, looks at the warehouse for what a person must hear about, and tells them
**once per incident** (docs/alerts.md):

- **Rejection rate:** Microsoft rejected more than `MSADS_ALERT_REJECTION_RATE` (default 5%)
  of an account's conversions over the last hour, once it answered at least
  `MSADS_ALERT_MIN_CONVERSIONS` (default 50) of them.
- **Sign-in about to expire:** a Microsoft profile's refresh token expires within 14 days.
- **Account auth_failed:** an account can no longer sign in; its conversions are held.

Each sends one alert when it starts and one when it clears, through the Airflow connections in
`MSADS_ALERT_CONNECTIONS` (default `msads_alerts_email` (SMTP) and `msads_alerts_slack` (Slack
incoming webhook); one that is not defined is skipped). It also sends what an earlier attempt
could not, for example while the mail server was down. Failed upload and goal-refresh tasks,
and upload runs that are late, alert from those DAGs themselves, with the same de-duplication.

- **Where to look:** `SELECT * FROM msads.alerts ORDER BY opened_at DESC` (every incident:
  when it opened, how often it was seen, when and why it cleared, whether it was sent).
- **Re-running:** always safe: it checks the state now and sends only what is news.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
}


@dag(
    dag_id="msads_alerts",
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    dagrun_timeout=timedelta(minutes=5),
    tags=["msads", "microsoft-ads", "alerts"],
    doc_md=__doc__,
)
def msads_alerts() -> None:
    @task
    def check_and_send_alerts() -> dict:
        from include.msads_capi.tasks.alerts import check_and_send

        return check_and_send()

    check_and_send_alerts()


msads_alerts()
