"""A big backlog is uploaded by several processes per account, in parts that never overlap."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from include.msads_capi.cli.common import connection_client
from include.msads_capi.pipeline.claim import claim
from include.msads_capi.pipeline.hashing import hash_stage
from include.msads_capi.pipeline.parallel import PartWorkers
from include.msads_capi.pipeline.plan import plan
from include.msads_capi.pipeline.run import run_once
from include.msads_capi.pipeline.upload import Part, accounts_with_work, upload_account
from include.msads_capi.settings import PipelineConfig, pipeline_config


def _events(shop, n: int) -> None:
    """``n`` Purchases with an email each, in one statement."""
    with psycopg.connect(shop.warehouse.url) as conn:
        conn.execute("""
            INSERT INTO conversion_events (event_id, space_id, event_name, event_time, value,
                                           email, attributed_platform)
            SELECT 'p' || lpad(i::text, 5, '0'), 'shop', 'Purchase', %s, 10,
                   'buyer' || i || '@example.com', 'microsoft'
            FROM generate_series(1, %s) i""", (shop.now() - timedelta(hours=1), n))


def _prepared(shop, run_id: str, config: PipelineConfig) -> None:
    now = shop.now()
    claim(shop.warehouse, run_id, now, config)
    plan(shop.warehouse, run_id, now, config)
    hash_stage(shop.warehouse, run_id, now, config)


def test_an_account_is_split_into_named_parts_of_consecutive_batches(shop):
    s = shop
    _events(s, 3_000)
    config = PipelineConfig(upload_processes=3, part_min_conversions=1_000)
    _prepared(s, "split", config)
    parts = accounts_with_work(s.warehouse, "split", config)
    assert [p["label"].split(" ", 1)[0] for p in parts] == [str(s.account.account_id)] * 3
    assert [p["label"].rsplit("(", 1)[1] for p in parts] == [
        f"shop, 1000 conversions, part {i} of 3)" for i in (1, 2, 3)]
    bounds = [(p["batches_after"], p["batches_upto"]) for p in parts]
    assert bounds[0][0] is None and bounds[-1][1] is None
    assert bounds[0][1] == bounds[1][0] < bounds[1][1] == bounds[2][0]  # consecutive
    assert [p["rows"] for p in parts] == [True, False, False]  # rows of their own: part 1
    # fewer conversions than the minimum for two parts: one task, as before
    fewer = PipelineConfig(upload_processes=3, part_min_conversions=2_000)
    assert [(p["part"], p["parts"], p["conversions"])
            for p in accounts_with_work(s.warehouse, "split", fewer)] == [(1, 1, 3_000)]


def test_rows_planned_again_are_split_into_parts_of_consecutive_events(shop):
    s = shop
    _events(s, 300)
    config = PipelineConfig(upload_processes=3, part_min_conversions=100)
    _prepared(s, "first", config)
    spent = PipelineConfig(upload_budget_seconds=0)
    left = [upload_account(s.warehouse, s.client, s.account.account_id, "first", spent, s.now,
                           Part.of_entry(entry)).outcomes["left_for_next_run"]
            for entry in accounts_with_work(s.warehouse, "first", config)]
    assert left == [100, 100, 100]  # batches of a part's least, each part out of time
    _prepared(s, "again", config)  # due at once: planned again, as outbox rows of their own
    parts = accounts_with_work(s.warehouse, "again", config)
    assert [(p["after"], p["upto"], p["conversions"]) for p in parts] == [
        (None, "p00100", 100), ("p00100", "p00200", 100), ("p00200", None, 100)]
    for part in parts:
        done = upload_account(s.warehouse, s.client, s.account.account_id, "again", config,
                              s.now, Part.of_entry(part))
        assert done.outcomes == {"uploaded": 100}
    assert len(s.emu.admin.conversions()) == 300 and s.emu.admin.duplicates() == []


def test_parts_uploaded_by_worker_processes_send_each_conversion_once(shop):
    s = shop
    _events(s, 3_000)
    config = PipelineConfig(upload_processes=3, part_min_conversions=1_000)
    with PartWorkers(connection_client, 2) as workers:
        summary = run_once(s.warehouse, lambda account: s.client, "parts", config,
                           clock=s.now, workers=workers)
    uploads = sorted(summary["uploads"], key=lambda u: u["part"])
    assert [(u["part"], u["parts"], u["outcomes"]) for u in uploads] == [
        (i, 3, {"uploaded": 1_000}) for i in (1, 2, 3)]
    assert summary["outcomes"] == {"uploaded": 3_000}
    assert len(s.emu.admin.conversions()) == 3_000 and s.emu.admin.duplicates() == []
    with psycopg.connect(s.warehouse.url) as conn:
        assert conn.execute("SELECT count(*) FROM msads.outbox_pending").fetchone()[0] == 0


def test_a_part_out_of_time_hands_only_its_own_rows_to_the_next_run(shop):
    s = shop
    _events(s, 3_000)
    config = PipelineConfig(upload_processes=2, part_min_conversions=1_000)
    _prepared(s, "late-part", config)
    first, second = accounts_with_work(s.warehouse, "late-part", config)
    spent = PipelineConfig(upload_budget_seconds=0)
    summary = upload_account(s.warehouse, s.client, s.account.account_id, "late-part", spent,
                             s.now, Part.of_entry(second))
    assert summary.outcomes == {"left_for_next_run": second["conversions"]} == {
        "left_for_next_run": 1_000}
    done = upload_account(s.warehouse, s.client, s.account.account_id, "late-part", config,
                          s.now, Part.of_entry(first))
    assert done.outcomes == {"uploaded": first["conversions"]}
    with psycopg.connect(s.warehouse.url) as conn:
        waiting = conn.execute("SELECT min(event_id), max(event_id), count(*) FROM msads.results "
                               "WHERE status = 'pending'").fetchone()
    assert waiting == ("p02001", "p03000", 1_000)
    s.run()  # the next run takes them over
    assert len(s.emu.admin.conversions()) == 3_000 and s.emu.admin.duplicates() == []


@pytest.mark.parametrize(("value", "message"), [
    ("two", "MSADS_UPLOAD_PROCESSES='two' is not a number"),
    ("0", "MSADS_UPLOAD_PROCESSES must be between 1 and 8"),
    ("9", "MSADS_UPLOAD_PROCESSES must be between 1 and 8"),
])
def test_a_bad_number_of_upload_processes_is_refused_with_the_fix(monkeypatch, value, message):
    from include.msads_capi.errors import MsadsError

    monkeypatch.setenv("MSADS_UPLOAD_PROCESSES", value)
    with pytest.raises(MsadsError, match=message):
        pipeline_config()
