"""Latency under Airflow: from ``ingested_at`` to Microsoft (the emulator) accepting the conversion.

    python bench/latency.py                    # 10 minutes at 5 events/s
    python bench/latency.py --minutes 2 --rate 2

Starts what ``make run`` starts (``include.msads_capi.local.run_airflow``: Airflow standalone,
LocalExecutor) in a temporary ``MSADS_AIRFLOW_HOME`` on a free port, with the emulator and a
throw-away warehouse (embedded PostgreSQL, or a new database on ``MSADS_WAREHOUSE_URL``'s server)
configured through the environment. It unpauses ``msads_upload_conversions`` (on new rows, and
every minute), inserts events at a steady rate, waits for the last one to be accepted, and prints
p50, p95 and max of ``received_at`` (the emulator's receive time) minus ``ingested_at``; then the
DAG runs from Airflow's metadata (how many, started by the asset watcher or by the schedule, the
most queued or running at once) and the median time of each task; the last line is p95 over the
30 s goal.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline import Bench  # noqa: E402

GOAL_P95_SECONDS = 30  # issue #13's goal for ingested_at -> accepted


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def airflow(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("airflow")), *args], env=env,
                          capture_output=True, text=True)


def _unpaused(env: dict) -> bool:
    """Unpause the DAG; True once Airflow's metadata shows it unpaused (not before parsing)."""
    airflow(env, "dags", "unpause", "msads_upload_conversions")
    details = airflow(env, "dags", "details", "msads_upload_conversions", "-o", "plain").stdout
    return any(line.split() == ["is_paused", "False"] for line in details.splitlines())


# Read in Airflow's own environment, from its metadata database, while it still runs.
RUNS = r"""
import json, statistics
from sqlalchemy import func, select
from airflow.models import DagRun, TaskInstance
from airflow.models.asset import AssetEvent
from airflow.utils.session import create_session

with create_session() as s:
    runs = s.execute(select(DagRun.run_type, DagRun.queued_at, DagRun.start_date,
                            DagRun.end_date).where(DagRun.dag_id == "msads_upload_conversions")
                     ).all()
    tis = s.execute(select(TaskInstance.task_id, TaskInstance.start_date, TaskInstance.end_date)
                    .where(TaskInstance.dag_id == "msads_upload_conversions",
                           TaskInstance.end_date.is_not(None))).all()
    events = s.scalar(select(func.count()).select_from(AssetEvent))
edges = sorted([(r.queued_at, 1) for r in runs if r.queued_at]
               + [(r.end_date, -1) for r in runs if r.queued_at and r.end_date])
at_once = peak = 0
for _, step in edges:
    at_once += step
    peak = max(peak, at_once)
kinds = {}
for r in runs:
    kind = str(getattr(r.run_type, "value", r.run_type))
    kinds[kind] = kinds.get(kind, 0) + 1
took = {}
for t in tis:
    took.setdefault(t.task_id, []).append((t.end_date - t.start_date).total_seconds())
runs_took = [(r.end_date - r.queued_at).total_seconds() for r in runs
             if r.queued_at and r.end_date]
# the longest stretch with no run queued or running: how long new rows could wait for one
done = sorted((r.queued_at, r.end_date) for r in runs if r.queued_at and r.end_date)
gap, until = 0.0, None
for queued, ended in done:
    if until is not None:
        gap = max(gap, (queued - until).total_seconds())
    until = ended if until is None else max(until, ended)
print(json.dumps({"runs": kinds, "peak": peak, "asset_events": events,
                  "run_median": statistics.median(runs_took) if runs_took else None,
                  "run_max": max(runs_took, default=None), "gap_max": gap,
                  "tasks": {k: statistics.median(v) for k, v in sorted(took.items())}}))
"""


def dag_runs(env: dict) -> str:
    """What Airflow did: DAG runs by kind, the most at once, median run and task times."""
    proc = subprocess.run([sys.executable, "-c", RUNS], env=env, capture_output=True, text=True)
    if proc.returncode:
        return f"DAG runs: not read ({proc.stderr.strip().splitlines()[-1:]})"
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(got["runs"].items()))
    tasks = ", ".join(f"{task} {took:.1f} s" for task, took in got["tasks"].items())
    return (f"DAG runs: {sum(got['runs'].values())} ({kinds}); at most {got['peak']} queued or "
            f"running at once; {got['asset_events']} asset events\n"
            f"median run {got['run_median'] or 0:.1f} s (queued to done), slowest "
            f"{got['run_max'] or 0:.1f} s; longest time with no run {got['gap_max']:.1f} s; "
            f"median task: {tasks}")


