"""The upload DAG starts on new rows (asset watcher) and every minute (backstop); the watcher's
trigger fires once per pick-up cursor position, against a real warehouse."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from include.msads_capi import settings
from include.msads_capi.hooks.watcher import NewRowsTrigger
from include.msads_capi.pipeline.pickup import ADJUSTMENTS, EVENTS, pick_up
from include.msads_capi.pipeline.plan import plan
from include.msads_capi.warehouse import Warehouse

POLL = 0.05  # seconds between probes in these tests
QUIET = 0.5  # long enough for several probes


def test_the_upload_dag_runs_on_new_rows_or_every_minute(dagbag):
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    schedule = dagbag.dags["msads_upload_conversions"].timetable
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert schedule.timetable == CronTriggerTimetable("* * * * *", timezone="UTC")
    [watcher] = schedule.asset_condition.watchers
    assert isinstance(watcher.trigger, NewRowsTrigger)
    classpath, kwargs = watcher.trigger.serialize()
    assert NewRowsTrigger(**kwargs).serialize() == (classpath, kwargs)  # as the triggerer does
    assert classpath == "include.msads_capi.hooks.watcher.NewRowsTrigger"


def test_the_serialized_dag_keeps_both_the_watcher_and_the_backstop(dagbag):
    """What the scheduler and the triggerer read: the DAG as the dag-processor stores it."""
    from airflow.serialization.serialized_objects import DagSerialization

    stored = DagSerialization.from_dict(
        DagSerialization.to_dict(dagbag.dags["msads_upload_conversions"]))
    assert stored.timetable.summary == "Asset or * * * * *"
    assert stored.max_active_runs == 1


class Watch:
    """The trigger's ``run()`` in the background, collecting what it fires."""

    def __init__(self, trigger: NewRowsTrigger) -> None:
        self.events: list = []
        self._task = asyncio.create_task(self._consume(trigger))

    async def _consume(self, trigger: NewRowsTrigger) -> None:
        async for event in trigger.run():
            self.events.append(event.payload)

    async def fired(self, n: int, within: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while len(self.events) < n:
            assert not self._task.done(), self._task.exception()
            assert asyncio.get_running_loop().time() < deadline, f"fired {self.events}"
            await asyncio.sleep(POLL)

    async def stop(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


def _insert_event(warehouse: Warehouse) -> str:
    event_id = f"w-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        conn.execute("INSERT INTO conversion_events (event_id, space_id, event_name, event_time) "
                     "VALUES (%s, 'shop', 'Purchase', now())", (event_id,))
    return event_id


def _insert_adjustment(warehouse: Warehouse) -> None:
    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        conn.execute("INSERT INTO conversion_adjustments (adjustment_id, event_id, "
                     "adjustment_type, adjusted_at) VALUES (%s, 'e-1', 'retract', now())",
                     (f"a-{uuid.uuid4().hex[:8]}",))


def _claim(warehouse: Warehouse, run_id: str, source=EVENTS) -> None:
    """What a run's first task does to the cursor: new events are taken while planning
    (include/msads_capi/pipeline/plan.py), new adjustments by the claim (pickup.py)."""
    now, config = datetime.now(UTC), settings.pipeline_config()
    if source is EVENTS:
        plan(warehouse, run_id, now, config)
    else:
        pick_up(warehouse, source, run_id, now, config)


def test_the_watcher_fires_once_per_cursor_position(warehouse):
    async def scenario() -> None:
        watch = Watch(NewRowsTrigger(poll_seconds=POLL))
        try:
            await asyncio.sleep(QUIET)
            assert watch.events == []  # nothing waits: nothing fires
            _insert_event(warehouse)
            await watch.fired(1)
            assert watch.events[0]["events_cursor"] == [None, None]  # no run has claimed yet
            second = _insert_event(warehouse)  # more rows before any run claimed: no 2nd start
            await asyncio.sleep(QUIET)
            assert len(watch.events) == 1
            _claim(warehouse, "run-1")  # the cursor moves past both rows; nothing waits
            await asyncio.sleep(QUIET)
            assert len(watch.events) == 1
            _insert_event(warehouse)  # a new row beyond the new cursor position
            await watch.fired(2)
            assert watch.events[1]["events_cursor"][1] == second  # where run-1 left it
            await asyncio.sleep(QUIET)
            assert len(watch.events) == 2
        finally:
            await watch.stop()

    asyncio.run(scenario())


def test_the_watcher_fires_for_new_adjustments_too(warehouse):
    async def scenario() -> None:
        _insert_event(warehouse)
        _claim(warehouse, "run-1")
        watch = Watch(NewRowsTrigger(poll_seconds=POLL))
        try:
            await asyncio.sleep(QUIET)
            assert watch.events == []
            _insert_adjustment(warehouse)
            await watch.fired(1)
            _claim(warehouse, "run-2", ADJUSTMENTS)
            await asyncio.sleep(QUIET)
            assert len(watch.events) == 1
        finally:
            await watch.stop()

    asyncio.run(scenario())


def test_the_watcher_outlives_an_unreachable_warehouse(warehouse, monkeypatch):
    """A warehouse that is down (or not configured yet) is retried, never a dead trigger."""
    monkeypatch.setenv("MSADS_WAREHOUSE_URL", "postgresql://nobody@127.0.0.1:9/none")
    _insert_event(warehouse)

    async def scenario() -> None:
        watch = Watch(NewRowsTrigger(poll_seconds=POLL))
        try:
            await asyncio.sleep(QUIET)
            assert watch.events == []
            monkeypatch.setenv("MSADS_WAREHOUSE_URL", warehouse.url)  # back up
            await watch.fired(1, within=10)
        finally:
            await watch.stop()

    asyncio.run(scenario())


def test_the_watcher_finds_the_warehouse_as_the_tasks_do(warehouse, monkeypatch):
    """Through warehouse_default (here make run's: the embedded PostgreSQL, asked for), resolved
    off the triggerer's event loop."""
    import threading

    from include.msads_capi import warehouse as wh

    threads = []

    def start(self, database: str = wh.EMBEDDED_DB) -> str:
        threads.append(threading.current_thread())
        return warehouse.url

    monkeypatch.setattr(wh.EmbeddedWarehouse, "start", start)
    monkeypatch.delenv("MSADS_WAREHOUSE_URL")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps(
        {"conn_type": "postgres", "host": "", "extra": {"embedded": True}}))
    _insert_event(warehouse)

    async def scenario() -> None:
        watch = Watch(NewRowsTrigger(poll_seconds=POLL))
        try:
            await watch.fired(1)
        finally:
            await watch.stop()

    asyncio.run(scenario())
    assert threads and threading.main_thread() not in threads


def test_the_probe_reads_only_the_index(warehouse):
    """The watcher's question stays cheap however big the events table grows."""
    from include.msads_capi.sql import query

    with psycopg.connect(warehouse.url, autocommit=True) as conn:
        conn.execute("INSERT INTO conversion_events (event_id, space_id, event_name, event_time, "
                     "ingested_at) SELECT 'p-' || i, 'shop', 'Purchase', now(), %s + i * "
                     "interval '1 second' FROM generate_series(1, 5000) i",
                     (datetime.now(UTC) - timedelta(days=1),))
        conn.execute("VACUUM ANALYZE conversion_events")
        _claim(warehouse, "run-1")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query("watch_new_rows")))
    assert "Index Only Scan using conversion_events_ingested_at_idx" in plan, plan
    assert "Seq Scan on conversion_events" not in plan, plan
