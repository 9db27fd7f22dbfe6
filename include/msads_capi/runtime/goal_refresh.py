"""The tasks of the ``msads_refresh_goals`` DAG, as plain functions the DAG file calls."""

from __future__ import annotations

import logging

from include.msads_capi import configuration as cfg
from include.msads_capi import migrations
from include.msads_capi.errors import MsadsError
from include.msads_capi.microsoft.faults import AccountAuthError
from include.msads_capi.refresh import refresh_account
from include.msads_capi.runtime.common import task_errors, task_warehouse
from include.msads_capi.warehouse import transaction

log = logging.getLogger(__name__)


def linked_accounts() -> list[dict]:
    """Linked accounts to refresh: all but ``auth_failed`` ones, which wait for a person."""
    with task_errors("listing linked accounts"):
        warehouse = task_warehouse()
        migrations.require_current(warehouse)
        with transaction(warehouse) as conn:
            accounts = cfg.list_accounts(conn)
    skipped = [a.account_id for a in accounts if a.status == "auth_failed"]
    if skipped:
        log.warning("not refreshing account(s) %s: sign-in failed earlier; reconnect with "
                    "msads auth login, which makes them active again", skipped)
    return [{"account_id": a.account_id, "conn_id": a.conn_id,
             "label": f"{a.account_id} {a.name or ''} ({a.space_id})".replace("  ", " ")}
            for a in accounts if a.status != "auth_failed"]


def refresh_one(account: dict) -> dict:
    """Refresh one account's status and goals; sign-in failures fail the task at once."""
    from include.msads_capi.hooks.msads import MicrosoftAdsHook

    with task_errors("goal refresh"):
        warehouse = task_warehouse()
        with transaction(warehouse) as conn:
            linked = cfg.get_account(conn, account["account_id"])
        hook = MicrosoftAdsHook(linked.conn_id)
        try:
            summary = refresh_account(warehouse, hook.client, linked)
        except AccountAuthError as exc:
            raise MsadsError(f"account {linked.account_id} is now auth_failed: {exc}") from exc
        return summary.as_dict()


def summarize(results: list[dict]) -> dict:
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = {"accounts": counts, "goals": sum(r["goals"] for r in results),
               "mappings_held": sum(r["mappings_held"] for r in results)}
    log.info("goal refresh: %s", summary)
    return summary