def _slowest(received: list[dict], ingested: dict) -> str:
    """When the slowest 1% of the events came in (seconds after the first event) and how long
    each waited: clustered, they show one stall; spread out, a steady tail."""
    first = min(ingested.values())
    waits = sorted(((datetime.fromisoformat(c["received_at"].replace("Z", "+00:00"))
                     - ingested[c["click_id"]]).total_seconds(),
                    (ingested[c["click_id"]] - first).total_seconds())
                   for c in received if c["click_id"] in ingested)
    worst = sorted(waits[-max(1, len(waits) // 100):], key=lambda w: w[1])
    return "slowest 1% (came in at +s: waited s): " + ", ".join(
        f"+{at:.0f}: {took:.1f}" for took, at in worst)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    args = parser.parse_args()
    import psycopg

    # Stop cleanly (Airflow, emulator, warehouse) on Ctrl-C or SIGTERM, even under nohup.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    bench = Bench()
    proc = None
    try:
        env = {**os.environ, **bench.prepare(0)}
        home = bench.tmp / "airflow"
        port = free_port()
        env.update({"MSADS_AIRFLOW_HOME": str(home), "AIRFLOW__API__PORT": str(port),
                    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                    "PYTHONPATH": str(ROOT)})
        log = open(bench.tmp / "airflow.log", "w")  # noqa: SIM115 - lives as long as Airflow
        proc = subprocess.Popen([sys.executable, "-m", "include.msads_capi.local.run_airflow"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        from include.msads_capi.local.run_airflow import airflow_env

        cli_env = airflow_env(home, port)
        cli_env.update({k: env[k] for k in ("MSADS_WAREHOUSE_URL", "AIRFLOW_CONN_MSADS_DEFAULT")})
        started = time.monotonic()
        while not _unpaused(cli_env):
            if time.monotonic() - started > 300 or proc.poll() is not None:
                raise SystemExit(f"Airflow did not load the DAG; see {bench.tmp}/airflow.log")
            time.sleep(5)
        print(f"Airflow up on port {port} after {time.monotonic() - started:.0f} s; "
              f"inserting {args.rate:g} events/s for {args.minutes:g} min", flush=True)

        total = int(args.rate * args.minutes * 60)
        with psycopg.connect(env["MSADS_WAREHOUSE_URL"], autocommit=True) as conn:
            (account,) = conn.execute("SELECT account_id FROM msads.accounts").fetchone()
            clicks = bench.admin.issue_clicks(account, total, click_time={"ago": 3 * 3600})
            t0 = time.monotonic()
            for i, click in enumerate(clicks):
                due = t0 + i / args.rate
                time.sleep(max(0.0, due - time.monotonic()))
                conn.execute(
                    "INSERT INTO conversion_events (event_id, space_id, event_name, event_time, "
                    "value, msclkid, attributed_platform) VALUES (%s, 'shop', 'Purchase', "
                    "now() - interval '30 minutes', 10, %s, 'microsoft')", (f"lat-{i}", click))
            print(f"inserted {total} events; waiting for the last uploads", flush=True)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                (done,) = conn.execute("SELECT count(*) FROM msads.results WHERE status "
                                       "IN ('uploaded', 'rejected', 'skipped', 'failed')"
                                       ).fetchone()
                if done >= total:
                    break
                time.sleep(5)
            ingested = dict(conn.execute(
                "SELECT msclkid, ingested_at FROM conversion_events").fetchall())
            outcomes = dict(conn.execute(
                "SELECT reason, count(*) FROM msads.results GROUP BY 1").fetchall())
        print(dag_runs(cli_env), flush=True)
        received = bench.admin.conversions()
        latencies = [(datetime.fromisoformat(c["received_at"].replace("Z", "+00:00"))
                      - ingested[c["click_id"]]).total_seconds()
                     for c in received if c["click_id"] in ingested]
        print(f"outcomes: {outcomes}; accepted by the emulator: {len(latencies)} of {total}")
        if not latencies:
            raise SystemExit(f"nothing was accepted; see {bench.tmp}/airflow.log")
        p95 = percentile(latencies, 95)
        print(f"latency ingested_at -> accepted: p50 {statistics.median(latencies):.1f} s, "
              f"p95 {p95:.1f} s, max {max(latencies):.1f} s")
        print(_slowest(received, ingested))
        print(f"p95 over the {GOAL_P95_SECONDS} s goal: {p95 / GOAL_P95_SECONDS:.2f}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # run_airflow stops standalone in order
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
