"""Choosing the warehouse, and the embedded PostgreSQL: the CLI's fallback, a task's only when
asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from include.msads_capi import warehouse
from include.msads_capi.errors import MsadsError, Unavailable

PROJECT = Path(__file__).resolve().parents[2]


def test_url_comes_first_then_the_airflow_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", "postgresql://a:pw@db.example:5433/dw")
    monkeypatch.setenv("MSADS_WAREHOUSE_URL", "postgresql://u@h/x")
    assert warehouse.resolve().source == "MSADS_WAREHOUSE_URL"
    monkeypatch.delenv("MSADS_WAREHOUSE_URL")
    wh = warehouse.resolve()
    assert wh.source == "Airflow connection warehouse_default"
    assert wh.url == "postgresql://a:pw@db.example:5433/dw"
    assert "pw" not in wh.describe() and "***" in wh.describe()


def test_airflow_json_connection_becomes_a_url(monkeypatch):
    monkeypatch.delenv("MSADS_WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps({
        "conn_type": "postgres", "host": "db.example", "port": 5432, "login": "ana",
        "password": "p@ss word", "schema": "dw", "extra": {"sslmode": "require"}}))
    assert warehouse.resolve().url == (
        "postgresql://ana:p%40ss%20word@db.example:5432/dw?sslmode=require")


def test_a_connection_without_host_names_no_server():
    assert warehouse.connection_to_url('{"conn_type": "postgres", "host": ""}') is None
    assert warehouse.connection_to_url("postgresql://") is None


def test_the_embedded_warehouse_is_asked_for_with_an_extra():
    asked = warehouse.read_connection(json.dumps({"conn_type": "postgres", "host": None,
                                                  "extra": '{"embedded": true}'}))
    assert asked == warehouse.ConnectionChoice(None, embedded=True)
    assert warehouse.read_connection("postgresql://?embedded=true").embedded  # URI form
    assert warehouse.read_connection(
        "postgres://?__extra__=" + quote('{"embedded": true}')).embedded
    assert not warehouse.read_connection('{"host": "", "extra": {"embedded": false}}').embedded
    with pytest.raises(MsadsError, match="has a host and extra .*; remove one of them"):
        warehouse.read_connection('{"host": "db.example", "extra": {"embedded": true}}')
    with pytest.raises(MsadsError, match="extra of connection warehouse_default is not valid"):
        warehouse.read_connection('{"host": "", "extra": "{embedded"}')


@pytest.fixture
def starts(monkeypatch) -> list:
    """Calls to EmbeddedWarehouse.start, which answers a made-up URL instead of starting."""
    calls = []

    def start(self, database: str = warehouse.EMBEDDED_DB) -> str:
        calls.append(database)
        return f"postgresql://postgres@/{database}?host=/nowhere"

    monkeypatch.delenv("MSADS_WAREHOUSE_URL", raising=False)
    monkeypatch.setattr(warehouse.EmbeddedWarehouse, "start", start)
    return calls


def test_the_cli_still_falls_back_to_the_embedded_warehouse(monkeypatch, starts):
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", raising=False)
    assert warehouse.resolve().source.startswith("embedded PostgreSQL in ")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", '{"conn_type": "postgres", "host": ""}')
    assert warehouse.resolve().source.startswith("embedded PostgreSQL in ")
    assert starts == ["msads", "msads"]


def test_without_the_default_only_the_extra_selects_the_embedded_warehouse(monkeypatch, starts):
    """What Airflow tasks use (embedded_by_default=False): hostless or missing is an error
    saying what to set, and nothing starts; the extra starts it."""
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", raising=False)
    with pytest.raises(MsadsError) as caught:
        warehouse.resolve(embedded_by_default=False)
    assert str(caught.value) == warehouse.NOT_CONFIGURED
    assert "MSADS_WAREHOUSE_URL" in str(caught.value) and '{"embedded": true}' in str(caught.value)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", '{"conn_type": "postgres", "host": ""}')
    with pytest.raises(MsadsError) as caught:
        warehouse.resolve(embedded_by_default=False)
    assert str(caught.value) == (
        'warehouse_default has no host: set its host, or set extra {"embedded": true} to use '
        "the project's embedded PostgreSQL (local only)")
    assert starts == []
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT",
                       '{"conn_type": "postgres", "host": "", "extra": {"embedded": true}}')
    assert warehouse.resolve(embedded_by_default=False).source.startswith("embedded PostgreSQL")
    assert starts == ["msads"]
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", "postgresql://a@db.example/dw")
    assert warehouse.resolve(embedded_by_default=False).url == "postgresql://a@db.example/dw"


def test_a_connection_of_another_kind_is_refused():
    with pytest.raises(MsadsError, match="postgresql://user:password@host"):
        warehouse.connection_to_url("mysql://u@h/db")


def test_unreachable_server_says_where_it_tried_and_may_be_tried_again():
    wh = warehouse.Warehouse("postgresql://nobody:secret@127.0.0.1:1/none", "MSADS_WAREHOUSE_URL")
    with pytest.raises(Unavailable) as exc:  # retried by Airflow, "try again" from the CLI
        warehouse.connect(wh)
    assert "cannot connect" in str(exc.value) and "secret" not in str(exc.value)
    assert not isinstance(exc.value, MsadsError)


def test_the_cli_says_try_again_when_the_warehouse_is_down(tmp_path):
    env = {**os.environ, "MSADS_WAREHOUSE_URL": "postgresql://nobody@127.0.0.1:1/none",
           "PYTHONPATH": str(PROJECT), "MSADS_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "include.msads_capi.cli", "space", "list"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 75, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("msads: error: cannot connect to the") and "try again" in last


def _msads(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MSADS_WAREHOUSE_URL", "AIRFLOW_CONN_WAREHOUSE_DEFAULT", "AIRFLOW_HOME",
                        "XDG_RUNTIME_DIR")}
    env.update(MSADS_HOME=str(home), PYTHONPATH=str(PROJECT))
    return subprocess.run([sys.executable, "-m", "include.msads_capi.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_embedded_warehouse_starts_from_nothing_is_reused_and_stops(tmp_path):
    first = _msads(tmp_path, "db", "migrate")
    assert first.returncode == 0, first.stderr
    assert "warehouse: embedded PostgreSQL" in first.stderr
    assert "applied 0001_conversion_events" in first.stdout
    assert (tmp_path / "warehouse" / "pgdata" / "PG_VERSION").exists()
    again = _msads(tmp_path, "space", "add", "s1", "--currency", "USD", "--region", "US")
    assert again.returncode == 0, again.stderr
    status = _msads(tmp_path, "warehouse", "status")
    assert "running" in status.stdout
    assert "stopped the embedded" in _msads(tmp_path, "warehouse", "stop").stdout
    assert "stopped" in _msads(tmp_path, "warehouse", "status").stdout
    # the data survives a restart
    listing = _msads(tmp_path, "space", "list", "--json")
    assert [s["space_id"] for s in json.loads(listing.stdout)] == ["s1"]
    _msads(tmp_path, "warehouse", "stop")
