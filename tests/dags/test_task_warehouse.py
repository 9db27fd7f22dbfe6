"""Inside Airflow, the embedded PostgreSQL is used only when warehouse_default asks for it: a
worker of a real deployment never starts one quietly (tasks/common.py, task_warehouse)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.msads_capi import warehouse as wh
from include.msads_capi.local.airflow_settings import read
from include.msads_capi.tasks.upload import claim_new_events

PROJECT = Path(__file__).resolve().parents[2]
NO_HOST = ('warehouse_default has no host: set its host, or set extra {"embedded": true} to use '
           "the project's embedded PostgreSQL (local only)")


@pytest.fixture
def embedded(monkeypatch, warehouse) -> list:
    """EmbeddedWarehouse.start, recorded; it answers the test's warehouse instead of starting
    a server, and MSADS_WAREHOUSE_URL is unset so that only warehouse_default decides."""
    calls = []

    def start(self, database: str = wh.EMBEDDED_DB) -> str:
        calls.append(database)
        return warehouse.url

    monkeypatch.setattr(wh.EmbeddedWarehouse, "start", start)
    monkeypatch.delenv("MSADS_WAREHOUSE_URL")
    return calls


def test_a_hostless_connection_fails_the_task_at_once_and_starts_nothing(monkeypatch, embedded):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps(
        {"conn_type": "postgres", "host": "", "schema": "msads", "login": "postgres"}))
    with pytest.raises(AirflowFailException) as caught:
        claim_new_events("manual__no_host")
    assert str(caught.value) == f"claiming new events: {NO_HOST}"
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", raising=False)
    with pytest.raises(AirflowFailException, match="no warehouse is configured: add the Airflow "
                       "connection warehouse_default"):
        claim_new_events("manual__no_connection")
    assert embedded == []


def test_the_extra_asks_for_the_embedded_warehouse(monkeypatch, embedded):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps(
        {"conn_type": "postgres", "host": "", "extra": {"embedded": True}}))
    assert claim_new_events("manual__embedded")["total"] == 0
    assert embedded == [wh.EMBEDDED_DB]


def test_make_runs_connection_asks_for_it_and_so_does_the_hook(monkeypatch, embedded):
    from include.msads_capi.hooks.msads import MicrosoftAdsHook

    conn = {c["conn_id"]: c for c in read(PROJECT / "airflow_settings.yaml")["connections"]}
    conn = conn["warehouse_default"]
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps(
        {k: conn[k] for k in ("conn_type", "host", "schema", "login", "password", "port",
                              "extra")}))
    assert claim_new_events("manual__make_run")["total"] == 0
    assert MicrosoftAdsHook().warehouse.source.startswith("embedded PostgreSQL in ")
    assert embedded == [wh.EMBEDDED_DB, wh.EMBEDDED_DB]
