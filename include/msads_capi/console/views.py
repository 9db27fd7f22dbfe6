"""What the page shows, read with the same core functions as the CLI (no second version)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from include.msads_capi import health, spaces
from include.msads_capi.goals.records import list_goals

if TYPE_CHECKING:
    import psycopg


@dataclass
class Overview:
    now: datetime
    spaces: list[spaces.Space]
    profiles: list[health.ProfileStatus]
    accounts: list[spaces.Account]
    goals: dict[int, list[dict]]
    mappings: list[spaces.Mapping]
    counts: list[dict]
    totals: dict
    rates: list[health.RejectionRate]
    pick_account: spaces.Account | None = None
    values: dict = field(default_factory=dict)  # form values to show again after an error
    errors: dict = field(default_factory=dict)  # (form, field) -> one-line error


def overview(conn: psycopg.Connection, now: datetime, pick_account: str | None = None) -> Overview:
    """Everything the page shows; ``pick_account`` is the account chosen in the mapping form."""
    accounts = spaces.list_accounts(conn)
    counts = health.outcome_counts(conn, now)
    chosen = None
    if pick_account:
        wanted = str(pick_account).strip()
        chosen = next((a for a in accounts if str(a.account_id) == wanted), None)
    return Overview(
        now=now, spaces=spaces.list_spaces(conn), profiles=health.profile_statuses(conn, now),
        accounts=accounts, goals={a.account_id: list_goals(conn, a.account_id) for a in accounts},
        mappings=spaces.list_mappings(conn), counts=counts, totals=health.totals(counts),
        rates=health.rejection_rates(conn, now), pick_account=chosen)
