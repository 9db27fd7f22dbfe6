"""Reconciliation: what Microsoft itself says became of each conversion it accepted.

An upload Microsoft accepts can still count nothing: the click may not match, the identifiers
may not match, the goal may be inactive. Microsoft's offline conversion reports tell:

- ``GetOfflineConversionReports`` gives, per UTC day of upload, a link to a per-record file
  (``DailySummary.FileUrl``; "available in select pilot programs"): each record's goal,
  conversion time, click id or hashes, its ``Status`` (``Success`` or why it failed) and, in the
  file's assumed ``UnattributedReason`` column, why an accepted conversion was not attributed
  (``OfflineConversionUnattributedReason``: ``NoMatchingClickFound``,
  ``MissingMatchIdentifiers``, ``GoalNotFoundOrInactive``, ...);
- ``GetOfflineConversionReportByGoalIds`` gives per goal and day the totals, kept in
  ``msads.goal_reports`` to check the per-record view against.

Each uploaded conversion of the last ``days`` days is matched to its record by goal,
conversion time (whole seconds) and the id it was sent with (its click id, else a hash;
the ledger keeps only a fingerprint of it, ``results.sent_ref``). Its ledger row gets ``ms_status``, ``ms_attributed``, ``ms_unattributed`` and
``ms_reported_at``. Reports lag (:data:`rules.REPORT_LAG`): a conversion not in any report is
"not reported yet" until the lag has passed, and only then ``NotReported``, which is worth a
look. Nothing here changes what was sent, so running it again is always safe.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from include.msads_capi import rules
from include.msads_capi.ledger import reference, update
from include.msads_capi.sql import dicts
from include.msads_capi.warehouse import Warehouse, transaction

if TYPE_CHECKING:
    import psycopg

    from include.msads_capi.microsoft.client import AdsClient
    from include.msads_capi.spaces import Account

log = logging.getLogger(__name__)
NOT_REPORTED = "NotReported"


class Reconciled(NamedTuple):
    """Microsoft's view of one uploaded conversion, as written into its ledger row."""

    event_id: str
    account_id: int
    goal_id: int
    ms_status: str | None
    ms_attributed: bool | None
    ms_unattributed: str | None
    ms_reported_at: datetime | None


@dataclass
class ReconcileSummary:
    account_id: int
    uploaded: int = 0          # conversions uploaded in the window
    reported: int = 0          # found in Microsoft's per-record reports
    attributed: int = 0
    unattributed: Counter = field(default_factory=Counter)  # Microsoft's reason -> count
    waiting: int = 0           # not reported yet, within the report lag
    not_reported: int = 0      # not reported although the lag has passed
    files: int = 0             # days with a per-record file
    days: int = 0              # days Microsoft reported

    def as_dict(self) -> dict:
        return {**asdict(self), "unattributed": dict(self.unattributed)}


