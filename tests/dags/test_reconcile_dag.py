"""msads_reconcile end to end with dag.test(): Microsoft's view lands in the ledger."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest

from include.msads_emulator.testing import seed_tenant
from tests.dags.conftest import task_states
from tests.fixtures_pipeline import emu_now
from tests.microsoft.conftest import connection

pytestmark = pytest.mark.airflow


def test_reconcile_dag_records_what_microsoft_counted(run_dag, warehouse, emu, msads,
                                                      monkeypatch):
    emu.admin.reset()
    tenant = seed_tenant(emu)
    monkeypatch.setenv("AIRFLOW_CONN_MSADS_DEFAULT", json.dumps(connection(emu, tenant)))
    for args in (("space", "add", "shop", "--currency", "USD", "--region", "US"),
                 ("account", "link", str(tenant.account_id), "--customer",
                  str(tenant.customer_id), "--space", "shop")):
        assert msads(*args)[0] == 0, args
    assert run_dag("msads_refresh_goals").state == "success"
    for args in (("map", "add", "--account", str(tenant.account_id), "--goal",
                  str(tenant.goal_id), "--event", "Purchase"),
                 ("capi", "on", "--space", "shop")):
        assert msads(*args)[0] == 0, args
    click = emu.admin.issue_click(tenant.account_id,
                                  click_time=(emu_now(emu) - timedelta(hours=3)).isoformat())
    with psycopg.connect(warehouse.url) as conn:
        conn.execute("INSERT INTO conversion_events (event_id, space_id, event_name, "
                     "event_time, value, msclkid) VALUES ('o-1', 'shop', 'Purchase', "
                     "now() - interval '1 hour', 10, %s), ('o-2', 'shop', 'Purchase', "
                     "now() - interval '1 hour', 10, %s)",
                     (click, "0123456789abcdef0123456789abcdef"))
    assert msads("run")[0] == 0
    dag_run = run_dag("msads_reconcile")
    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert states[("reconcile_account", 0)] == "success"
    with psycopg.connect(warehouse.url) as conn:
        view = dict(conn.execute("SELECT event_id, ms_unattributed FROM msads.results "
                                 "WHERE ms_reported_at IS NOT NULL").fetchall())
    assert view == {"o-1": None, "o-2": "NoMatchingClickFound"}
