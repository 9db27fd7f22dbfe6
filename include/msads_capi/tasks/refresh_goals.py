"""The tasks of the ``msads_refresh_goals`` DAG: warehouse, hook and error mapping around
:mod:`include.msads_capi.goals.refresh`, which does the work."""

from __future__ import annotations

from include.msads_capi import migrations
from include.msads_capi import spaces as cfg
from include.msads_capi.errors import MsadsError
from include.msads_capi.goals.refresh import refresh_account, summarize, to_refresh
from include.msads_capi.microsoft.faults import AccountAuthError
from include.msads_capi.tasks.common import task_errors, task_warehouse
from include.msads_capi.warehouse import transaction

__all__ = ["linked_accounts", "refresh_one", "summarize"]


def linked_accounts() -> list[dict]:
    """Linked accounts to refresh: all but ``auth_failed`` ones, which wait for a person."""
    with task_errors("listing linked accounts"):
        warehouse = task_warehouse()
        migrations.require_current(warehouse)
        with transaction(warehouse) as conn:
            return to_refresh(cfg.list_accounts(conn))


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
