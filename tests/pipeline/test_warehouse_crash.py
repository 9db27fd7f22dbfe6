"""A warehouse crash between planning and upload: the outbox is written to PostgreSQL's
write-ahead log (migration 0017), because a new event's conversion waits there with no ledger
row. Nothing is lost and nothing is rejected: the planned conversions are still there after the
crash, and the next run takes over those of the dead run once the lease has passed.

These tests crash a PostgreSQL server of their own (an immediate shutdown, which makes the next
start recover as after a power cut), never the one the other tests share.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from include.msads_capi import migrations
from include.msads_capi.pipeline.claim import claim
from include.msads_capi.pipeline.hashing import hash_stage
from include.msads_capi.pipeline.plan import plan
from include.msads_capi.settings import PipelineConfig
from include.msads_capi.warehouse import EmbeddedWarehouse, Warehouse


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> EmbeddedWarehouse:
    embedded = EmbeddedWarehouse(Path(tmp_path_factory.mktemp("crashing")) / "warehouse")
    embedded.start()
    yield embedded
    embedded.stop()


@pytest.fixture
def warehouse(server, monkeypatch) -> Warehouse:
    """Overrides the shared warehouse: a migrated database on this module's own server."""
    url = server.start(f"crash_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("MSADS_WAREHOUSE_URL", url)
    warehouse = Warehouse(url, "MSADS_WAREHOUSE_URL")
    migrations.migrate(warehouse)
    return warehouse


def crash(server: EmbeddedWarehouse) -> None:
    """An immediate shutdown (``pg_ctl stop -m immediate``): no checkpoint, so the next start
    replays the log as after a crash; then start again."""
    pid = server._postmaster().pid
    os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + 60
    while server._postmaster() is not None:
        assert time.monotonic() < deadline, "PostgreSQL did not stop"
        time.sleep(0.1)
    server.start()


def _outbox(warehouse: Warehouse) -> int:
    with psycopg.connect(warehouse.url) as conn:
        return conn.execute("SELECT count(*) FROM msads.outbox_pending").fetchone()[0]


def test_a_crash_after_planning_loses_nothing_and_sends_everything_after_the_lease(
        shop, server):
    s = shop
    events = [s.event() for _ in range(6)] + [s.event(msclkid=None, email="A.Person@Example.com")]
    config = PipelineConfig()
    claim(s.warehouse, "crashed", s.now(), config)
    plan(s.warehouse, "crashed", s.now(), config)
    hash_stage(s.warehouse, "crashed", s.now(), config)
    assert _outbox(s.warehouse) == 7

    crash(server)

    assert _outbox(s.warehouse) == 7  # the outbox is kept over a crash
    assert [s.reason(e) for e in events] == [["ready"]] * 7
    s.run("too-soon")  # within the lease the dead run's claims stay where they are
    assert [s.reason(e) for e in events] == [["ready"]] * 7
    assert s.emu.admin.conversions() == []
    s.emu.admin.advance(11 * 60)
    s.run("after-lease")
    assert [s.reason(e) for e in events] == [["uploaded"]] * 7
    assert len(s.emu.admin.conversions()) == 7 and s.emu.admin.duplicates() == []


def test_a_clean_restart_keeps_the_outbox(shop, server):
    s = shop
    events = [s.event() for _ in range(3)]
    config = PipelineConfig()
    claim(s.warehouse, "before-restart", s.now(), config)
    plan(s.warehouse, "before-restart", s.now(), config)
    server.stop()
    server.start()
    assert _outbox(s.warehouse) == 3
    hash_stage(s.warehouse, "before-restart", s.now(), config)
    s.run("before-restart")  # the task re-run after the restart: same run, nothing re-planned
    assert [s.reason(e) for e in events] == [["uploaded"]] * 3
