"""Stage 5, record and summarise: what this run decided, per outcome and per account."""

from __future__ import annotations

import logging

from include.msads_capi.warehouse import Warehouse, transaction

log = logging.getLogger(__name__)


# This run's outcomes per account and reason: its ledger rows (results_run_idx), and what it
# left waiting in the outbox with no ledger row.
_RUN_COUNTS = """
SELECT account_id, reason, count(*) FROM (
    SELECT account_id, reason FROM msads.results WHERE run_id = %(run)s
    UNION ALL
    SELECT account_id, reason FROM msads.outbox_pending WHERE run_id = %(run)s) r
GROUP BY 1, 2 ORDER BY 2, 1
"""


def summarize(warehouse: Warehouse, run_id: str, *, coverage: dict | None = None) -> dict:
    """Counts of this run's outcomes (per reason and per account) and of all pending work.

    Small and free of personal data: it is returned as the run's XCom.
    """
    with transaction(warehouse) as conn:
        by_reason: dict[str, int] = {}
        by_account: dict[str, dict] = {}
        for account, reason, n in conn.execute(_RUN_COUNTS, {"run": run_id}):
            by_reason[reason] = by_reason.get(reason, 0) + n
            if account:
                by_account.setdefault(str(account), {})[reason] = n
        adjustments = dict(conn.execute(
            "SELECT reason, count(*) FROM msads.adjustment_results WHERE run_id = %s "
            "GROUP BY reason ORDER BY reason", (run_id,)).fetchall())
        pending, deferred = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'pending') "
            "+ (SELECT count(*) FROM msads.outbox_pending), "
            "count(*) FILTER (WHERE status = 'deferred') FROM msads.results "
            "WHERE status IN ('pending', 'deferred')").fetchone()  # results_due_idx
    summary = {"run_id": run_id, "outcomes": by_reason, "adjustments": adjustments,
               "accounts": by_account,
               "pending": pending, "deferred": deferred,
               "identifier_coverage": coverage or {}}
    log.info("run %s: outcomes %s; adjustments %s; per account %s; pending %d, deferred %d; "
             "identifiers %s", run_id, by_reason, adjustments, by_account, pending, deferred,
             coverage or {})
    return summary
