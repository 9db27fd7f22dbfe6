"""A configured shop: emulator tenant, Space with CAPI on, linked account, goals, mappings."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
import pytest

from include.msads_capi import spaces as cfg
from include.msads_capi.goals.refresh import refresh_account
from include.msads_capi.pipeline.run import run_once
from include.msads_capi.settings import PipelineConfig
from include.msads_capi.warehouse import transaction

_ids = itertools.count(1)


def emu_now(emu) -> datetime:
    return datetime.fromisoformat(emu.admin.clock()["now"].replace("Z", "+00:00"))


@dataclass
class Shop:
    warehouse: object
    emu: object
    tenant: object
    client: object
    account: cfg.Account
    purchase_goal: int
    lead_goal: int

    def now(self) -> datetime:
        return emu_now(self.emu)

    def event(self, name: str = "Purchase", **fields) -> str:
        """Insert one event (defaults: a valid Purchase with a fresh click id); returns its id."""
        event_id = fields.pop("event_id", f"ev-{next(_ids)}")
        row = {"event_id": event_id, "space_id": "shop", "event_name": name,
               "event_time": self.now() - timedelta(hours=1), "value": 25,
               "currency_code": None, "msclkid": None, "email": None, "phone": None,
               "attributed_platform": "microsoft"}
        if "msclkid" not in fields and "email" not in fields and "phone" not in fields:
            row["msclkid"] = self.click()
        row.update(fields)
        cols = ", ".join(row)
        with psycopg.connect(self.warehouse.url) as conn:
            conn.execute(f"INSERT INTO conversion_events ({cols}) VALUES "
                         f"({', '.join(['%s'] * len(row))})", list(row.values()))
        return event_id

    def click(self, hours_ago: float = 3) -> str:
        return self.emu.admin.issue_click(
            self.tenant.account_id,
            click_time=(self.now() - timedelta(hours=hours_ago)).isoformat())

    def run(self, run_id: str | None = None, config: PipelineConfig | None = None) -> dict:
        return run_once(self.warehouse, lambda account: self.client, run_id or f"run-{next(_ids)}",
                        config or PipelineConfig(), clock=self.now)

    def outcomes(self, event_id: str | None = None) -> list[tuple]:
        """The event's outcomes as analysts read them: a conversion ready to send waits in the
        outbox with no ledger row, and the view shows it as pending."""
        with psycopg.connect(self.warehouse.url) as conn:
            return conn.execute(
                "SELECT event_id, goal_id, status, reason FROM msads.event_outcomes "
                "WHERE %(e)s::text IS NULL OR event_id = %(e)s ORDER BY event_id, goal_id",
                {"e": event_id}).fetchall()

    def reason(self, event_id: str) -> list[str]:
        return [r[3] for r in self.outcomes(event_id)]


@pytest.fixture
def shop(warehouse, emu, tenant, client, msads_conn, msads) -> Shop:
    lead = emu.admin.create_goal("Lead", account_id=tenant.account_id)
    assert msads("space", "add", "shop", "--currency", "USD", "--region", "US")[0] == 0
    assert msads("account", "link", str(tenant.account_id), "--customer",
                 str(tenant.customer_id), "--space", "shop")[0] == 0
    with transaction(warehouse) as conn:
        account = cfg.get_account(conn, tenant.account_id)
    refresh_account(warehouse, client, account, now=emu_now(emu))
    for goal, event, rule in ((tenant.goal_id, "Purchase", "all"), (lead["id"], "Lead",
                                                                    "attributed_only")):
        assert msads("map", "add", "--account", str(tenant.account_id), "--goal", str(goal),
                     "--event", event, "--rule", rule)[0] == 0
    assert msads("capi", "on", "--space", "shop")[0] == 0
    return Shop(warehouse, emu, tenant, client, account, tenant.goal_id, lead["id"])
