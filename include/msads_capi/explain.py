"""``msads why EVENT_ID``: the troubleshooting checklist, answered from the data for one event.

Checks, in the order of the seed's list: is CAPI on, is the event mapped, are identifiers
present, is the account active, is the send rule met, does the goal exist, and what did
Microsoft say. Each failed check comes with its fix. Raw email and phone are read to check
them but never shown: only whether they are usable, and why not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from include.msads_capi.errors import NotFound
from include.msads_capi.rules import is_attributed
from include.msads_capi.settings import events_table, load
from include.msads_capi.sql import dicts

if TYPE_CHECKING:
    import psycopg


@dataclass
class Check:
    question: str
    ok: bool
    answer: str
    fix: str | None = None


@dataclass
class GoalReport:
    account_id: int
    goal_id: int
    goal_name: str | None
    checks: list[Check] = field(default_factory=list)
    outcome: dict | None = None


@dataclass
class Explanation:
    event_id: str
    event: dict
    checks: list[Check]
    goals: list[GoalReport]
    outcomes: list[dict]
    adjustments: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _identifiers(event: dict) -> tuple[Check, dict]:
    from include.msads_capi.identity import describe, normalize_email, normalize_phone

    click = (event.get("msclkid") or "").strip()
    email = normalize_email(event.get("email")) if event.get("email") is not None else None
    # The hash stage's reading: the Space's region, none when the Space has none (then only a
    # number with its country code is usable).
    phone = (normalize_phone(event.get("phone"), event.get("phone_region"))
             if event.get("phone") is not None else None)
    parts, usable = [], {}
    usable["click_id"] = bool(click)
    parts.append("click id: " + ("present" if click else "missing"))
    for name, result in (("email", email), ("phone", phone)):
        usable[name] = bool(result and result.sha256)
        if result is None:
            parts.append(f"{name}: missing")
        elif result.sha256:
            parts.append(f"{name}: usable (sent as its SHA-256 hash)")
        else:
            parts.append(f"{name}: not usable ({describe(result.reason)})")
    ok = any(usable.values())
    return Check("Are identifiers present?", ok, "; ".join(parts),
                 None if ok else "Microsoft needs a click id (msclkid), an email or a phone: "
                                 "fill at least one in conversion_events"), usable


def explain(conn: psycopg.Connection, event_id: str) -> Explanation:
    cur = conn.execute(
        f"SELECT e.event_id, e.space_id, e.event_name, e.event_time, e.value, e.currency_code, "
        f"e.msclkid, e.email, e.phone, e.attributed_platform, e.ingested_at, "
        f"s.capi_enabled, s.capi_changed_at, s.phone_region, s.currency_code AS space_currency "
        f"FROM {events_table()} e LEFT JOIN msads.spaces s ON s.space_id = e.space_id "
        f"WHERE e.event_id = %s", (event_id,))
    cols = [d.name for d in cur.description]
    row = cur.fetchone()
    outcomes = _outcomes(conn, event_id)
    if row is None and not outcomes:
        raise NotFound(f"no event {event_id!r} in {events_table()} and no outcome recorded for "
                       "it; check the id (event_id is case-sensitive)")
    event = dict(zip(cols, row, strict=True)) if row else {"event_id": event_id}
    checks: list[Check] = []
    space = event.get("space_id")
    if row is None:
        checks.append(Check("Does the event exist?", False, "it was deleted from the events "
                            "table after the pipeline read it"))
    elif event.get("capi_enabled") is None:
        checks.append(Check("Is CAPI turned on?", False, f"Space {space!r} is not configured",
                            f"create it: msads space add {space} --currency USD --region US, "
                            f"then msads capi on --space {space}"))
    else:
        on = bool(event["capi_enabled"])
        checks.append(Check("Is CAPI turned on?", on, f"Microsoft CAPI is {'on' if on else 'off'}"
                            f" for Space {space}", None if on else
                            f"msads capi on --space {space}; events that arrived while it was "
                            "off are not sent later (replay them with the msads_replay DAG)"))
    mappings = _mappings(conn, space, event.get("event_name")) if row else []
    checks.append(Check(
        "Is the event mapped?", bool(mappings),
        f"{len(mappings)} enabled mapping(s) send {event.get('event_name')!r} in Space {space}"
        if mappings else f"no enabled mapping sends {event.get('event_name')!r} in Space {space}",
        None if mappings else f"msads map add --account ACCOUNT --goal GOAL --event "
                              f"{event.get('event_name')}"))
    usable: dict = {}
    if row:
        identifiers, usable = _identifiers(event)
        checks.append(identifiers)
    goals = []
    config = load().pipeline  # the limits and platforms the pipeline reads
    by_goal = {(o["account_id"], o["goal_id"]): o for o in outcomes}
    for m in mappings:
        report = GoalReport(m["account_id"], m["goal_id"], m["goal_name"])
        active = m["account_status"] == "active"
        report.checks.append(Check(
            "Is the account active?", active,
            f"account {m['account_id']} is {m['account_status']}"
            + (f" ({m['status_reason']})" if m["status_reason"] else ""),
            None if active else ("reconnect: msads auth login --conn-id " + m["conn_id"]
                                 if m["account_status"] == "auth_failed" else
                                 "reactivate the account in Microsoft Advertising, or link "
                                 "another; held events are sent if it is active within 7 days")))
        rule_ok = m["send_rule"] == "all" or is_attributed(event.get("attributed_platform"),
                                                           config)
        report.checks.append(Check(
            "Is the send rule met?", rule_ok,
            f"send rule {m['send_rule']}; attributed to {event.get('attributed_platform')!r}",
            None if rule_ok else f"the mapping sends only Microsoft-attributed events; switch "
                                 f"it to send all: msads map remove {m['mapping_id']} and add "
                                 "it again with --rule all"))
        exists = m["goal_present"] and m["missing_since"] is None and not m["broken_reason"]
        report.checks.append(Check(
            "Does the conversion goal exist in Microsoft Ads?", exists,
            f"goal {m['goal_id']} ({m['goal_name']}) exists" if exists else
            (m["broken_reason"] or (f"goal {m['goal_id']} was not found when goals were last "
                                    "fetched" if m["goals_fetched"] else
                                    "goals of the account have not been fetched yet")),
            None if exists else "run the msads_refresh_goals DAG; if the goal is gone, map the "
                                "event to an existing goal (msads goal list --account "
                                f"{m['account_id']})"))
        if exists:
            report.checks.extend(_goal_state(m, usable))
        if m["refused_since"] is not None:
            report.checks.append(Check(
                "Does Microsoft accept the account's requests?", False,
                f"waiting: Microsoft refused whole requests since "
                f"{m['refused_since']:%Y-%m-%d %H:%M} UTC ({m['refusal']})",
                "nothing is rejected for it; the conversions are retried with backoff. Check "
                "that msads-capi is current and the account can be reached"))
        report.outcome = by_goal.pop((m["account_id"], m["goal_id"]), None)
        goals.append(report)
    _microsofts_view(conn, event_id, goals)
    for leftover in by_goal.values():
        if leftover["goal_id"]:
            goals.append(GoalReport(leftover["account_id"], leftover["goal_id"],
                                    leftover["conversion_name"], outcome=leftover))
    return Explanation(event_id, _public(event), checks, goals, outcomes,
                       _adjustments(conn, event_id))


def _microsofts_view(conn: psycopg.Connection, event_id: str, goals: list[GoalReport]) -> None:
    """The last question for each uploaded goal: did Microsoft count it (reconciliation)?"""
    from datetime import UTC, datetime

    from include.msads_capi.reconcile import why_check

    rows = {(r["account_id"], r["goal_id"]): r for r in dicts(conn.execute(
        "SELECT account_id, goal_id, decided_at, ms_status, ms_attributed, ms_unattributed, "
        "ms_reported_at FROM msads.results WHERE event_id = %s AND status = 'uploaded'",
        (event_id,)))}
    now = datetime.now(UTC)
    for g in goals:
        row = rows.get((g.account_id, g.goal_id))
        if row is not None:
            g.checks.append(Check("Did Microsoft count it?", *why_check(row, now)))


def _goal_state(m: dict, usable: dict) -> list[Check]:
    """The goal's own state as last fetched: active, and able to use what the event has."""
    checks = []
    if m["goal_status"] is not None:
        active = m["goal_status"] != "Paused"
        checks.append(Check("Is the goal active?", active, f"goal {m['goal_id']} is "
                            f"{m['goal_status']} in Microsoft Advertising",
                            None if active else "enable the goal in Microsoft Advertising; held "
                            "events are sent after the next goal refresh"))
    if usable and not usable.get("click_id") and m["enhanced_conversions"] is not None:
        on = bool(m["enhanced_conversions"])
        checks.append(Check(
            "Can the goal use a hashed email or phone?", on,
            f"enhanced conversions are {'on' if on else 'off'} for goal {m['goal_id']}, and "
            "the event has no click id",
            None if on else "turn on enhanced conversions for the goal in the Microsoft "
                            "Advertising web UI, run msads_refresh_goals, then replay; or fill "
                            "msclkid"))
    return checks


