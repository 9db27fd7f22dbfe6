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
        (planned_at,) = conn.execute(
            "SELECT first_seen_at FROM msads.outbox_pending WHERE event_id = %s", (event,)).fetchone()
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


def test_an_accepted_conversion_is_recorded_alike_with_or_without_staging(warehouse):
    """``ledger.record_uploaded`` (arrays, no staging table) writes what ``ledger.record`` writes
    for an accepted conversion: for a new event's, and for one planned again after a failed call
    (whose failure is cleared); a conversion whose outbox row is gone is handed back."""
    from datetime import UTC, datetime

    from include.msads_capi.outcomes import UPLOADED
    from include.msads_capi.pipeline.upload import _decided
    from include.msads_capi.sql import query

    now = datetime.now(UTC).replace(microsecond=0)
    seen = now - timedelta(hours=3)
    with transaction(warehouse) as conn:
        for event_id, attempts in (("new-1", 0), ("new-2", 0), ("again-1", 1), ("again-2", 1),
                                   ("gone", 0)):
            conn.execute(
                "INSERT INTO msads.outbox (event_id, account_id, goal_id, customer_id, run_id, "
                "conversion_name, conversion_time, conversion_value, currency_code, click_id, "
                "email_sha256, hashed, space_id, event_name, claimed_at, first_seen_at, "
                "attempts) VALUES (%s, 1, 2, 3, 'r', 'Goal', %s, 9.5, 'USD', NULL, %s, true, "
                "'shop', 'Purchase', %s, %s, %s)",
                (event_id, now - timedelta(hours=1), "ab" * 32, now - timedelta(minutes=1),
                 seen, attempts))
            if attempts:
                conn.execute(
                    "INSERT INTO msads.results (event_id, account_id, goal_id, status, reason, "
                    "detail, ms_code, ms_message, next_attempt_at, attempts, run_id, "
                    "first_seen_at) VALUES (%s, 1, 2, 'pending', 'ready', 'attempt 1 failed', "
                    "0, 'busy', %s, 1, 'r', %s)", (event_id, now, seen))
        rows = {r[0]: ledger.OutboxRow._make(r) for r in conn.execute(
            query("upload_batch").replace("{part}", ""),
            {"a": 1, "run": "r", "e": "", "g": 0, "n": 10}).fetchall()}
        conn.execute("DELETE FROM msads.outbox WHERE event_id = 'gone'")
    with transaction(warehouse) as conn:
        ledger.record(conn, "upload", [_decided(rows[e], "uploaded", UPLOADED, tracking="t",
                                                decided_at=now) for e in ("new-1", "again-1")])
        left = ledger.record_uploaded(conn, [rows[e] for e in ("new-2", "again-2", "gone")],
                                      "t", now)
        ledger_rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT event_id, to_jsonb(r) - 'event_id' - 'updated_at' FROM msads.results r")}
        outbox = conn.execute("SELECT count(*) FROM msads.outbox").fetchone()[0]
    assert left == [rows["gone"]] and "gone" not in ledger_rows and outbox == 0
    assert ledger_rows["new-2"] == ledger_rows["new-1"]
    assert ledger_rows["again-2"] == ledger_rows["again-1"]
    new, again = ledger_rows["new-2"][0], ledger_rows["again-2"][0]
    assert (new["status"], new["attempts"], new["sent_email"], new["space_id"]) == (
        "uploaded", 1, True, "shop")
    assert (again["attempts"], again["detail"], again["ms_code"]) == (2, None, None)


def test_a_new_events_conversion_with_a_ledger_row_after_all_is_still_recorded(warehouse):
    """A call of new events only is recorded without the conflict check (its conversions have
    no ledger row yet); should one have a row after all, the call is recorded with the check,
    that row takes the decision, and the transaction it ran in goes on."""
    from datetime import UTC, datetime

    from include.msads_capi.sql import query

    now = datetime.now(UTC).replace(microsecond=0)
    planned = now - timedelta(minutes=1)
    with transaction(warehouse) as conn:
        for event_id in ("fresh-1", "fresh-2", "known"):
            conn.execute(
                "INSERT INTO msads.outbox (event_id, account_id, goal_id, customer_id, run_id, "
                "conversion_name, conversion_time, conversion_value, currency_code, click_id, "
                "hashed, space_id, event_name, claimed_at, first_seen_at, attempts) VALUES "
                "(%s, 1, 2, 3, 'r', 'Goal', %s, 9.5, 'USD', 'clk', true, 'shop', 'Purchase', "
                "%s, %s, 0)", (event_id, now - timedelta(hours=1), planned, planned))
        conn.execute("INSERT INTO msads.results (event_id, account_id, goal_id, status, reason, "
                     "detail, run_id, first_seen_at) VALUES ('known', 1, 2, 'pending', "
                     "'ready', 'was here', 'r', %s)", (planned,))
        rows = {r[0]: ledger.OutboxRow._make(r) for r in conn.execute(
            query("upload_batch").replace("{part}", ""),
            {"a": 1, "run": "r", "e": "", "g": 0, "n": 10}).fetchall()}
    assert all(row.unrecorded for row in rows.values())
    with transaction(warehouse) as conn:
        assert ledger.record_uploaded(conn, [rows["fresh-1"]], "t1", now) == []
        assert ledger.record_uploaded(conn, [rows["fresh-2"], rows["known"]], "t2", now) == []
        recorded = dict(conn.execute("SELECT event_id, (status, reason, detail, tracking_id, "
                                     "attempts)::text FROM msads.results"))
        left = conn.execute("SELECT count(*) FROM msads.outbox").fetchone()[0]
    assert recorded == {"fresh-1": "(uploaded,uploaded,,t1,1)",
                        "fresh-2": "(uploaded,uploaded,,t2,1)",
                        "known": "(uploaded,uploaded,,t2,1)"}
    assert left == 0
