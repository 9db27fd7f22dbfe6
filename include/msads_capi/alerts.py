"""Incidents and their de-duplication: one alert when something goes wrong, one when it clears.

An :class:`Incident` is what is wrong and where (its key), the line people read first, and a
text that says what happened and what to do. :func:`sight` records that an incident was seen,
:func:`clear` that it is over; each returns a :class:`Notice` only when a person must be told:
the first sighting of an incident, and its end when its start was announced. However often an
upload fails in between, ``msads.alerts`` (migration 0011) holds one row and nothing more is
sent. :func:`check` looks at the warehouse (rejection rates, expiring sign-ins, ``auth_failed``
accounts) the same way, through :mod:`include.msads_capi.health`, which the UI page reads too.

Sending is the Airflow side's job (``include/msads_capi/hooks/alerting.py``). A notice is
claimed when it is handed out; when no channel took it, :func:`release` gives it back and
:func:`unsent` hands it out again later, so a mail server that is down delays an alert without
losing or repeating it.

Texts hold ids, counts, times and fixes, never an email address, a phone number or a secret:
free text from elsewhere (an exception, Microsoft's sign-in error) goes through :func:`scrub`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from include.msads_capi import health, outcomes, settings, spaces
from include.msads_capi.microsoft.tokens import EXPIRY_WARNING
from include.msads_capi.sql import dicts, query

if TYPE_CHECKING:
    import psycopg

TASK_FAILED = "task_failed"
RUN_OVERDUE = "run_overdue"
REJECTION_RATE = "rejection_rate"
TOKEN_EXPIRY = "token_expiry"
AUTH_FAILED = "auth_failed"

#: Every kind of incident, with what it means (docs/alerts.md lists them).
KINDS: dict[str, str] = {
    TASK_FAILED: "an upload or goal-refresh task failed (after its retries)",
    RUN_OVERDUE: "an upload run has not finished in time after it was queued (deadline alert)",
    REJECTION_RATE: "Microsoft rejected too many of an account's conversions in the last hour",
    TOKEN_EXPIRY: f"a Microsoft sign-in (refresh token) expires within {EXPIRY_WARNING.days} days",
    AUTH_FAILED: "an account can no longer sign in to Microsoft Advertising (auth_failed)",
}

ONE_ALERT = ("One alert per incident: you get one more message when it clears, not one per "
             "run.")


@dataclass(frozen=True)
class Incident:
    """Something wrong somewhere: ``key`` names both (``auth_failed:180000001``)."""

    key: str
    kind: str
    subject: str
    text: str  # what happened, where, and "What to do: ..."


@dataclass(frozen=True)
class Notice:
    """A message to send: an incident's alert, or its recovery."""

    alert_id: int
    key: str
    kind: str
    recovery: bool
    subject: str
    text: str


# --------------------------------------------------------------------------- texts

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\+\d[\d\s().-]{5,}\d|\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b|\b\d{10,}\b")
_URL_PASSWORD = re.compile(r"(://[^\s:/@]+:)[^\s@]+@")
_KEY_VALUE_SECRET = re.compile(r"(?i)\b(password|secret|token|key)(\s*[=:]\s*)\S+")
# API keys, tokens and hashes: long runs of token characters with letters and digits.
_TOKEN = re.compile(r"(?=[\w.~+/=-]*\d)(?=[\w.~+/=-]*[A-Za-z])[\w.~+/=-]{32,}")
MAX_FREE_TEXT = 400


