"""`make run`: Airflow serves the UI with the documented login, and Ctrl-C stops every process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port

PROJECT = Path(__file__).resolve().parents[2]


def _processes_of(home: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("AIRFLOW_HOME") == str(home):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _get(url: str, **kw) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, **kw), timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
@pytest.mark.airflow
def test_make_run_serves_the_ui_runs_a_dag_and_stops_cleanly_on_ctrl_c(tmp_path, warehouse):
    port = free_port()
    home = tmp_path / "airflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(MSADS_AIRFLOW_HOME=str(home), AIRFLOW__API__PORT=str(port),
               AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
               AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
               PYTHONPATH=str(PROJECT), MSADS_WAREHOUSE_URL=warehouse.url)
    proc = subprocess.Popen([sys.executable, "-m", "include.msads_capi.local.run_airflow"],
                            env=env, cwd=PROJECT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, health = time.monotonic() + 120, {}
        while time.monotonic() < deadline:
            try:
                health = _get(f"{base}/api/v2/monitor/health")
                if all(v.get("status") == "healthy" for v in health.values()):
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(1)
        assert health and all(v.get("status") == "healthy" for v in health.values()), health
        token = _get(f"{base}/auth/token", method="POST",
                     data=json.dumps({"username": "admin", "password": "admin"}).encode(),
                     headers={"Content-Type": "application/json"})
        assert token.get("access_token")
        auth = {"Authorization": f"Bearer {token['access_token']}",
                "Content-Type": "application/json"}
        pools = _get(f"{base}/api/v2/pools", headers=auth)
        assert "msads_api" in {p["name"] for p in pools["pools"]}
        # The Microsoft CAPI page is in the menu and serves, on the warehouse make run migrated.
        plugins = _get(f"{base}/api/v2/plugins", headers=auth)["plugins"]
        views = [v for p in plugins for v in p["external_views"]]
        assert [(v["name"], v["href"]) for v in views] == [("Microsoft CAPI", "/msads-capi/")]
        with urllib.request.urlopen(urllib.request.Request(
                f"{base}/msads-capi/", headers=auth), timeout=60) as resp:
            assert resp.status == 200 and "<h2 id=\"spaces\">Spaces</h2>" in resp.read().decode()
        # A task really runs: the workers reach the api-server on the chosen port.
        dag = f"{base}/api/v2/dags/msads_refresh_goals"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                _get(dag, headers=auth)
                break
            except OSError:
                time.sleep(2)
        _get(dag, method="PATCH", data=json.dumps({"is_paused": False}).encode(), headers=auth)
        run = _get(f"{dag}/dagRuns", method="POST",
                   data=json.dumps({"logical_date": None}).encode(), headers=auth)
        state, deadline = None, time.monotonic() + 240
        while time.monotonic() < deadline and state not in ("success", "failed"):
            time.sleep(2)
            try:
                state = _get(f"{dag}/dagRuns/{run['dag_run_id']}", headers=auth)["state"]
            except OSError:  # a busy machine: ask again
                continue
        assert state == "success"
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        output, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, output
    assert "Airflow stopped" in output
    time.sleep(1)
    assert _processes_of(home) == []
