"""How the product is doing, for a person: outcomes per account and reason over the last hour,
day and week, the rejection rate, pending work, and the state of each Microsoft profile.

The page in the Airflow UI and the alerts both read it, so the two never disagree. The words
for each reason come from :mod:`include.msads_capi.outcomes`, as for ``msads why``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from include.msads_capi import outcomes, spaces
from include.msads_capi.microsoft.tokens import TokenStatus, token_status
from include.msads_capi.sql import dicts, query

if TYPE_CHECKING:
    import psycopg

WINDOWS = ("hour", "day", "week")
RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class RejectionRate:
    """Conversions Microsoft answered for one account in a window, and how many it refused."""

    account_id: int
    sent: int
    rejected: int

    @property
    def rate(self) -> float:
        return self.rejected / self.sent if self.sent else 0.0


@dataclass(frozen=True)
class ProfileStatus:
    """A Microsoft profile (an Airflow connection): its tokens and the accounts it serves."""

    conn_id: str
    token: TokenStatus
    warning: str | None
    accounts: list[spaces.Account]


def rejection_rates(conn: psycopg.Connection, now: datetime,
                    window: timedelta = RATE_WINDOW) -> list[RejectionRate]:
    """Per account: uploaded plus rejected conversions decided in ``window`` before ``now``."""
    rows = conn.execute(query("rejection_rates"), {"since": now - window, "now": now})
    return [RejectionRate(*r) for r in rows.fetchall()]


def outcome_counts(conn: psycopg.Connection, now: datetime) -> list[dict]:
    """Counts per account and reason for the last hour, day and week, with what each reason
    means and its fix; pending rows are counted whenever they arrived."""
    rows = dicts(conn.execute(query("outcome_counts"), {"now": now}))
    for row in rows:
        row["sentence"], row["fix"] = outcomes.words(row["reason"])
    return rows


def totals(counts: list[dict]) -> dict:
    """The page's headline: per window, how many were sent, rejected, skipped, deferred and
    failed, the rejection rate, and the work still pending."""
    out = {}
    for window in WINDOWS:
        by_status: dict[str, int] = {}
        for row in counts:
            by_status[row["status"]] = by_status.get(row["status"], 0) + row[window]
        answered = by_status.get("uploaded", 0) + by_status.get("rejected", 0)
        out[window] = {**by_status, "rate": (by_status.get("rejected", 0) / answered
                                             if answered else None)}
    out["pending"] = sum(r["week"] for r in counts if r["status"] == "pending")
    return out


def profile_statuses(conn: psycopg.Connection, now: datetime) -> list[ProfileStatus]:
    """Every profile that an account uses or that holds tokens, with the expiry warning."""
    accounts = spaces.list_accounts(conn)
    stored = [r[0] for r in conn.execute("SELECT conn_id FROM msads.oauth_tokens").fetchall()]
    out = []
    for conn_id in sorted({a.conn_id for a in accounts} | set(stored)):
        token = token_status(conn, conn_id)
        out.append(ProfileStatus(conn_id, token, token.warning(now),
                                 [a for a in accounts if a.conn_id == conn_id]))
    return out
