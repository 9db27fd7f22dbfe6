"""Alerts through Airflow: the notifier on the DAGs' tasks, the deadline callback, the channels.

:mod:`include.msads_capi.alerts` decides what is news; this module sends it through the
Airflow connections that ``MSADS_ALERT_CONNECTIONS`` names, with the providers' own notifiers:
an ``smtp`` connection through :class:`SmtpNotifier`, a ``slackwebhook`` one through
:class:`SlackWebhookNotifier` (docs/alerts.md shows both). A connection that is not defined is
skipped with one line in the log. Nothing here ever fails a task: an error while recording or
sending is logged, and a notice that no channel took is handed back to be sent by the next
``msads_alerts`` run.

The messages are passed to the notifiers as they are and never rendered as Jinja templates, so
nothing in an error message can be evaluated.
"""

from __future__ import annotations

import asyncio
import html
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import AsyncCallback, BaseNotifier, DeadlineAlert, DeadlineReference

from include.msads_capi import alerts, settings
from include.msads_capi.hooks.connections import airflow_warehouse, connection_dict
from include.msads_capi.warehouse import Warehouse, transaction

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

SMTP, SLACK = "smtp", "slackwebhook"


def utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- channels


def _email_html(notice: alerts.Notice) -> str:
    paragraphs = (html.escape(p).replace("\n", "<br>") for p in notice.text.split("\n\n"))
    return "".join(f"<p>{p}</p>" for p in paragraphs)


def _slack_text(notice: alerts.Notice) -> str:
    def esc(s: str) -> str:  # Slack's own three escapes
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    return f"*{esc(notice.subject)}*\n{esc(notice.text)}"


def _recipients(extra: dict, config: settings.AlertSettings) -> list[str]:
    to = extra.get("to") or list(config.email_to)
    if isinstance(to, str):
        to = [t.strip() for t in to.replace(";", ",").split(",")]
    return [t for t in to if t]


def _notifier(conn_id: str, conn: dict, notice: alerts.Notice,
              config: settings.AlertSettings) -> BaseNotifier | None:
    """The provider's notifier for one message through one connection, or None (logged)."""
    extra = conn.get("extra") or {}
    if conn.get("conn_type") == SMTP:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        to = _recipients(extra, config)
        if not to or not extra.get("from_email"):
            log.warning("alert connection %s sends no email: give it extra {\"from_email\": "
                        "..., \"to\": ...} (or set MSADS_ALERT_EMAIL_TO); docs/alerts.md",
                        conn_id)
            return None
        return SmtpNotifier(to=to, subject=notice.subject, html_content=_email_html(notice),
                            smtp_conn_id=conn_id)
    if conn.get("conn_type") == SLACK:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        return SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=_slack_text(notice))
    log.warning("alert connection %s is of type %r; alerts go through connections of type %s "
                "or %s (docs/alerts.md)", conn_id, conn.get("conn_type"), SMTP, SLACK)
    return None


def _channels(config: settings.AlertSettings) -> dict[str, dict]:
    found = {}
    for conn_id in config.connections:
        conn = connection_dict(conn_id)
        if conn is None:
            log.info("alert connection %s is not defined; skipped (docs/alerts.md)", conn_id)
        else:
            found[conn_id] = conn
    return found


def _deliver(notice: alerts.Notice, channels: dict[str, dict],
             config: settings.AlertSettings) -> list[str]:
    """Send ``notice`` through every channel; the connection ids that took it."""
    took = []
    for conn_id, conn in channels.items():
        try:
            notifier = _notifier(conn_id, conn, notice, config)
            if notifier is not None:
                notifier.notify({})  # not notifier(context): that would render the text
                took.append(conn_id)
        except Exception as exc:  # a channel's trouble must not stop the others, nor a task
            log.error("could not send alert %r through connection %s: %s: %s", notice.subject,
                      conn_id, type(exc).__name__, alerts.scrub(str(exc)))
    return took


def send(notices: list[alerts.Notice], warehouse: Warehouse,
         config: settings.AlertSettings | None = None) -> int:
    """Send each notice through the alert connections; returns how many went out. A notice no
    defined channel took is given back (:func:`alerts.release`) for the next ``msads_alerts``
    run; with no channel defined at all, the log is the only place it appears."""
    if not notices:
        return 0
    config = config or settings.load().alerts
    channels = _channels(config)
    sent = 0
    for notice in notices:
        took = _deliver(notice, channels, config)
        if took:
            sent += 1
            log.info("alert sent through %s: %s", ", ".join(took), notice.subject)
        elif not channels:
            log.warning("alert (no alert connection is defined, docs/alerts.md): %s\n%s",
                        notice.subject, notice.text)
        else:
            with transaction(warehouse) as conn:
                alerts.release(conn, notice)
            log.warning("alert not sent, the next msads_alerts run tries again: %s",
                        notice.subject)
    return sent


Decide = Callable[["psycopg.Connection", datetime], list["alerts.Notice | None"]]


