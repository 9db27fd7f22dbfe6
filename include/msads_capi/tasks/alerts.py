"""The task of the ``msads_alerts`` DAG: look at the warehouse, send what is news."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from include.msads_capi import alerts, migrations, settings
from include.msads_capi.hooks.alerting import send
from include.msads_capi.tasks.common import task_errors, task_warehouse
from include.msads_capi.warehouse import transaction

log = logging.getLogger(__name__)


def _now() -> datetime:
    # The clock, not the run's dates: an alert is about the state now, so a cleared old run
    # checks the present instead of re-opening what was over.
    return datetime.now(UTC)


def check_and_send() -> dict:
    """Open, count and end incidents (rejection rate, expiring sign-ins, auth_failed accounts),
    then send what is news and what earlier runs could not send. Sending errors are logged and
    the alerts wait for the next run; only the warehouse or a bad setting fails the task."""
    with task_errors("checking for alerts"):
        warehouse = task_warehouse()
        migrations.require_current(warehouse)
        config = settings.load().alerts
        now = _now()
        with transaction(warehouse) as conn:
            notices = alerts.check(conn, now, config) + alerts.unsent(conn, now)
            still_open = len(alerts.open_incidents(conn))
    sent = send(notices, warehouse, config)
    summary = {"alerts": sum(not n.recovery for n in notices),
               "recoveries": sum(n.recovery for n in notices), "sent": sent,
               "open_incidents": still_open}
    log.info("alerts: %s", summary)
    return summary