def _second(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return value.replace(microsecond=0)


def _keys(record: dict) -> list[tuple]:
    """The (goal, time, id) keys a per-record row can be found by."""
    try:
        goal, when = int(record.get("GoalId") or 0), _second(record.get("ConversionTime") or "")
    except ValueError:
        return []
    ids = (record.get(k) for k in ("MicrosoftClickId", "HashedEmailAddress", "HashedPhoneNumber"))
    return [(goal, when, reference(i)) for i in ids if i and i.strip()]


def reconcile_account(warehouse: Warehouse, client: AdsClient, account: Account, now: datetime,
                      days: int = 7) -> ReconcileSummary:
    """Ask Microsoft what became of the account's conversions uploaded in the last ``days``
    days, and record it per conversion and per goal and day."""
    start = now - timedelta(days=days)
    summary = ReconcileSummary(account.account_id)
    upload_days = client.upload_report(account.account_id, account.customer_id, start, now)
    records: list[dict] = []
    for day in upload_days:
        if day.file_url:
            records.extend(client.download_records(day.file_url))
            summary.files += 1
    summary.days = len(upload_days)
    goals = client.goal_report(account.account_id, account.customer_id, start, now)
    by_key: dict[tuple, dict] = {}
    for record in records:
        for key in _keys(record):
            by_key.setdefault(key, record)
    with transaction(warehouse) as conn:
        uploaded = dicts(conn.execute(
            "SELECT event_id, account_id, goal_id, conversion_time, sent_ref, decided_at "
            "FROM msads.results WHERE account_id = %s AND status = 'uploaded' "
            "AND decided_at >= %s", (account.account_id, start)))
        rows = []
        filed = {d.day for d in upload_days if d.file_url}
        for r in uploaded:
            record = by_key.get((r["goal_id"], _second(r["conversion_time"]), r["sent_ref"]))
            rows.append(_view(r, record, now, summary, r["decided_at"].date() in filed))
        update(conn, "msads.results", Reconciled._fields, rows)
        conn.cursor().executemany(
            "INSERT INTO msads.goal_reports (account_id, goal_id, upload_day, succeeded, "
            "unattributed, alerts, fetched_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (account_id, goal_id, upload_day) DO UPDATE SET succeeded = "
            "EXCLUDED.succeeded, unattributed = EXCLUDED.unattributed, alerts = EXCLUDED.alerts, "
            "fetched_at = EXCLUDED.fetched_at",
            [(account.account_id, g.goal_id, d.day, d.succeeded, d.unattributed,
              json.dumps(d.alerts), now) for g in goals for d in g.days])
    summary.uploaded = len(uploaded)
    log.info("account %s: Microsoft's view of %d upload(s): %s", account.account_id,
             len(uploaded), summary.as_dict())
    return summary


def _view(row: dict, record: dict | None, now: datetime, summary: ReconcileSummary,
          filed: bool) -> Reconciled:
    """The ledger's new view of one upload. Missing from its day's file after the report lag:
    ``NotReported``; a day Microsoft gives no per-record file for says nothing either way."""
    key = (row["event_id"], row["account_id"], row["goal_id"])
    if record is None:
        if not filed or row["decided_at"] + rules.REPORT_LAG > now:
            summary.waiting += 1
            return Reconciled(*key, None, None, None, None)  # not reported yet
        summary.not_reported += 1
        return Reconciled(*key, NOT_REPORTED, None, None, None)
    summary.reported += 1
    status = (record.get("Status") or "").strip() or None
    reason = (record.get("UnattributedReason") or "").strip() or None
    attributed = status == "Success" and reason is None
    if attributed:
        summary.attributed += 1
    else:
        summary.unattributed[reason or status or "Unknown"] += 1
    return Reconciled(*key, status, attributed, None if attributed else (reason or status),
                      now)


_REPORT = """
SELECT r.account_id, r.goal_id, max(r.conversion_name) AS goal,
       count(*) AS accepted,
       count(*) FILTER (WHERE r.ms_reported_at IS NOT NULL) AS reported,
       count(*) FILTER (WHERE r.ms_status = 'Success') AS counted,
       count(*) FILTER (WHERE r.ms_attributed) AS attributed,
       count(*) FILTER (WHERE r.ms_status IS NULL) AS waiting,
       count(*) FILTER (WHERE r.ms_status = 'NotReported') AS not_reported,
       count(*) FILTER (WHERE r.sent_click_id AND r.ms_reported_at IS NOT NULL) AS click_sent,
       count(*) FILTER (WHERE r.sent_click_id AND r.ms_attributed) AS click_matched,
       count(*) FILTER (WHERE r.sent_email AND r.ms_reported_at IS NOT NULL) AS email_sent,
       count(*) FILTER (WHERE r.sent_email AND r.ms_attributed) AS email_matched,
       count(*) FILTER (WHERE r.sent_phone AND r.ms_reported_at IS NOT NULL) AS phone_sent,
       count(*) FILTER (WHERE r.sent_phone AND r.ms_attributed) AS phone_matched
FROM msads.results r
WHERE r.status = 'uploaded' AND r.decided_at >= %(since)s
GROUP BY r.account_id, r.goal_id ORDER BY r.account_id, r.goal_id
"""
_REASONS = """
SELECT account_id, goal_id, ms_unattributed, count(*) FROM msads.results
WHERE status = 'uploaded' AND decided_at >= %(since)s AND ms_unattributed IS NOT NULL
GROUP BY 1, 2, 3 ORDER BY 4 DESC, 3
"""
_MICROSOFT = """
SELECT account_id, goal_id, sum(succeeded) AS succeeded, sum(unattributed) AS unattributed
FROM msads.goal_reports WHERE upload_day >= %(since)s::date GROUP BY 1, 2
"""


def report(conn: psycopg.Connection, since: datetime) -> list[dict]:
    """Per account and goal, for conversions uploaded since ``since``: accepted (uploaded),
    reported by Microsoft, counted (Status Success), attributed, the match rate by identifier
    kind (attributed / reported, among those sent with it), the top unattributed reasons, and
    Microsoft's own goal totals for the same days."""
    rows = dicts(conn.execute(_REPORT, {"since": since}))
    reasons: dict[tuple, list] = {}
    for account, goal, reason, n in conn.execute(_REASONS, {"since": since}):
        reasons.setdefault((account, goal), []).append({"reason": reason, "count": n})
    totals = {(r["account_id"], r["goal_id"]): r for r in dicts(conn.execute(
        _MICROSOFT, {"since": since}))}
    for r in rows:
        key = (r["account_id"], r["goal_id"])
        r["match_rate"] = {kind: (round(r.pop(f"{kind}_matched") / sent, 4) if (
            sent := r.pop(f"{kind}_sent")) else None) for kind in ("click", "email", "phone")}
        r["top_unattributed"] = reasons.get(key, [])[:5]
        ms = totals.get(key)
        r["microsoft_totals"] = ({"succeeded": int(ms["succeeded"]),
                                  "unattributed": int(ms["unattributed"])} if ms else None)
    return rows


def render_report(rows: list[dict], since: datetime) -> str:
    """The report as text for a person at a terminal."""
    if not rows:
        return f"No conversions uploaded since {since:%Y-%m-%d %H:%M} UTC."
    lines = [f"Conversions uploaded since {since:%Y-%m-%d %H:%M} UTC, as Microsoft reports them"]
    for r in rows:
        rates = ", ".join(f"{kind} {rate:.0%}" for kind, rate in r["match_rate"].items()
                          if rate is not None) or "none reported yet"
        lines.append(f"account {r['account_id']}, goal {r['goal_id']} ({r['goal']}): "
                     f"accepted {r['accepted']}, reported {r['reported']}, counted "
                     f"{r['counted']}, attributed {r['attributed']}; waiting for the report "
                     f"{r['waiting']}, not reported {r['not_reported']}")
        lines.append(f"  match rate by identifier: {rates}")
        for item in r["top_unattributed"]:
            lines.append(f"  not attributed: {item['reason']} x{item['count']}")
        if r["microsoft_totals"]:
            t = r["microsoft_totals"]
            lines.append(f"  Microsoft's goal totals: {t['succeeded']} attributed, "
                         f"{t['unattributed']} not")
    return "\n".join(lines)


#: What to do about Microsoft's reasons for not attributing a conversion
#: (OfflineConversionUnattributedReason), for ``msads why``.
UNATTRIBUTED_FIX = {
    "NoMatchingClickFound": "the click id is not one Microsoft recorded for this account: check "
                           "that msclkid is captured from the landing page URL and that "
                           "auto-tagging is on for the account",
    "MissingMatchIdentifiers": "Microsoft could not match it without a click id: fill msclkid, "
                               "or turn on enhanced conversions for the goal so a hashed email "
                               "or phone can match",
    "GoalNotFoundOrInactive": "the goal is paused or gone in Microsoft Advertising: enable it, "
                              "then run msads_refresh_goals",
    "DuplicateConversionKey": "Microsoft already had a conversion with the same goal, time and "
                              "click: nothing to do if it is the same sale",
}


def why_check(row: dict, now: datetime) -> tuple[bool, str, str | None]:
    """``msads why``'s last question for an uploaded conversion, "Did Microsoft count it?":
    (ok, answer, fix) from its reconciled ledger row."""
    status, reported = row["ms_status"], row["ms_reported_at"]
    if status is None:
        when = row["decided_at"] + rules.REPORT_LAG
        return True, ("not reported yet: Microsoft's reports can take up to "
                      f"{int(rules.REPORT_LAG.total_seconds() // 3600)} hours (until "
                      f"{when:%Y-%m-%d %H:%M} UTC); msads_reconcile asks every hour"), None
    if status == NOT_REPORTED:
        return (False, "Microsoft's reports do not show it although the report lag has passed",
                "look for it in Microsoft Advertising (the goal's All conv. column); give "
                "Microsoft support the upload's TrackingId")
    if row["ms_attributed"]:
        return (True, f"yes: Microsoft counted it and attributed it (reported "
                      f"{reported:%Y-%m-%d %H:%M} UTC)", None)
    reason = row["ms_unattributed"] or status
    return (False, f"no: Microsoft reports {reason} (reported {reported:%Y-%m-%d %H:%M} UTC)",
            UNATTRIBUTED_FIX.get(reason, "see what Microsoft's OfflineConversionUnattributedReason "
                                         "page says it means"))
