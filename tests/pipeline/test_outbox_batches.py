"""New events' conversions wait in batches (0019_outbox_batches.sql): a call's worth a row, sent
and recorded whole. Anything else turns a batch into outbox rows, and each conversion still
gets its own outcome."""

from __future__ import annotations

import psycopg

from include.msads_capi.pipeline.claim import claim
from include.msads_capi.pipeline.plan import plan
from include.msads_capi.settings import PipelineConfig
from tests.reliability.conftest import add_events, assert_accounted, calls, click_of

APPLY = "ApplyOfflineConversions"


def _waiting(s) -> tuple[list[int], int, int]:
    """(conversions per batch, outbox rows, conversions pending in the outbox view)."""
    with psycopg.connect(s.warehouse.url) as conn:
        batches = conn.execute("SELECT conversions FROM msads.outbox_batches "
                               "ORDER BY batch_id").fetchall()
        rows = conn.execute("SELECT count(*) FROM msads.outbox").fetchone()[0]
        pending = conn.execute("SELECT count(*) FROM msads.outbox_pending").fetchone()[0]
    return [n for (n,) in batches], rows, pending


def test_new_events_wait_in_batches_of_a_call_and_each_shows_as_pending(shop):
    s = shop
    events = add_events(s, 2_500)
    config = PipelineConfig()
    claim(s.warehouse, "planned", s.now(), config)
    plan(s.warehouse, "planned", s.now(), config)
    assert _waiting(s) == ([1_000, 1_000, 500], 0, 2_500)
    assert s.reason(events[1_234]) == ["ready"]  # msads.event_outcomes, as before
    summary = s.run("planned")  # the run's upload
    assert summary["outcomes"] == {"uploaded": 2_500}
    assert _waiting(s) == ([], 0, 0)
    assert len(calls(s)) == 3 and len(s.emu.admin.conversions()) == 2_500
    with psycopg.connect(s.warehouse.url) as conn:
        carried = conn.execute("SELECT DISTINCT space_id, event_name, run_id, attempts, "
                               "sent_click_id, sent_ref IS NOT NULL FROM msads.results").fetchall()
    assert carried == [("shop", "Purchase", "planned", 1, True, True)]


def test_a_conversion_refused_in_a_batch_gets_its_outcome_and_the_rest_are_uploaded(shop):
    s = shop
    events = add_events(s, 10)
    s.emu.admin.add_fault("batch_error", operation=APPLY, code=5604,
                          body_contains=click_of(s, events[3]), count=1)
    s.run("refused")
    assert assert_accounted(s, events) == {"uploaded": 9, "rejected": 1}
    assert s.reason(events[3]) == ["rejected:OfflineConversionMicrosoftClickIdInvalid"]
    with psycopg.connect(s.warehouse.url) as conn:
        refused = conn.execute("SELECT space_id, event_name, run_id, attempts FROM msads.results "
                               "WHERE event_id = %s", (events[3],)).fetchone()
    assert refused == ("shop", "Purchase", "refused", 1)  # carried over from its batch
    assert _waiting(s) == ([], 0, 0) and len(calls(s)) == 1


def test_a_batch_left_by_a_dead_run_is_sent_once_after_the_lease(shop):
    s = shop
    events = add_events(s, 5)
    config = PipelineConfig()
    claim(s.warehouse, "died", s.now(), config)
    plan(s.warehouse, "died", s.now(), config)  # ...and its upload never ran
    s.run("too-soon")
    assert _waiting(s) == ([5], 0, 5) and calls(s) == []
    s.emu.admin.advance(11 * 60)
    s.run("after-lease")
    assert assert_accounted(s, events) == {"uploaded": 5}
    assert _waiting(s) == ([], 0, 0)
    assert len(s.emu.admin.conversions()) == 5 and s.emu.admin.duplicates() == []