def record_and_send(what: str, decide: Decide) -> int:
    """Record in the warehouse what ``decide`` sees, then send what is news; never raises."""
    try:
        config = settings.load().alerts
        warehouse = airflow_warehouse()
        with transaction(warehouse) as conn:
            notices = [n for n in decide(conn, utcnow()) if n]
        return send(notices, warehouse, config)
    except Exception as exc:
        log.error("could not record or send the alert for %s: %s: %s", what,
                  type(exc).__name__, alerts.scrub(str(exc)))
        return 0


# --------------------------------------------------------------------------- task callbacks


def _mapped_account(context: dict) -> dict | None:
    """A mapped upload or refresh task's account entry (``{"account_id", "label", ...}``)."""
    account = (getattr(context.get("task"), "op_kwargs", None) or {}).get("account")
    return account if isinstance(account, dict) and "account_id" in account else None


def _error(context: dict) -> str:
    exc = context.get("exception")
    if exc is None:
        return ""
    return str(exc) or type(exc).__name__


def _finished_in_time(context: dict, now: datetime) -> bool:
    """The last task of a run with a deadline alert succeeded before the deadline (counted
    from ``run_after``, which is never later than when the run was queued)."""
    task, dag, run = context.get("task"), context.get("dag"), context.get("dag_run")
    deadlines = getattr(dag, "deadline", None) or []
    if task is None or task.downstream_task_ids or not deadlines or run is None:
        return False
    return now - run.run_after <= min(d.interval for d in deadlines)


class TaskAlertNotifier(BaseNotifier):
    """On a task's failure: open (or count) its incident, and send the alert when it is news.
    On its success: end the incident, and send the recovery once. One incident per DAG, task
    and (for a mapped task) account; the last task of a run with a deadline alert also ends a
    "run is late" incident when the run finished in time.

    Errors are logged, never raised: an alert must not change what happened to the task.
    """

    def __init__(self, failed: bool) -> None:
        super().__init__()
        self.failed = failed

    def notify(self, context: Any) -> None:
        ti = context["ti"]
        dag_id, task_id, run_id = ti.dag_id, ti.task_id, ti.run_id
        account = _mapped_account(context)

        def decide(conn: psycopg.Connection, now: datetime) -> list[alerts.Notice | None]:
            if self.failed:
                incident = alerts.task_failed(dag_id, task_id, run_id, error=_error(context),
                                              account=account)
                return [alerts.sight(conn, incident, now)]
            key = alerts.task_key(dag_id, task_id, account and account["account_id"])
            notices = [alerts.clear(conn, key, now, f"{task_id} succeeded in run {run_id}")]
            if _finished_in_time(context, now):
                notices.append(alerts.clear(conn, alerts.overdue_key(dag_id), now,
                                            f"run {run_id} finished in time"))
            return notices

        record_and_send(f"task {task_id} of {dag_id}", decide)


#: default_args for the upload and goal-refresh DAGs: every task alerts once when it fails
#: (after its retries) and once when it works again.
TASK_ALERTS: dict[str, list[BaseNotifier]] = {
    "on_failure_callback": [TaskAlertNotifier(failed=True)],
    "on_success_callback": [TaskAlertNotifier(failed=False)],
}


# --------------------------------------------------------------------------- deadline alert


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def _overdue(context: dict) -> int:
    run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    dag_id = run.get("dag_id") or "unknown DAG"
    incident = alerts.run_overdue(dag_id, run.get("dag_run_id") or run.get("run_id") or "?",
                                  queued_at=_time(run.get("queued_at")),
                                  deadline_at=_time(deadline.get("deadline_time")))
    return record_and_send(f"the deadline of {dag_id}",
                           lambda conn, now: [alerts.sight(conn, incident, now)])


async def run_overdue(context: dict | None = None, **kwargs: object) -> int:
    """The deadline alert's callback, run on the triggerer: a run is late. One alert per DAG
    until one of its runs finishes in time. The warehouse and the mail server are called from a
    thread, so the triggerer's other work goes on meanwhile."""
    try:
        return await asyncio.to_thread(_overdue, context or {})
    except Exception as exc:  # the callback's outcome is only a log line on the triggerer
        log.error("could not handle a missed deadline: %s: %s", type(exc).__name__,
                  alerts.scrub(str(exc)))
        return 0


def _under_airflow_dags_test() -> bool:
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    return Path(sys.argv[0]).name == "airflow" and words[:2] == ["dags", "test"]


def run_deadline(interval: timedelta) -> list[DeadlineAlert]:
    """A deadline alert for a DAG: a run not finished ``interval`` after it was queued sends
    one alert through the alert connections (:func:`run_overdue`).

    None under ``airflow dags test`` (``make demo``): in Airflow 3.3.2 ``DAG.test()`` crashes
    after a successful run of a DAG with a deadline (apache/airflow#73428; the fix proposed in
    pull request #73430 is not released), and a test run has no triggerer to call it anyway.
    Remove this when an Airflow release has the fix.
    """
    if _under_airflow_dags_test():
        return []
    return [DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=interval,
                          callback=AsyncCallback(run_overdue))]
