"""msads_refresh_goals end to end with dag.test(): goals land, secrets stay out of the logs."""

from __future__ import annotations

import json
import logging

import psycopg
import pytest

from include.msads_emulator.testing import seed_tenant
from tests.dags.conftest import task_states
from tests.microsoft.conftest import connection

pytestmark = pytest.mark.airflow


def test_refresh_goals_dag_fetches_goals_and_logs_no_secret(run_dag, warehouse, emu, msads,
                                                            monkeypatch, caplog, capsys):
    emu.admin.reset()
    tenant = seed_tenant(emu)
    emu.admin.create_goal("Lead", account_id=tenant.account_id)
    monkeypatch.setenv("AIRFLOW_CONN_MSADS_DEFAULT", json.dumps(connection(emu, tenant)))
    msads("space", "add", "shop", "--currency", "USD", "--region", "US")
    msads("account", "link", str(tenant.account_id), "--customer", str(tenant.customer_id),
          "--space", "shop")
    caplog.set_level(logging.DEBUG)
    dag_run = run_dag("msads_refresh_goals")
    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert states[("refresh_account_goals", 0)] == "success"
    with psycopg.connect(warehouse.url) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM msads.goals")}
        (fetched,) = conn.execute("SELECT goals_fetched_at FROM msads.accounts").fetchone()
        (stored,) = conn.execute("SELECT refresh_token_enc FROM msads.oauth_tokens").fetchone()
    assert names == {tenant.goal_name, "Lead"} and fetched is not None
    out, err = capsys.readouterr()
    logs = caplog.text + out + err
    assert "refreshed the Microsoft access token" in logs  # the task logs were captured
    for secret in (tenant.developer_token, tenant.client_secret, tenant.refresh_token,
                   tenant.access_token, stored):
        assert secret and secret not in logs
    # no access or refresh token the emulator issued during the run either
    for request in emu.admin.requests(service="oauth", operation="token"):
        body = request.get("response_body") or ""
        for token in _tokens_in(body):
            assert token not in logs


def _tokens_in(body: str) -> list[str]:
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return []
    return [data[k] for k in ("access_token", "refresh_token") if data.get(k)]
