"""A new event's conversion waits in the outbox alone and gets its ledger row once, when it is
decided (migration 0017). Everyone who reads pending work still sees it waiting."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from include.msads_capi import ledger
from include.msads_capi.explain import explain, render
from include.msads_capi.health import outcome_counts
from include.msads_capi.pipeline.claim import claim
from include.msads_capi.pipeline.hashing import hash_stage
from include.msads_capi.pipeline.plan import plan
from include.msads_capi.pipeline.summary import summarize
from include.msads_capi.settings import PipelineConfig
from include.msads_capi.warehouse import transaction


def _plan(s, run_id: str) -> None:
    config = PipelineConfig()
    claim(s.warehouse, run_id, s.now(), config)
    plan(s.warehouse, run_id, s.now(), config)
    hash_stage(s.warehouse, run_id, s.now(), config)


def _ledger_rows(s, event_id: str) -> list[tuple]:
    with psycopg.connect(s.warehouse.url) as conn:
        return conn.execute(
            "SELECT status, reason, space_id, event_name, conversion_name, run_id, "
            "first_seen_at FROM msads.results WHERE event_id = %s", (event_id,)).fetchall()


def test_a_planned_conversion_is_pending_to_every_reader_before_it_has_a_ledger_row(shop):
    s = shop
    event = s.event()
    _plan(s, "planned")
    assert _ledger_rows(s, event) == []  # nothing in the ledger yet...
    assert s.outcomes(event) == [(event, s.purchase_goal, "pending", "ready")]  # ...yet pending
    with transaction(s.warehouse) as conn:
        text = render(explain(conn, event))
        counts = outcome_counts(conn, s.now())
    assert "waits for the next upload" in text
    assert [(c["status"], c["reason"], c["week"]) for c in counts] == [("pending", "ready", 1)]
    summary = summarize(s.warehouse, "planned")
    assert summary["pending"] == 1 and summary["outcomes"] == {"ready": 1}


def test_the_upload_writes_the_ledger_row_once_with_what_was_planned(shop):
    s = shop
    event = s.event()
    _plan(s, "first")
    with psycopg.connect(s.warehouse.url) as conn:
        (planned_at,) = conn.execute("SELECT first_seen_at FROM msads.outbox WHERE event_id = %s",
                                     (event,)).fetchone()
    s.emu.admin.advance(90)  # the upload comes later than the plan
    summary = s.run("first")
    assert summary["outcomes"] == {"uploaded": 1}
    [(status, reason, space, name, goal_name, run_id, first_seen)] = _ledger_rows(s, event)
    assert (status, reason, space, name, run_id) == ("uploaded", "uploaded", "shop", "Purchase",
                                                     "first")
    assert goal_name and first_seen == planned_at < s.now()  # carried over from the outbox
    assert len(s.emu.admin.conversions()) == 1


def test_recording_a_new_conversion_inserts_its_ledger_row_and_updates_none(warehouse):
    """One write of the ledger per new conversion: an insert, no update of a pending row."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    with transaction(warehouse) as conn:
        conn.execute("INSERT INTO msads.outbox (event_id, account_id, goal_id, customer_id, "
                     "run_id, conversion_name, conversion_time, hashed, space_id, event_name, "
                     "claimed_at, first_seen_at) SELECT 'e' || i, 1, 2, 3, 'r', 'Goal', "
                     "now(), true, 'shop', 'Purchase', %s, %s FROM generate_series(1, 300) i",
                     (now, now - timedelta(minutes=5)))
    rows = [ledger.Answered(f"e{i}", 1, 2, "uploaded", "uploaded", None, None, None, None, "t",
                            None, now, True, False, False, None, 1) for i in range(1, 301)]
    with transaction(warehouse) as conn:
        ledger.record(conn, "upload", rows)
        inserted, updated = conn.execute(
            "SELECT pg_stat_get_xact_tuples_inserted(c.oid), "
            "pg_stat_get_xact_tuples_updated(c.oid) FROM pg_class c "
            "WHERE c.oid = 'msads.results'::regclass").fetchone()
        left = conn.execute("SELECT count(*) FROM msads.outbox").fetchone()[0]
        carried = conn.execute("SELECT DISTINCT space_id, event_name, conversion_name, run_id, "
                               "first_seen_at FROM msads.results").fetchall()
    assert (inserted, updated, left) == (300, 0, 0)
    assert carried == [("shop", "Purchase", "Goal", "r", now - timedelta(minutes=5))]


def test_the_sweep_leaves_alone_what_waits_in_the_outbox(shop):
    """The overlap sweep claims events no run took; one waiting in the outbox was taken."""
    s = shop
    events = [s.event() for _ in range(3)]
    _plan(s, "planned")
    config = PipelineConfig(sweep_every=timedelta(0))
    taken = claim(s.warehouse, "sweeping", s.now(), config)
    assert (taken.late, taken.due) == (0, 0)
    s.run("planned")
    assert [s.reason(e) for e in events] == [["uploaded"]] * 3
    assert s.emu.admin.duplicates() == []