def _public(event: dict) -> dict:
    """The event without its raw personal data (presence only)."""
    shown = {k: v for k, v in event.items() if k not in ("email", "phone", "msclkid")}
    for k in ("email", "phone", "msclkid"):
        if k in event:
            shown[f"has_{k}"] = bool((event.get(k) or "").strip())
    return shown


def _mappings(conn: psycopg.Connection, space: str | None, event_name: str | None) -> list[dict]:
    cur = conn.execute(
        "SELECT m.mapping_id, m.account_id, m.goal_id, COALESCE(g.name, m.goal_name) AS goal_name,"
        " m.send_rule, m.broken_reason, a.status AS account_status, a.status_reason, a.conn_id,"
        " a.goals_fetched_at IS NOT NULL AS goals_fetched, g.goal_id IS NOT NULL AS goal_present,"
        " g.missing_since, g.status AS goal_status, g.enhanced_conversions, a.refused_since,"
        " a.refusal FROM msads.mappings m JOIN msads.accounts a USING (account_id)"
        " LEFT JOIN msads.goals g ON g.account_id = m.account_id AND g.goal_id = m.goal_id"
        " WHERE m.enabled AND a.space_id = %s AND m.event_name = %s ORDER BY m.mapping_id",
        (space, event_name))
    return dicts(cur)


