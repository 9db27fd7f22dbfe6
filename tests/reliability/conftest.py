"""Fault drills: the shop, bulk events, a pipeline in a child process, and the closing checks.

Every drill ends with the same two questions a user asks: does every event have exactly one
terminal outcome per goal (or wait, pending, with a next attempt)? And did Microsoft receive
each conversion once, apart from resends its own dedupe keys absorbed (listed by the
emulator's ``duplicates``)?
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from tests.fixtures_microsoft import connection
from tests.fixtures_pipeline import Shop, emu_now

PROJECT = Path(__file__).resolve().parents[2]
TERMINAL = {"uploaded", "rejected", "skipped", "failed"}
WAITING = {"pending", "deferred"}


def add_events(s: Shop, n: int, *, name: str = "Purchase", hours_ago: float = 1.0) -> list[str]:
    """Insert ``n`` valid events with click ids the emulator issued; returns their ids."""
    clicks = s.emu.admin.issue_clicks(s.tenant.account_id, n,
                                      click_time={"ago": (hours_ago + 2) * 3600})
    prefix = uuid.uuid4().hex[:8]
    when = s.now() - timedelta(hours=hours_ago)
    ids = [f"{prefix}-{i:06d}" for i in range(n)]
    with psycopg.connect(s.warehouse.url) as conn, conn.cursor().copy(
            "COPY conversion_events (event_id, space_id, event_name, event_time, value, msclkid, "
            "attributed_platform) FROM STDIN") as copy:
        for event_id, click in zip(ids, clicks, strict=True):
            copy.write_row((event_id, "shop", name, when, 25, click, "microsoft"))
    return ids


def click_of(s: Shop, event_id: str) -> str:
    """The click id an event carries (to aim an emulator fault at its item)."""
    with psycopg.connect(s.warehouse.url) as conn:
        return conn.execute("SELECT msclkid FROM conversion_events WHERE event_id = %s",
                            (event_id,)).fetchone()[0]


def ledger(s: Shop, event_ids: list[str]) -> dict[str, list[tuple]]:
    """(account, goal, status, reason, next_attempt_at) rows per event, as analysts read them
    (with the conversions waiting in the outbox, which have no ledger row yet)."""
    out: dict[str, list[tuple]] = defaultdict(list)
    with psycopg.connect(s.warehouse.url) as conn:
        for row in conn.execute(
                "SELECT event_id, account_id, goal_id, status, reason, next_attempt_at "
                "FROM msads.event_outcomes WHERE event_id = ANY(%s)", (event_ids,)):
            out[row[0]].append(row[1:])
    return out


def assert_accounted(s: Shop, event_ids: list[str]) -> dict[str, int]:
    """Every event: one row per goal, each terminal or waiting with a next attempt.

    Returns how many rows ended in each status.
    """
    rows = ledger(s, event_ids)
    missing = [e for e in event_ids if e not in rows]
    assert not missing, f"{len(missing)} event(s) have no outcome, e.g. {missing[:3]}"
    statuses: dict[str, int] = defaultdict(int)
    for event_id, outcomes in rows.items():
        goals = [(a, g) for a, g, *_ in outcomes]
        assert len(goals) == len(set(goals)), (event_id, outcomes)
        if (0, 0) in goals:  # an event-level outcome stands alone and is final
            assert len(outcomes) == 1 and outcomes[0][2] in TERMINAL, (event_id, outcomes)
        for _a, _g, status, reason, next_at in outcomes:
            assert status in TERMINAL or (status in WAITING and next_at is not None), (
                event_id, status, reason, next_at)
            statuses[status] += 1
    return dict(statuses)


def assert_sent_once(s: Shop, *, resends_allowed: bool) -> list[dict]:
    """Microsoft holds each uploaded conversion once; resends only as absorbed duplicates."""
    received = s.emu.admin.conversions()
    keys = [(c["goal_id"], c["click_id"] or (c["hashed_email"], c["hashed_phone"]),
             c["conversion_time"]) for c in received]
    assert len(keys) == len(set(keys))
    with psycopg.connect(s.warehouse.url) as conn:
        (uploaded,) = conn.execute(
            "SELECT count(*) FROM msads.results WHERE status = 'uploaded'").fetchone()
    assert uploaded == len(received)
    duplicates = s.emu.admin.duplicates()
    ids = {c["id"] for c in received}
    assert all(d["original_id"] in ids for d in duplicates)
    if not resends_allowed:
        assert duplicates == []
    return duplicates


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def calls(s: Shop, *, finished: bool | None = None) -> list[dict]:
    """ApplyOfflineConversions requests the emulator has seen (optionally only finished ones)."""
    seen = s.emu.admin.requests(operation="ApplyOfflineConversions", bodies=False)
    if finished is None:
        return seen
    return [r for r in seen if (r["status"] is not None) == finished]


class Pipeline:
    """``run_once`` in a child process, as a scheduler's worker would run it."""

    def __init__(self, s: Shop) -> None:
        self.shop = s
        env = dict(os.environ)
        env.update({
            "MSADS_WAREHOUSE_URL": s.warehouse.url,
            "AIRFLOW_CONN_MSADS_DEFAULT": json.dumps(connection(s.emu, s.tenant)),
            "MSADS_EMULATOR_ADMIN": s.emu.admin_url,
            "PYTHONPATH": str(PROJECT),
        })
        self.env = env

    def start(self, run_id: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.worker", run_id, *args], cwd=PROJECT,
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def pipeline(shop) -> Pipeline:
    return Pipeline(shop)


__all__ = ["add_events", "assert_accounted", "assert_sent_once", "calls", "emu_now", "ledger",
           "wait_for"]