def scrub(text: str | None) -> str:
    """Free text fit for an alert: its first line, without email addresses, phone numbers,
    passwords in URLs, tokens or hashes; a long one keeps its start and its end (where our
    errors say the fix)."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")[:10_000]
    line = _URL_PASSWORD.sub(r"\1***@", line)
    line = _KEY_VALUE_SECRET.sub(r"\1\2***", line)
    line = _EMAIL.sub("[email]", line)
    line = _TOKEN.sub("[redacted]", line)
    line = _PHONE.sub("[number]", line)
    if len(line) <= MAX_FREE_TEXT:
        return line
    return f"{line[:MAX_FREE_TEXT - 160]} … {line[-150:]}"


def _when(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M} UTC"


def _text(what: str, fix: str) -> str:
    return f"{what}\n\nWhat to do: {fix}"


def _account(entry: dict | spaces.Account) -> str:
    if isinstance(entry, spaces.Account):
        entry = entry.task_entry()
    return f"account {entry.get('label') or entry['account_id']}"


# --------------------------------------------------------------------------- incidents


def task_key(dag_id: str, task_id: str, account_id: int | None = None) -> str:
    return f"{TASK_FAILED}:{dag_id}:{task_id}" + (f":{account_id}" if account_id else "")


def task_failed(dag_id: str, task_id: str, run_id: str, *, error: str | None,
                account: dict | None = None) -> Incident:
    """A task failed for good (its retries are spent). ``account`` is a mapped task's account
    entry (``Account.task_entry()``); the incident is per account then."""
    where = f"task {task_id} of DAG {dag_id}" + (f" for {_account(account)}" if account else "")
    subject = f"msads: {task_id} failed in {dag_id}" + (
        f" for account {account['account_id']}" if account else "")
    what = f"The {where} failed in run {run_id}: {scrub(error) or 'no error message'}."
    fix = (f"when the line above names a fix (a setting, a mapping, a sign-in), make it; "
           f"otherwise read the task's log in the Airflow UI (DAG {dag_id}, run {run_id}, "
           f"task {task_id}). Then clear the task: re-running is safe, and the events wait in "
           "the ledger meanwhile.")
    return Incident(task_key(dag_id, task_id, account and account["account_id"]), TASK_FAILED,
                    subject, _text(what, fix))


def overdue_key(dag_id: str) -> str:
    return f"{RUN_OVERDUE}:{dag_id}"


def run_overdue(dag_id: str, run_id: str, *, queued_at: datetime | None,
                deadline_at: datetime | None) -> Incident:
    """A run of ``dag_id`` missed its deadline alert (queued at + interval)."""
    since = f"queued at {_when(queued_at)}" if queued_at else "queued"
    by = f" by {_when(deadline_at)}" if deadline_at else " in time"
    what = (f"Run {run_id} of DAG {dag_id} was {since} and had not finished{by}. New "
            "conversions wait until it does; nothing is lost.")
    fix = ("open the run in the Airflow UI. A task waiting in the queue means no free worker or "
           "no free slot in the msads_api pool (Admin > Pools); a long upload_conversions task "
           "means Microsoft is slow or throttling (its log says so); no task running at all "
           "means the scheduler or the workers are down.")
    return Incident(overdue_key(dag_id), RUN_OVERDUE,
                    f"msads: a run of {dag_id} is late", _text(what, fix))


def _rate(share: float) -> str:
    return f"{share:.1%}"


def _rejections(conn: psycopg.Connection, now: datetime, config: settings.AlertSettings
                ) -> tuple[list[Incident], dict[str, str]]:
    """Accounts above the threshold; those judged fine, with their rate. An account with too
    few answered conversions in the hour is not judged either way."""
    accounts = {a.account_id: a for a in spaces.list_accounts(conn)}
    found, fine = [], {}
    over = []
    for r in health.rejection_rates(conn, now):
        key = f"{REJECTION_RATE}:{r.account_id}"
        if r.sent < config.min_conversions:
            continue
        if r.rate > config.rejection_rate:
            over.append(r)
        else:
            fine[key] = (f"Microsoft rejected {r.rejected} of {r.sent} conversions "
                         f"({_rate(r.rate)}) in the hour up to {_when(now)}")
    counts = health.outcome_counts(conn, now) if over else []
    for r in over:
        label = _account(accounts[r.account_id]) if r.account_id in accounts else \
            f"account {r.account_id}"
        top = sorted((c for c in counts if c["account_id"] == r.account_id
                      and c["status"] == "rejected" and c["hour"]), key=lambda c: -c["hour"])[:3]
        codes = ", ".join(f"{c['reason']} ({c['hour']})" for c in top)
        what = (f"Microsoft Advertising rejected {r.rejected} of the {r.sent} conversions it "
                f"answered for {label} in the hour up to {_when(now)}: {_rate(r.rate)}, above "
                f"the alert threshold of {_rate(config.rejection_rate)}."
                + (f" Most often: {codes}." if codes else ""))
        fix = outcomes.words(top[0]["reason"] if top else outcomes.rejected("any"))[1] or ""
        fix += (f" To find such events: SELECT event_id, reason, explanation FROM "
                f"msads.event_outcomes WHERE account_id = {r.account_id} AND status = "
                "'rejected' ORDER BY decided_at DESC LIMIT 20.")
        found.append(Incident(f"{REJECTION_RATE}:{r.account_id}", REJECTION_RATE,
                              f"msads: {_rate(r.rate)} of conversions rejected for account "
                              f"{r.account_id}", _text(what, fix)))
    return found, fine


def _expiring_tokens(conn: psycopg.Connection, now: datetime, config: settings.AlertSettings
                     ) -> tuple[list[Incident], None]:
    found = []
    for p in health.profile_statuses(conn, now):
        if not p.warning:
            continue
        users = ", ".join(_account(a) for a in p.accounts) or "no linked account"
        what = (f"The Microsoft sign-in (refresh token) of connection {p.conn_id} expires at "
                f"{_when(p.token.expires_at)}, within {EXPIRY_WARNING.days} days. Accounts "
                f"that use it: {users}. Once it expires, their uploads and goal refreshes stop "
                "(auth_failed) until someone signs in again.")
        found.append(Incident(f"{TOKEN_EXPIRY}:{p.conn_id}", TOKEN_EXPIRY,
                              f"msads: the Microsoft sign-in of {p.conn_id} expires soon",
                              _text(what, p.warning)))
    return found, None


def _auth_failures(conn: psycopg.Connection, now: datetime, config: settings.AlertSettings
                   ) -> tuple[list[Incident], None]:
    hold = settings.load().pipeline.account_hold
    found = []
    for a in spaces.list_accounts(conn):
        if a.status != "auth_failed":
            continue
        reason = scrub(a.status_reason)
        what = (f"{_account(a).capitalize()} can no longer sign in to Microsoft Advertising "
                f"through connection {a.conn_id}" + (f" ({reason})" if reason else "") +
                f". Its conversions are held, not sent, for up to {hold.days} days.")
        fix = (f"sign in again with: msads auth login --conn-id {a.conn_id}. The account is "
               "then active again, and the next runs send what was held.")
        found.append(Incident(f"{AUTH_FAILED}:{a.account_id}", AUTH_FAILED,
                              f"msads: account {a.account_id} can no longer sign in",
                              _text(what, fix)))
    return found, None


Finder = Callable[[object, datetime, settings.AlertSettings],
                  tuple[list[Incident], dict[str, str] | None]]
#: What :func:`check` looks at; a finder returns the incidents it sees and, when it can tell,
#: which keys are fine now and why (None: every open incident of its kind it does not see).
FINDERS: dict[str, Finder] = {REJECTION_RATE: _rejections, TOKEN_EXPIRY: _expiring_tokens,
                              AUTH_FAILED: _auth_failures}
CLEARED = {TOKEN_EXPIRY: "the refresh token no longer expires within "
                         f"{EXPIRY_WARNING.days} days (it was used, or someone signed in again)",
           AUTH_FAILED: "the account is no longer auth_failed"}


# --------------------------------------------------------------------------- the ledger

_COLUMNS = ("alert_id, key, kind, subject, message, opened_at, seen, resolved_at, resolution, "
            "opened_sent_at")


def _notice(row: dict, recovery: bool) -> Notice:
    if not recovery:
        return Notice(row["alert_id"], row["key"], row["kind"], False, row["subject"],
                      f"{row['message']}\n\n{ONE_ALERT}")
    lasted = row["resolved_at"] - row["opened_at"]
    text = (f"Resolved at {_when(row['resolved_at'])}: {row['resolution']}.\n\n"
            f"It began at {_when(row['opened_at'])}, lasted {_duration(lasted)} and was seen "
            f"{row['seen']} time(s). It was: {row['subject'].removeprefix('msads: ')}.")
    return Notice(row["alert_id"], row["key"], row["kind"], True,
                  f"msads: resolved: {row['subject'].removeprefix('msads: ')}", text)


def _duration(d: timedelta) -> str:
    minutes = max(0, int(d.total_seconds() // 60))
    if minutes < 120:
        return f"{minutes} minute(s)"
    return f"{minutes // 60} hour(s)" if minutes < 48 * 60 else f"{minutes // 1440} day(s)"


def sight(conn: psycopg.Connection, incident: Incident, now: datetime) -> Notice | None:
    """Record that ``incident`` was seen at ``now``; its alert when this is news (or when its
    alert never went out), else None. The row stays locked until the caller commits, so two
    workers seeing the same incident at once queue up and only one gets the alert."""
    row = dicts(conn.execute(query("alerts_sight"), {
        "key": incident.key, "kind": incident.kind, "subject": incident.subject,
        "message": incident.text, "now": now}))[0]
    if not row["unannounced"]:
        return None
    claimed = dicts(conn.execute(f"UPDATE msads.alerts SET opened_sent_at = %s WHERE alert_id = "
                                 f"%s RETURNING {_COLUMNS}", (now, row["alert_id"])))[0]
    return _notice(claimed, recovery=False)


def clear(conn: psycopg.Connection, key: str, now: datetime, resolution: str) -> Notice | None:
    """End the open incident ``key`` (if any); its recovery when its alert went out."""
    rows = dicts(conn.execute(
        "UPDATE msads.alerts SET resolved_at = %(now)s, resolution = %(why)s, "
        "resolved_sent_at = CASE WHEN opened_sent_at IS NOT NULL THEN %(now)s END "
        f"WHERE key = %(key)s AND resolved_at IS NULL RETURNING {_COLUMNS}",
        {"now": now, "why": resolution, "key": key}))
    if not rows or rows[0]["opened_sent_at"] is None:
        return None  # nobody was told it began: no need to say it ended
    return _notice(rows[0], recovery=True)


def release(conn: psycopg.Connection, notice: Notice) -> None:
    """No channel took ``notice``: hand it out again with :func:`unsent`."""
    column = "resolved_sent_at" if notice.recovery else "opened_sent_at"
    conn.execute(f"UPDATE msads.alerts SET {column} = NULL WHERE alert_id = %s",
                 (notice.alert_id,))


def unsent(conn: psycopg.Connection, now: datetime) -> list[Notice]:
    """Claim the alerts and recoveries that no channel took earlier, to send them now."""
    rows = dicts(conn.execute(query("alerts_unsent"), {"now": now}))
    return [_notice(row, row["recovery"]) for row in rows]


def open_incidents(conn: psycopg.Connection, kind: str | None = None) -> list[dict]:
    """The incidents open now (of ``kind``), oldest first."""
    return dicts(conn.execute(
        f"SELECT {_COLUMNS}, last_seen_at FROM msads.alerts WHERE resolved_at IS NULL "
        "AND (%(kind)s::text IS NULL OR kind = %(kind)s) ORDER BY opened_at, alert_id",
        {"kind": kind}))


def check(conn: psycopg.Connection, now: datetime,
          config: settings.AlertSettings | None = None) -> list[Notice]:
    """Look at rejection rates, expiring sign-ins and ``auth_failed`` accounts at ``now``:
    record what is wrong and what is over; returns what is news to send."""
    config = config or settings.load().alerts
    notices = []
    for kind, finder in FINDERS.items():
        found, fine = finder(conn, now, config)
        seen = {i.key for i in found}
        if fine is None:
            fine = {row["key"]: CLEARED[kind] for row in open_incidents(conn, kind)
                    if row["key"] not in seen}
        notices += [n for n in (sight(conn, i, now) for i in found) if n]
        notices += [n for n in (clear(conn, k, now, why) for k, why in fine.items()) if n]
    return notices
