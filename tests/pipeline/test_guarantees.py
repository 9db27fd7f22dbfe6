"""Nothing lost, nothing sent twice, always safe to re-run."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest

from include.msads_capi.pipeline.upload import Uploader
from include.msads_capi.settings import PipelineConfig


def _terminal_once(shop, event_ids) -> None:
    for e in event_ids:
        rows = shop.outcomes(e)
        assert len(rows) == 1, (e, rows)


def test_a_row_committed_late_is_still_picked_up(shop):
    s = shop
    s.event(event_id="first")
    s.run()
    s.run()  # the cursor's first sweep
    late = psycopg.connect(s.warehouse.url)
    late.execute("INSERT INTO conversion_events (event_id, space_id, event_name, event_time, "
                 "value, msclkid, attributed_platform) VALUES ('late', 'shop', 'Purchase', "
                 "%s, 10, %s, 'microsoft')", (s.now() - timedelta(hours=1), s.click()))
    # ingested_at is now() of the open transaction; a later row commits first
    early = s.event(event_id="early")
    s.run()
    assert s.reason(early) == ["uploaded"] and s.outcomes("late") == []
    late.commit()
    late.close()
    # the overlap window is swept at most once a minute: the next run within it leaves the row
    s.run()
    assert s.outcomes("late") == []
    s.emu.admin.advance(PipelineConfig().sweep_every.total_seconds())
    s.run()
    assert s.reason("late") == ["uploaded"]
    s.emu.admin.advance(PipelineConfig().sweep_every.total_seconds())
    s.run()
    _terminal_once(s, ["late", "early", "first"])
    assert len(s.emu.admin.conversions()) == 3


def test_two_runs_at_once_send_each_conversion_once(shop):
    s = shop
    events = [s.event() for _ in range(60)]
    config = PipelineConfig(chunk_size=7)
    errors = []

    def run(i):
        try:
            s.run(f"concurrent-{i}", config)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _terminal_once(s, events)
    assert all(s.reason(e) == ["uploaded"] for e in events)
    received = s.emu.admin.conversions()
    assert len(received) == 60 and s.emu.admin.duplicates() == []


def test_a_run_killed_between_upload_and_record_is_finished_by_the_next(shop, monkeypatch):
    s = shop
    events = [s.event() for _ in range(5)]

    def crash(self, rows, result):
        raise KeyboardInterrupt("killed after Microsoft answered, before the ledger was written")

    with monkeypatch.context() as m:
        m.setattr(Uploader, "_record", crash)
        with pytest.raises(KeyboardInterrupt):
            s.run("killed")
    assert len(s.emu.admin.conversions()) == 5
    assert {r[3] for r in s.outcomes()} == {"ready"}
    s.run("too-soon")  # within the lease nobody takes the dead run's claims
    assert {r[3] for r in s.outcomes()} == {"ready"}
    s.emu.admin.advance(11 * 60)
    s.run("after-lease")
    _terminal_once(s, events)
    assert all(s.reason(e) == ["uploaded"] for e in events)
    # Microsoft's own dedupe absorbed the resend: still five conversions, five duplicates
    assert len(s.emu.admin.conversions()) == 5 and len(s.emu.admin.duplicates()) == 5


def test_a_run_killed_while_planning_new_events_leaves_them_to_the_next(shop, monkeypatch):
    from include.msads_capi.pipeline import plan as plan_module

    s = shop
    events = [s.event() for _ in range(12)]
    chunks = []
    real = plan_module.plan_rows

    def dies_in_the_second_chunk(conn, rows, outbox, **kwargs):
        chunks.append(len(rows) + (kwargs["ready"].count if kwargs.get("ready") else 0))
        if len(chunks) == 2:
            raise KeyboardInterrupt("killed while planning the second chunk")
        return real(conn, rows, outbox, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(plan_module, "plan_rows", dies_in_the_second_chunk)
        with pytest.raises(KeyboardInterrupt):
            s.run("killed", PipelineConfig(chunk_size=5))
    # the first chunk is planned for good; of the second nothing was kept, not even a claim
    assert sum(1 for e in events if s.outcomes(e)) == 5
    s.run("next")  # the cursor stayed after the first chunk: the other 7 go now
    assert sorted(s.reason(e)[0] for e in events) == ["ready"] * 5 + ["uploaded"] * 7
    s.emu.admin.advance(11 * 60)  # the dead run's planned chunk is taken over after the lease
    s.run("after-lease")
    _terminal_once(s, events)
    assert all(s.reason(e) == ["uploaded"] for e in events)
    assert len(s.emu.admin.conversions()) == 12 and s.emu.admin.duplicates() == []


def test_a_chunk_read_while_the_one_before_is_written_skips_the_events_in_that_one(
        shop, monkeypatch):
    """The next chunk is read and planned while the one before it is written: an event id
    whose first row is in the chunk being written (the ledger does not show it yet) is the
    same event, and is planned once."""
    from include.msads_capi.pipeline import plan as plan_module

    s = shop
    when = s.now() - timedelta(hours=1)
    with psycopg.connect(s.warehouse.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE loose_events (event_id text, space_id text NOT NULL, "
                     "event_name text NOT NULL, event_time timestamptz NOT NULL, "
                     "value numeric, currency_code text, msclkid text, email text, phone text, "
                     "attributed_platform text, ingested_at timestamptz NOT NULL DEFAULT now())")
        for event_id in ("a", "b", "b", "c"):  # chunks of 2: (a, b) and (b again, c)
            conn.execute("INSERT INTO loose_events (event_id, space_id, event_name, event_time, "
                         "value, msclkid, attributed_platform) VALUES (%s, 'shop', 'Purchase', "
                         "%s, 10, %s, 'microsoft')", (event_id, when, s.click()))
    monkeypatch.setenv("MSADS_EVENTS_TABLE", "loose_events")
    read_once = threading.Condition()
    reads, writes = [], []
    real_read, real_write = plan_module._plan_chunk, plan_module._write_chunk

    def read(*args, **kwargs):
        chunk = real_read(*args, **kwargs)
        with read_once:
            reads.append(chunk)
            read_once.notify_all()
        return chunk

    def write(*args, **kwargs):  # chunk n is written once chunk n + 1 has been read
        writes.append(1)
        with read_once:
            assert read_once.wait_for(lambda: len(reads) > len(writes), 30)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(plan_module, "_plan_chunk", read)
    monkeypatch.setattr(plan_module, "_write_chunk", write)
    summary = s.run(config=PipelineConfig(chunk_size=2))
    assert summary["claimed"]["new"] == 3
    assert [s.reason(e) for e in "abc"] == [["uploaded"]] * 3
    assert len(s.emu.admin.conversions()) == 3 and s.emu.admin.duplicates() == []


def test_the_next_chunk_is_read_while_this_one_is_planned(shop, monkeypatch):
    """Each chunk after the first is read on a thread of its own while the one before it is
    planned, and every event is planned once."""
    from include.msads_capi.pipeline import plan as plan_module

    s = shop
    events = [s.event() for _ in range(7)]
    real_fetch, real_plan = plan_module._fetch, plan_module._plan_chunk
    readers, overlapped, asked = [], [], threading.Event()

    def fetch(*args, **kwargs):
        readers.append(threading.current_thread().name)
        if threading.current_thread() is not threading.main_thread():
            asked.set()
        return real_fetch(*args, **kwargs)

    def plan_chunk(events, *args, **kwargs):
        if len(events) == 3:  # a full chunk: the next one has been asked for already
            overlapped.append(asked.wait(10))
        asked.clear()
        return real_plan(events, *args, **kwargs)

    monkeypatch.setattr(plan_module, "_fetch", fetch)
    monkeypatch.setattr(plan_module, "_plan_chunk", plan_chunk)
    planned = plan_module.plan(s.warehouse, "ahead", s.now(), PipelineConfig(chunk_size=3))
    assert planned.new_events == 7 and overlapped == [True, True]
    assert readers[0] == threading.current_thread().name  # the first: nothing to overlap
    assert [name.startswith("msads-plan-read") for name in readers[1:]] == [True, True]
    with psycopg.connect(s.warehouse.url) as conn:
        outbox = conn.execute("SELECT event_id FROM msads.outbox_pending ORDER BY 1").fetchall()
    assert outbox == [(e,) for e in sorted(events)]


def test_a_run_whose_chunk_another_run_took_meanwhile_plans_it_not_again(shop, monkeypatch):
    """A chunk is read before its transaction takes the cursor. When another run moved the
    cursor in between, the chunk is not written, and the run reads on from where the other
    one left the cursor."""
    from include.msads_capi.pipeline import plan as plan_module

    s = shop
    events = [s.event() for _ in range(5)]
    config = PipelineConfig(chunk_size=3)
    real_read = plan_module._plan_chunk
    overtaken = []

    def read(*args, **kwargs):
        chunk = real_read(*args, **kwargs)
        if not overtaken:  # the other run takes every new event now
            overtaken.append(None)
            overtaken[0] = plan_module.plan(s.warehouse, "other", s.now(), config)
        return chunk

    monkeypatch.setattr(plan_module, "_plan_chunk", read)
    planned = plan_module.plan(s.warehouse, "slow", s.now(), config)
    assert overtaken[0].new_events == 5 and planned.new_events == 0 and not +planned
    with psycopg.connect(s.warehouse.url) as conn:
        ledger = conn.execute("SELECT event_id, run_id, reason FROM msads.event_outcomes "
                              "ORDER BY event_id").fetchall()
        outbox = conn.execute("SELECT run_id, count(*) FROM msads.outbox_pending GROUP BY 1"
                              ).fetchall()
    assert ledger == [(e, "other", "ready") for e in sorted(events)]
    assert outbox == [("other", 5)]


def test_throttling_then_recovery(shop, sleeper):
    s = shop
    event = s.event()
    s.emu.admin.add_fault("throttle", operation="ApplyOfflineConversions", count=10)
    summary = s.run()
    assert s.outcomes(event)[0][2:] == ("pending", "retry")
    assert summary["pending"] == 1 and all(w >= 60 for w in sleeper.waits)
    s.emu.admin.clear_faults()
    s.emu.admin.advance(3600)
    s.run()
    assert s.reason(event) == ["uploaded"]


def test_failures_for_24_hours_end_as_failed(shop):
    s = shop
    event = s.event()
    s.emu.admin.add_fault("http_error", http_status=503, operation="ApplyOfflineConversions",
                          count=10_000)
    s.run()
    assert s.outcomes(event)[0][2:] == ("pending", "retry")
    s.emu.admin.advance(25 * 3600)
    s.run()
    assert s.outcomes(event)[0][2:] == ("failed", "failed")


def test_clearing_a_finished_run_decides_nothing_again(shop):
    s = shop
    events = [s.event() for _ in range(3)] + [s.event("Signup")]
    first = s.run("the-run")
    with psycopg.connect(s.warehouse.url) as conn:
        before = conn.execute("SELECT * FROM msads.results ORDER BY event_id").fetchall()
    again = s.run("the-run")
    with psycopg.connect(s.warehouse.url) as conn:
        after = conn.execute("SELECT * FROM msads.results ORDER BY event_id").fetchall()
    assert before == after and first["outcomes"] == again["outcomes"]
    assert len(s.emu.admin.conversions()) == 3 and s.emu.admin.duplicates() == []
    _terminal_once(s, events)


def test_a_backlog_is_drained_in_chunks(shop):
    s = shop
    events = [s.event() for _ in range(2_500)]
    summary = s.run(config=PipelineConfig(chunk_size=400))
    assert summary["claimed"]["new"] == 2_500
    assert summary["outcomes"] == {"uploaded": 2_500}
    assert max(u["calls"] for u in summary["uploads"]) == 3  # 1,000 per call
    assert len(s.emu.admin.conversions()) == len(events)
