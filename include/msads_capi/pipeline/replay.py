"""Replay: after a mapping or an account is fixed, send again what was not sent.

Selected ledger rows (by Space, event names, event time range and outcome) are reopened as
claims of the replay run and go through plan → hash → upload again, under today's
configuration. A row that was ``uploaded`` is never reopened, and an event's goals that were
uploaded stay untouched when its other goals are replayed. A dry run only reports.

``refused`` selects conversions that earlier versions recorded as rejected although Microsoft
had refused the whole request they were in (an HTTP error, a fault that named no item): those
rows carry the request's error as their message, where a conversion Microsoft rejected on its
own carries Microsoft's message for that item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from include.msads_capi.errors import MsadsError
from include.msads_capi.outcomes import REFUSED, REJECTED, REPLAY_DEFAULT, REPLAYABLE, UPLOADED
from include.msads_capi.settings import events_table
from include.msads_capi.warehouse import Warehouse, transaction

# Rejections recorded for a whole refused request (before msads-capi told them apart).
_REFUSED_WHOLE = ("(r.status = 'rejected' AND r.detail IS NULL AND (r.ms_message LIKE "
                  "'Microsoft Advertising answered%%' OR r.ms_message LIKE "
                  "'unexpected error calling Microsoft Advertising%%'))")


@dataclass
class ReplayRequest:
    space: str | None = None
    event_names: list[str] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    outcomes: list[str] = field(default_factory=lambda: list(REPLAY_DEFAULT))
    dry_run: bool = True

    def validate(self) -> None:
        bad = [o for o in self.outcomes if o not in REPLAYABLE]
        if UPLOADED in self.outcomes:
            raise MsadsError("uploaded conversions are never sent again; leave 'uploaded' out")
        if bad or not self.outcomes:
            raise MsadsError(f"outcomes {bad or '[]'} cannot be replayed; choose from "
                             f"{', '.join(REPLAYABLE)} ('rejected' means every rejected:*, "
                             "'refused' the rejections of whole requests Microsoft refused)")
        if self.start and self.end and self.start > self.end:
            raise MsadsError("the time range ends before it starts; swap start and end")


def _where(req: ReplayRequest) -> tuple[str, dict]:
    clauses = ["r.status IN ('skipped', 'rejected', 'failed', 'deferred')"]
    reasons = [o for o in req.outcomes if o not in (REJECTED, REFUSED)]
    outcome_sql = ["r.reason = ANY(%(reasons)s)"]
    if REJECTED in req.outcomes:
        outcome_sql.append("r.reason LIKE 'rejected:%%'")
    if REFUSED in req.outcomes:
        outcome_sql.append(_REFUSED_WHOLE)
    clauses.append("(" + " OR ".join(outcome_sql) + ")")
    if req.space:
        clauses.append("r.space_id = %(space)s")
    if req.event_names:
        clauses.append("r.event_name = ANY(%(names)s)")
    if req.start:
        clauses.append("e.event_time >= %(start)s")
    if req.end:
        clauses.append("e.event_time < %(end)s")
    return " AND ".join(clauses), {"reasons": reasons, "space": req.space,
                                   "names": req.event_names, "start": req.start,
                                   "end": req.end}


def reopen(warehouse: Warehouse, req: ReplayRequest, run_id: str, now: datetime) -> dict:
    """Reopen the selected rows for ``run_id`` (or, in a dry run, only count them)."""
    req.validate()
    where, params = _where(req)
    join = f"FROM msads.results r LEFT JOIN {events_table()} e ON e.event_id = r.event_id"
    with transaction(warehouse) as conn:
        counts = dict(conn.execute(f"SELECT r.reason, count(*) {join} WHERE {where} "
                                   "GROUP BY r.reason ORDER BY r.reason", params).fetchall())
        events = conn.execute(f"SELECT count(DISTINCT r.event_id) {join} WHERE {where}",
                              params).fetchone()[0]
        report = {"run_id": run_id, "dry_run": req.dry_run, "events": events,
                  "rows_by_outcome": counts}
        if req.dry_run:
            report["mapped_now"] = conn.execute(
                f"SELECT count(DISTINCT r.event_id) {join} JOIN msads.spaces s ON "
                "s.space_id = r.space_id AND s.capi_enabled JOIN msads.accounts a ON "
                "a.space_id = r.space_id JOIN msads.mappings m ON m.account_id = a.account_id "
                f"AND m.event_name = r.event_name AND m.enabled WHERE {where}",
                params).fetchone()[0]
            return report
        conn.execute(
            f"UPDATE msads.results t SET status = 'pending', reason = 'claimed', detail = NULL, "
            "run_id = %(run)s, claimed_at = %(now)s, next_attempt_at = NULL, decided_at = NULL, "
            "attempts = 0, first_seen_at = %(now)s, updated_at = now() FROM (SELECT r.event_id, "
            f"r.account_id, r.goal_id {join} WHERE {where}) sel WHERE t.event_id = sel.event_id "
            "AND t.account_id = sel.account_id AND t.goal_id = sel.goal_id",
            {**params, "run": run_id, "now": now})
    return report
