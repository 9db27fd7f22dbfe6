"""The project on Airflow's CeleryExecutor with real components: what ``make run-celery`` starts.

Two Celery workers, a scheduler, a dag-processor, a triggerer and an api-server run as processes
(:mod:`include.msads_capi.local.run_celery`) against Redis, a metadata database of their own
(PostgreSQL, also the Celery result backend), the test's warehouse and the emulator. The upload
DAG runs as it does in production (unpaused: on new rows, and every minute). One test, three
acts, so that the cluster starts once:

1. a backlog split into parts is uploaded by mapped tasks on both workers, each conversion once;
2. a worker is killed (SIGKILL of its process group) mid-upload: the task is retried on the
   other worker, and the drill report says how many conversions were resent and absorbed by
   Microsoft's dedupe;
3. the scheduler restarts during a run, and the run completes.

Skipped only when there is neither a ``redis-server`` to start nor a Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from include.msads_capi.local.run_airflow import Components, airflow_env
from include.msads_capi.local.run_celery import (
    MACHINE_REDIS,
    VISIBILITY_TIMEOUT_SECONDS,
    celery_env,
    redis_answers,
    start_cluster,
    start_redis,
)
from tests.conftest import _drop_db, _fresh_db, _with_database, free_port
from tests.fixtures_microsoft import connection
from tests.reliability.conftest import add_events, assert_accounted, assert_sent_once, calls

PROJECT = Path(__file__).resolve().parents[2]
DAG = "msads_upload_conversions"
APPLY = "ApplyOfflineConversions"
PART = 400  # conversions per upload part: a backlog of 2 x PART is uploaded in two parts
HEARTBEAT_TIMEOUT = 30  # seconds without a heartbeat before the scheduler fails a task


def _broker(components: Components, tmp: Path) -> tuple[str, str | None]:
    """A Redis of the test's own when ``redis-server`` is there (nothing else sees its queue);
    else the machine's, with a queue of the test's own. (broker URL, queue or None)."""
    if shutil.which("redis-server"):
        return start_redis(components, tmp / "redis"), None
    if redis_answers(*MACHINE_REDIS):
        return "redis://{}:{}/0".format(*MACHINE_REDIS), f"msads-test-{uuid.uuid4().hex[:8]}"
    pytest.skip("the Celery tests need Redis: install redis-server (sudo apt-get install "
                "redis-server) or run one on 127.0.0.1:6379")


class Api:
    """Airflow's REST API as the admin user."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.token = ""

    def call(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        req = urllib.request.Request(
            f"{self.base}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json",
                     **({"Authorization": f"Bearer {self.token}"} if self.token else {})})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def wait_until_healthy(self, components: Components, timeout: float = 240) -> None:
        deadline, health = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            assert not components.exited(), _logs(components, components.exited())
            try:
                health = self.call("/api/v2/monitor/health")
                if all(v.get("status") == "healthy" for v in health.values()):
                    self.token = self.call("/auth/token", "POST", {
                        "username": "admin", "password": "admin"})["access_token"]
                    return
            except OSError:
                pass
            time.sleep(2)
        raise AssertionError(f"Airflow did not become healthy: {health}\n"
                             + _logs(components, components.procs))

    def unpause(self, dag_id: str, timeout: float = 180) -> None:
        """Unpause once the dag-processor has parsed the DAG."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call(f"/api/v2/dags/{dag_id}", "PATCH", {"is_paused": False})
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(2)


def _logs(components: Components, names) -> str:
    out = []
    for name in names:
        path = components.log(name)
        if path and path.exists():
            out.append(f"--- {name}.log ---\n" + path.read_text()[-2500:])
    return "\n".join(out)


def _wait(predicate, timeout: float, what: str, components: Components, poll: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                         + _logs(components, ("scheduler", *[n for n in components.procs
                                                             if "worker" in n])))


def _uploaded(s, events: list[str]):
    def check() -> bool:
        try:
            return assert_accounted(s, events) == {"uploaded": len(events)}
        except AssertionError:  # not every event has its outcome yet
            return False
    return check


def _metadata(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


UPLOADS = ("SELECT run_id, map_index, try_number, hostname, state FROM task_instance "
           "WHERE dag_id = %s AND task_id = 'upload_conversions' AND map_index >= 0")
TRIES = ("SELECT try_number, hostname, state FROM task_instance_history WHERE dag_id = %s "
         "AND task_id = 'upload_conversions' AND run_id = %s AND map_index = %s "
         "UNION ALL SELECT try_number, hostname, state FROM task_instance WHERE dag_id = %s "
         "AND task_id = 'upload_conversions' AND run_id = %s AND map_index = %s ORDER BY 1")


def drill_report(s) -> dict[str, int]:
    """What Microsoft (the emulator) received: conversions sent in all upload calls, the distinct
    ones it accepted, and the resends, each absorbed by its dedupe or not."""
    sent = sum(len(json.loads(r["body"])["OfflineConversions"])
               for r in s.emu.admin.requests(operation=APPLY) if r["body"])
    accepted = len(s.emu.admin.conversions())
    absorbed = len(s.emu.admin.duplicates())
    return {"calls": len(calls(s)), "sent": sent, "accepted": accepted,
            "resent": sent - accepted, "absorbed_by_dedupe": absorbed}


def test_the_visibility_timeout_is_above_every_dag_timeout():
    from airflow.dag_processing.dagbag import DagBag

    dags = DagBag(dag_folder=str(PROJECT / "dags")).dags
    limits = [d.dagrun_timeout for d in dags.values() if d.dagrun_timeout] + [
        t.execution_timeout for d in dags.values() for t in d.tasks if t.execution_timeout]
    assert limits and max(limits).total_seconds() < VISIBILITY_TIMEOUT_SECONDS


@pytest.mark.slow
@pytest.mark.airflow
def test_two_celery_workers_upload_once_survive_a_killed_worker_and_a_scheduler_restart(
        shop, pg_server_url, tmp_path, capsys):
    s = shop

    def say(line: str) -> None:  # past the msads fixture's capture, into the test's output
        with capsys.disabled():
            print(line, flush=True)

    components = Components(tmp_path / "logs")
    metadata_db = _fresh_db(pg_server_url, None)
    metadata = _with_database(pg_server_url, metadata_db)
    tag = uuid.uuid4().hex[:6]
    workers = (f"w1-{tag}", f"w2-{tag}")
    started = time.monotonic()
    try:
        broker, queue = _broker(components, tmp_path)
        port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        base.update({
            "PYTHONPATH": str(PROJECT), "MSADS_WAREHOUSE_URL": s.warehouse.url,
            "AIRFLOW_CONN_MSADS_DEFAULT": json.dumps(connection(s.emu, s.tenant)),
            # a backlog of 2 x PART goes in two parts, one per worker (one task slot each)
            "MSADS_UPLOAD_PROCESSES": "2", "MSADS_PART_MIN_CONVERSIONS": str(PART),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            **({"AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue} if queue else {}),
        })
        env = celery_env(airflow_env(tmp_path / "airflow", port, base=base), broker=broker,
                         database=metadata)
        start_cluster(components, env, workers=workers, concurrency=1)
        api = Api(f"http://127.0.0.1:{port}")
        api.wait_until_healthy(components)
        api.unpause(DAG)
        say(f"cluster up in {time.monotonic() - started:.0f} s")

        # 1. A backlog in two parts, uploaded by mapped tasks on both workers, each once. The
        # parts are queued when the claim task reports success, but its worker is busy until
        # Airflow's task supervisor notices the task's process has ended, up to its 5 s poll
        # later: each part's call is held longer than that, so the first part's worker is still
        # busy when the claim's worker is free for the second.
        s.emu.admin.add_fault("delay", delay_seconds=8, operation=APPLY, count=2)
        first = add_events(s, 2 * PART)
        _wait(_uploaded(s, first), 240, "the first backlog to be uploaded", components)

        def hosts_of_uploads() -> set[str]:
            return {host for *_x, host, state in _metadata(metadata, UPLOADS, (DAG,))
                    if state == "success"}

        # the ledger is complete before the last task has ended
        _wait(lambda: hosts_of_uploads() == set(workers), 60, "mapped uploads on both workers",
              components)
        assert_sent_once(s, resends_allowed=False)
        assert len(s.emu.admin.conversions()) == 2 * PART
        say(f"act 1 (both workers) done at {time.monotonic() - started:.0f} s")

        # 2. A worker killed mid-upload: its task is retried on the other worker.
        second = add_events(s, 2 * PART)
        s.emu.admin.add_fault("delay", delay_seconds=15, operation=APPLY, count=2)

        def running_upload():
            if len(calls(s, finished=False)) < 2:  # both parts' calls are in flight
                return None
            rows = [r for r in _metadata(metadata, UPLOADS, (DAG,))
                    if r[4] == "running" and r[3] in workers]
            return rows[0] if rows else None

        run_id, map_index, _try, victim, _state = _wait(
            running_upload, 180, "an upload in flight", components, poll=0.5)
        components.kill(victim)
        survivor = next(w for w in workers if w != victim)
        _wait(_uploaded(s, first + second), 300, "the upload after the kill", components)

        def tries():
            return _metadata(metadata, TRIES, (DAG, run_id, map_index, DAG, run_id, map_index))

        _wait(lambda: tries()[-1][2] == "success", 60, "the retry to end", components)
        assert tries()[0][1] == victim and tries()[-1][1:] == (survivor, "success"), tries()
        assert_accounted(s, first + second)
        duplicates = assert_sent_once(s, resends_allowed=True)
        report = drill_report(s)
        say("drill report (worker killed mid-upload): "
              + ", ".join(f"{k} {v}" for k, v in report.items()))
        assert report["accepted"] == 4 * PART
        assert report["resent"] == report["absorbed_by_dedupe"] == len(duplicates)
        assert 0 < report["resent"] <= PART + 1  # at most the killed part, and only it
        say(f"act 2 (killed worker) done at {time.monotonic() - started:.0f} s")

        # 3. The scheduler restarts during a run; the run completes.
        third = add_events(s, PART)
        s.emu.admin.add_fault("delay", delay_seconds=10, operation=APPLY, count=1)

        def run_in_flight():
            if not calls(s, finished=False):
                return None
            rows = _metadata(metadata, "SELECT run_id FROM dag_run WHERE dag_id = %s AND "
                                       "state = 'running'", (DAG,))
            return rows[0][0] if rows else None

        running = _wait(run_in_flight, 180, "a run with an upload in flight", components,
                        poll=0.5)
        components.restart("scheduler")

        def run_state():
            (state,), = _metadata(metadata, "SELECT state FROM dag_run WHERE dag_id = %s AND "
                                            "run_id = %s", (DAG, running))
            return state if state in ("success", "failed") else None

        assert _wait(run_state, 240, "the run to finish after the restart",
                     components) == "success"
        _wait(_uploaded(s, first + second + third), 120, "the third backlog", components)
        assert_sent_once(s, resends_allowed=True)
        assert len(s.emu.admin.duplicates()) == len(duplicates)  # no resend in act 3
        say(f"act 3 (scheduler restart) done at {time.monotonic() - started:.0f} s")
        hosts = Counter(host for *_x, host, state in _metadata(metadata, UPLOADS, (DAG,))
                        if state == "success")
        say(f"mapped uploads per worker: {dict(hosts)}")
    finally:
        components.stop_all()
        _drop_db(pg_server_url, metadata_db)
