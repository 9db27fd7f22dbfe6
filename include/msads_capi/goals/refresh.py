"""Refresh one linked account: its status from the profile, its goals from Microsoft."""

from __future__ import annotations

import logging
from datetime import datetime

from include.msads_capi.goals.records import (
    RefreshSummary,
    account_status,
    record_goals,
    set_account_status,
)
from include.msads_capi.microsoft.client import AdsClient
from include.msads_capi.microsoft.faults import AccountAuthError, AccountNotFoundError
from include.msads_capi.microsoft.tokens import utcnow
from include.msads_capi.spaces import Account
from include.msads_capi.warehouse import Warehouse, transaction

log = logging.getLogger(__name__)


def to_refresh(accounts: list[Account]) -> list[dict]:
    """Linked accounts to refresh, labelled for the UI: all but ``auth_failed`` ones, which wait
    for a person to sign in again."""
    skipped = [a.account_id for a in accounts if a.status == "auth_failed"]
    if skipped:
        log.warning("not refreshing account(s) %s: sign-in failed earlier; reconnect with "
                    "msads auth login, which makes them active again", skipped)
    return [a.task_entry() for a in accounts if a.status != "auth_failed"]


def summarize(results: list[dict]) -> dict:
    """One line for a whole refresh: accounts per status, goals, mappings held."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = {"accounts": counts, "goals": sum(r["goals"] for r in results),
               "mappings_held": sum(r["mappings_held"] for r in results)}
    log.info("goal refresh: %s", summary)
    return summary


def mark_auth_failed(warehouse: Warehouse, account_id: int, error: Exception) -> None:
    with transaction(warehouse) as conn:
        set_account_status(conn, account_id, "auth_failed", str(error))


def refresh_account(warehouse: Warehouse, client: AdsClient, account: Account, *,
                    now: datetime | None = None) -> RefreshSummary:
    """Check the account is still reachable and active, then upsert its goals.

    An authentication failure marks the account ``auth_failed`` and is raised (a person must
    reconnect); an account Microsoft no longer knows becomes ``not_found`` and is returned.
    """
    now = now or utcnow()
    try:
        listed = {a.account_id: a for a in client.list_accounts()}
        status, reason = account_status(listed.get(account.account_id))
        if status == "not_found":
            goals = None
        else:
            goals = client.get_offline_goals(account.account_id, account.customer_id)
    except AccountAuthError as exc:
        mark_auth_failed(warehouse, account.account_id, exc)
        raise
    except AccountNotFoundError as exc:
        status, reason, goals = "not_found", str(exc), None
    with transaction(warehouse) as conn:
        set_account_status(conn, account.account_id, status, reason)
        if goals is None:
            summary = RefreshSummary(account.account_id, status, message=reason)
        else:
            summary = record_goals(conn, account.account_id, goals, now)
            summary.status, summary.message = status, reason
    log.info("account %s: %s, %d goal(s)%s%s", account.account_id, summary.status, summary.goals,
             f", disappeared: {summary.disappeared}" if summary.disappeared else "",
             f", renamed: {summary.renamed}" if summary.renamed else "")
    return summary
