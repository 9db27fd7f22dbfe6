"""Stage 5, record and summarise: what this run decided, per outcome and per account."""

from __future__ import annotations

import logging

from include.msads_capi.warehouse import Warehouse, transaction

log = logging.getLogger(__name__)


def summarize(warehouse: Warehouse, run_id: str, *, coverage: dict | None = None) -> dict:
    """Counts of this run's outcomes (per reason and per account) and of all pending work.

    Small and free of personal data: it is returned as the run's XCom.
    """
    with transaction(warehouse) as conn:
        by_reason = dict(conn.execute(
            "SELECT reason, count(*) FROM msads.results WHERE run_id = %s "
            "GROUP BY reason ORDER BY reason", (run_id,)).fetchall())
        by_account: dict[str, dict] = {}
        for account, reason, n in conn.execute(
                "SELECT account_id, reason, count(*) FROM msads.results WHERE run_id = %s "
                "AND account_id <> 0 GROUP BY 1, 2 ORDER BY 1, 2", (run_id,)):
            by_account.setdefault(str(account), {})[reason] = n
        adjustments = dict(conn.execute(
            "SELECT reason, count(*) FROM msads.adjustment_results WHERE run_id = %s "
            "GROUP BY reason ORDER BY reason", (run_id,)).fetchall())
        pending, deferred = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'pending'), "
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
