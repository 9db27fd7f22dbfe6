"""Goal refresh: record an account's offline goals as Microsoft lists them, and what changed.

Goals are upserted with first/last seen times. A goal that Microsoft no longer lists is marked
``missing_since``; a goal whose name changed keeps its id but its mappings are held until a person
confirms them (``msads map confirm``), because a renamed goal may now mean something else. Mappings
held either way carry a ``broken_reason``; the upload skips their events as ``goal_missing``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from include.msads_capi.microsoft.client import RemoteAccount, RemoteGoal
from include.msads_capi.sql import dicts

if TYPE_CHECKING:
    import psycopg

ACTIVE_ACCOUNT_STATES = {"Active"}


@dataclass
class RefreshSummary:
    account_id: int
    status: str
    goals: int = 0
    added: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    disappeared: list[str] = field(default_factory=list)
    reappeared: list[str] = field(default_factory=list)
    mappings_held: int = 0
    message: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def account_status(remote: RemoteAccount | None) -> tuple[str, str | None]:
    """Our status for an account given what the profile lists (None: not listed at all)."""
    if remote is None:
        return "not_found", ("the Microsoft profile no longer lists this account (deleted, or "
                             "access removed); link an account the profile can reach")
    if remote.status in ACTIVE_ACCOUNT_STATES or remote.status is None:
        return "active", None
    return "paused", f"Microsoft Advertising reports the account as {remote.status}"


def set_account_status(conn: psycopg.Connection, account_id: int, status: str,
                       reason: str | None) -> bool:
    """Record an account's status; True when it changed."""
    row = conn.execute("SELECT status FROM msads.accounts WHERE account_id = %s FOR UPDATE",
                       (account_id,)).fetchone()
    if row is None:
        return False
    changed = row[0] != status
    conn.execute(
        "UPDATE msads.accounts SET status = %s, status_reason = %s, updated_at = now(), "
        "status_changed_at = CASE WHEN %s THEN now() ELSE status_changed_at END "
        "WHERE account_id = %s", (status, reason, changed, account_id))
    return changed


def record_goals(conn: psycopg.Connection, account_id: int, goals: Sequence[RemoteGoal],
                 now: datetime, created_at: dict[int, datetime] | None = None) -> RefreshSummary:
    """Upsert the goals Microsoft listed for the account and mark what changed."""
    summary = RefreshSummary(account_id, "active", goals=len(goals))
    known = {gid: (name, missing) for gid, name, missing in conn.execute(
        "SELECT goal_id, name, missing_since FROM msads.goals WHERE account_id = %s",
        (account_id,))}
    listed = set()
    for g in goals:
        listed.add(g.goal_id)
        before = known.get(g.goal_id)
        if before is None:
            summary.added.append(g.name)
        elif before[0] != g.name:
            summary.renamed.append(f"{before[0]} -> {g.name}")
            summary.mappings_held += conn.execute(
                "UPDATE msads.mappings SET broken_reason = %s, updated_at = now() "
                "WHERE account_id = %s AND goal_id = %s AND goal_name IS DISTINCT FROM %s",
                (f"goal {g.goal_id} was renamed from {before[0]!r} to {g.name!r} in Microsoft "
                 "Advertising; if it still means the same, keep sending with: msads map "
                 "confirm MAPPING_ID", account_id, g.goal_id, g.name)).rowcount
        elif before[1] is not None:
            summary.reappeared.append(g.name)
        conn.execute(
            """INSERT INTO msads.goals (account_id, goal_id, name, status, scope, count_type,
                   window_minutes, revenue_type, revenue_value, revenue_currency, created_at,
                   first_seen_at, last_seen_at, missing_since, enhanced_conversions,
                   externally_attributed)
               VALUES (%(a)s, %(g)s, %(n)s, %(st)s, %(sc)s, %(ct)s, %(w)s, %(rt)s, %(rv)s,
                       %(rc)s, %(created)s, %(now)s, %(now)s, NULL, %(ec)s, %(ea)s)
               ON CONFLICT (account_id, goal_id) DO UPDATE SET name = EXCLUDED.name,
                   status = EXCLUDED.status, scope = EXCLUDED.scope,
                   enhanced_conversions = EXCLUDED.enhanced_conversions,
                   externally_attributed = EXCLUDED.externally_attributed,
                   count_type = EXCLUDED.count_type, window_minutes = EXCLUDED.window_minutes,
                   revenue_type = EXCLUDED.revenue_type, revenue_value = EXCLUDED.revenue_value,
                   revenue_currency = EXCLUDED.revenue_currency,
                   created_at = COALESCE(msads.goals.created_at, EXCLUDED.created_at),
                   last_seen_at = EXCLUDED.last_seen_at, missing_since = NULL""",
            {"a": account_id, "g": g.goal_id, "n": g.name, "st": g.status, "sc": g.scope,
             "ct": g.count_type, "w": g.window_minutes, "rt": g.revenue_type,
             "rv": g.revenue_value, "rc": g.revenue_currency,
             "ec": g.enhanced_conversions, "ea": g.externally_attributed,
             "created": (created_at or {}).get(g.goal_id), "now": now})
    # Mappings held only because their goal had vanished are released when it is back.
    conn.execute(
        "UPDATE msads.mappings m SET broken_reason = NULL, updated_at = now() "
        "FROM msads.goals g WHERE g.account_id = m.account_id AND g.goal_id = m.goal_id "
        "AND m.account_id = %s AND g.missing_since IS NULL AND g.name = m.goal_name "
        "AND m.broken_reason LIKE '%%no longer exists%%'", (account_id,))
    # Fill in names of mappings made by id before goals were known.
    conn.execute(
        "UPDATE msads.mappings m SET goal_name = g.name, updated_at = now() FROM msads.goals g "
        "WHERE g.account_id = m.account_id AND g.goal_id = m.goal_id AND m.account_id = %s "
        "AND m.goal_name IS NULL", (account_id,))
    for gid, (name, missing) in known.items():
        if gid in listed or missing is not None:
            continue
        summary.disappeared.append(name)
        conn.execute("UPDATE msads.goals SET missing_since = %s WHERE account_id = %s "
                     "AND goal_id = %s", (now, account_id, gid))
        summary.mappings_held += conn.execute(
            "UPDATE msads.mappings SET broken_reason = %s, updated_at = now() "
            "WHERE account_id = %s AND goal_id = %s",
            (f"goal {gid} ({name!r}) no longer exists in Microsoft Advertising (deleted, or no "
             "longer an offline conversion goal); map the event to another goal",
             account_id, gid)).rowcount
    conn.execute("UPDATE msads.accounts SET goals_fetched_at = %s, updated_at = now() "
                 "WHERE account_id = %s", (now, account_id))
    return summary


def list_goals(conn: psycopg.Connection, account_id: int) -> list[dict]:
    rows = conn.execute(
        "SELECT goal_id, name, status, scope, count_type, window_minutes, revenue_type, "
        "revenue_value, revenue_currency, enhanced_conversions, externally_attributed, "
        "created_at, first_seen_at, last_seen_at, missing_since "
        "FROM msads.goals WHERE account_id = %s ORDER BY name, goal_id", (account_id,))
    return dicts(rows)
