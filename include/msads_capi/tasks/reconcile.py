"""The tasks of the ``msads_reconcile`` DAG: warehouse, hook and error mapping around
:mod:`include.msads_capi.reconcile`, which does the work."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from include.msads_capi import migrations, settings
from include.msads_capi import spaces as cfg
from include.msads_capi.reconcile import reconcile_account
from include.msads_capi.tasks.common import task_errors, task_warehouse
from include.msads_capi.warehouse import transaction

log = logging.getLogger(__name__)


def active_accounts() -> list[dict]:
    """The accounts whose uploads to reconcile: the active ones (the others cannot be asked)."""
    with task_errors("listing linked accounts"):
        warehouse = task_warehouse()
        migrations.require_current(warehouse)
        with transaction(warehouse) as conn:
            accounts = cfg.list_accounts(conn)
    return [a.task_entry() for a in accounts if a.status == "active"]


def reconcile_one(account: dict) -> dict:
    """Record Microsoft's view of one account's recent uploads."""
    from include.msads_capi.hooks.msads import MicrosoftAdsHook

    with task_errors("reconciliation"):
        warehouse = task_warehouse()
        with transaction(warehouse) as conn:
            linked = cfg.get_account(conn, account["account_id"])
        client = MicrosoftAdsHook(linked.conn_id).client
        days = settings.load().reconcile_days
        return reconcile_account(warehouse, client, linked, datetime.now(UTC), days).as_dict()


def summarize(results: list[dict]) -> dict:
    """Totals over the accounts, for the run's XCom (counts only, no personal data)."""
    keys = ("uploaded", "reported", "attributed", "waiting", "not_reported")
    summary = {k: sum(r[k] for r in results) for k in keys}
    reasons: dict[str, int] = {}
    for r in results:
        for reason, n in r["unattributed"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    summary["unattributed"] = reasons
    log.info("reconciliation: %s", summary)
    return summary