def _outcomes(conn: psycopg.Connection, event_id: str) -> list[dict]:
    cur = conn.execute(
        "SELECT account_id, goal_id, conversion_name, status, reason, explanation, detail, "
        "what_to_do, ms_code, ms_error_code, tracking_id, attempts, next_attempt_at, "
        "sent_click_id, sent_email, sent_phone, decided_at FROM msads.event_outcomes "
        "WHERE event_id = %s ORDER BY account_id, goal_id", (event_id,))
    return dicts(cur)


def _adjustments(conn: psycopg.Connection, event_id: str) -> list[dict]:
    """The event's refunds and cancellations, each with its outcome per goal, in time order."""
    return dicts(conn.execute(
        "SELECT adjustment_id, adjustment_type, adjusted_at, adjusted_value, currency_code, "
        "account_id, goal_id, conversion_name, status, reason, explanation, detail, what_to_do, "
        "ms_code, ms_error_code, tracking_id, next_attempt_at FROM msads.adjustment_outcomes "
        "WHERE event_id = %s ORDER BY adjusted_at, adjustment_id, account_id, goal_id",
        (event_id,)))


def _adjustment_lines(x: Explanation) -> list[str]:
    lines = []
    for a in x.adjustments:
        what = (f"{a['adjustment_type']} to {a['adjusted_value']} {a['currency_code'] or ''}"
                .rstrip() if a["adjusted_value"] is not None else str(a["adjustment_type"]))
        target = (f"goal {a['goal_id']} ({a['conversion_name']}) of account {a['account_id']}"
                  if a["goal_id"] else "the adjustment")
        when = f"{a['adjusted_at']:%Y-%m-%d %H:%M} UTC" if a["adjusted_at"] else "?"
        lines.append(f"  Adjustment {a['adjustment_id']} ({what}, {when}) for {target}: "
                     f"{a['status']} ({a['reason']})")
        lines.append(f"    {a['explanation']}")
        if a["detail"]:
            lines.append(f"    Detail: {a['detail']}")
        if a["ms_code"] or a["ms_error_code"]:
            lines.append(f"    Microsoft said: {a['ms_code']} {a['ms_error_code']}")
        if a["next_attempt_at"]:
            lines.append(f"    Next attempt: {a['next_attempt_at']:%Y-%m-%d %H:%M:%S %Z}")
        if a["status"] != "uploaded" and a["what_to_do"]:
            lines.append(f"    What to do: {a['what_to_do']}")
    return lines


def render(x: Explanation) -> str:
    """The explanation as text for a person at a terminal."""
    lines = [f"Event {x.event_id}: {x.event.get('event_name')} in Space "
             f"{x.event.get('space_id')}, at {x.event.get('event_time')}"]
    if not x.outcomes:
        lines.append("  The pipeline has not decided this event yet (it picks new rows up every "
                     "minute).")
    for o in x.outcomes:
        target = (f"goal {o['goal_id']} ({o['conversion_name']}) of account {o['account_id']}"
                  if o["goal_id"] else "the event")
        lines.append(f"  Outcome for {target}: {o['status']} ({o['reason']})")
        lines.append(f"    {o['explanation']}")
        if o["detail"]:
            lines.append(f"    Detail: {o['detail']}")
        if o["ms_code"]:
            lines.append(f"    Microsoft said: {o['ms_code']} {o['ms_error_code']}")
        if o["tracking_id"]:
            lines.append(f"    Microsoft TrackingId: {o['tracking_id']}")
        if o["next_attempt_at"]:
            lines.append(f"    Next attempt: {o['next_attempt_at']:%Y-%m-%d %H:%M:%S %Z}")
        if o["status"] not in ("uploaded",) and o["what_to_do"]:
            lines.append(f"    What to do: {o['what_to_do']}")
    lines.extend(_adjustment_lines(x))
    lines.append("Checklist:")
    for c in x.checks:
        lines.append(_check_line(c, "  "))
    for g in x.goals:
        lines.append(f"  For goal {g.goal_id} ({g.goal_name}) of account {g.account_id}:")
        for c in g.checks:
            lines.append(_check_line(c, "    "))
    return "\n".join(lines)


def _check_line(c: Check, indent: str) -> str:
    line = f"{indent}[{'ok' if c.ok else 'NO'}] {c.question} {c.answer}"
    if not c.ok and c.fix:
        line += f"\n{indent}     fix: {c.fix}"
    return line
