"""Throughput on Airflow's CeleryExecutor: events/s with one worker, then two, on the same backlog.

    python bench/celery.py                      # 20,000 events per backlog
    python bench/celery.py --events 2000

Starts what ``make run-celery`` starts (``include.msads_capi.local.run_celery``: api-server,
scheduler, dag-processor, triggerer, Celery workers, a ``redis-server`` of its own when there is
the binary, else the machine's Redis on 127.0.0.1:6379) with one worker in a temporary Airflow
home, the emulator and a throw-away warehouse (embedded PostgreSQL, or a new database on
``MSADS_WAREHOUSE_URL``'s server, which also holds the metadata database). Each worker has one
task slot (``--concurrency``). The upload DAG runs as in production: on new rows and every
minute, each upload task calling Microsoft for at most ``msads_run_time_budget_seconds`` (45 s)
per run, a backlog split into two parts (``MSADS_UPLOAD_PROCESSES=2``). A backlog is inserted in
one transaction; its rate is its events over the time from that commit to the last outcome
recorded. Then a second worker starts and an equal backlog goes the same way. The last line is
``2 workers / 1 worker: <ratio>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.latency import _unpaused, free_port  # noqa: E402
from bench.pipeline import Bench, _with_database  # noqa: E402

TERMINAL = "('uploaded', 'rejected', 'skipped', 'failed')"


def load(url: str, admin, account_id: int, n: int) -> tuple[str, float]:
    """``n`` Purchase events with click ids the emulator issued, in one transaction; (their
    id prefix, the monotonic time of the commit)."""
    import psycopg

    prefix = uuid.uuid4().hex[:8]
    clicks = admin.issue_clicks(account_id, n, click_time={"ago": 3 * 3600})
    when = datetime.now(UTC) - timedelta(hours=1)
    with psycopg.connect(url) as conn, conn.cursor().copy(
            "COPY conversion_events (event_id, space_id, event_name, event_time, value, "
            "msclkid, attributed_platform) FROM STDIN") as copy:
        for i, click in enumerate(clicks):
            copy.write_row((f"{prefix}-{i:07d}", "shop", "Purchase", when, 25, click,
                            "microsoft"))
    return prefix, time.monotonic()


def drain(url: str, prefix: str, n: int, committed: float, timeout: float) -> float:
    """Wait until every event of the backlog has its outcome; events/s since the commit."""
    import psycopg

    deadline = committed + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            (done,) = conn.execute(f"SELECT count(*) FROM msads.results WHERE event_id LIKE %s "
                                   f"AND status IN {TERMINAL}", (f"{prefix}-%",)).fetchone()
            if done >= n:
                return n / (time.monotonic() - committed)
            time.sleep(1)
    raise SystemExit(f"the backlog was not drained in {timeout:.0f} s ({done} of {n})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per backlog")
    parser.add_argument("--concurrency", type=int, default=1, help="task slots per worker")
    args = parser.parse_args()
    import psycopg

    from include.msads_capi.local.run_airflow import Components, airflow_env
    from include.msads_capi.local.run_celery import (
        MACHINE_REDIS,
        celery_env,
        redis_answers,
        start_cluster,
        start_redis,
        start_worker,
    )

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    bench = Bench()
    components = Components(bench.tmp / "logs")
    try:
        env = {**os.environ, **bench.prepare(0)}
        url = env["MSADS_WAREHOUSE_URL"]
        metadata_db = f"msads_bench_af_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(bench.server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{metadata_db}"')
        bench.databases.append(metadata_db)
        if shutil.which("redis-server"):
            broker = start_redis(components, bench.tmp / "redis")
        elif redis_answers(*MACHINE_REDIS):
            broker = "redis://{}:{}/0".format(*MACHINE_REDIS)
            env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] = f"msads-bench-{uuid.uuid4().hex[:8]}"
        else:
            raise SystemExit("no Redis: install redis-server or run one on 127.0.0.1:6379")
        port = free_port()
        base = {k: v for k, v in env.items()
                if not k.startswith("AIRFLOW") or k.startswith("AIRFLOW_CONN_")
                or k == "AIRFLOW__OPERATORS__DEFAULT_QUEUE"}
        base.update({"PYTHONPATH": str(ROOT), "MSADS_UPLOAD_PROCESSES": "2",
                     "MSADS_PART_MIN_CONVERSIONS": str(max(1, args.events // 2)),
                     "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())})
        cluster_env = celery_env(airflow_env(bench.tmp / "airflow", port, base=base),
                                 broker=broker,
                                 database=_with_database(bench.server, metadata_db))
        tag = uuid.uuid4().hex[:6]
        started = time.monotonic()
        start_cluster(components, cluster_env, workers=[f"bench1-{tag}"],
                      concurrency=args.concurrency)
        while not _unpaused(cluster_env):
            if time.monotonic() - started > 300 or components.exited():
                raise SystemExit(f"Airflow did not load the DAG; see {components.log_dir}")
            time.sleep(5)
        print(f"Airflow on Celery up after {time.monotonic() - started:.0f} s; "
              f"{args.events:,} events per backlog, {args.concurrency} task slot(s) per worker",
              flush=True)
        with psycopg.connect(url) as conn:
            (account,) = conn.execute("SELECT account_id FROM msads.accounts").fetchone()
        timeout = max(300.0, args.events / 20)
        rates = {}
        for workers in (1, 2):
            if workers == 2:
                start_worker(components, cluster_env, f"bench2-{tag}", args.concurrency)
                time.sleep(20)  # the new worker connects to the broker
            prefix, committed = load(url, bench.admin, account, args.events)
            rates[workers] = drain(url, prefix, args.events, committed, timeout)
            print(f"{workers} worker{'s' if workers > 1 else ''}: {rates[workers]:.0f} events/s "
                  f"({args.events:,} events in {args.events / rates[workers]:.1f} s)",
                  flush=True)
        accepted = len(bench.admin.conversions())
        print(f"accepted by the emulator: {accepted:,} of {2 * args.events:,}; duplicates: "
              f"{len(bench.admin.duplicates())}; load average {os.getloadavg()[0]:.2f}")
        print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}")
    finally:
        components.stop_all()
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
