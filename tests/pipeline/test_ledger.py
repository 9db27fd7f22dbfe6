"""The ledger's typed rows match its tables, and a stage cannot write a status that is not its own."""

from __future__ import annotations

import pytest

from include.msads_capi import ledger
from include.msads_capi.sql import query
from include.msads_capi.warehouse import transaction


def _columns(conn, table: str) -> set[str]:
    schema, name = table.split(".")
    return {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s", (schema, name)).fetchall()}


def test_every_typed_row_names_columns_of_its_table(warehouse):
    with transaction(warehouse) as conn:
        results, outbox = _columns(conn, "msads.results"), _columns(conn, "msads.outbox")
    for row in (ledger.Planned, ledger.Decided, ledger.Answered):
        assert set(row._fields) <= results, (row.__name__, set(row._fields) - results)
    for row in (ledger.Outgoing, ledger.Hashed):
        assert set(row._fields) <= outbox, (row.__name__, set(row._fields) - outbox)


def test_the_upload_reads_outbox_rows_in_their_declared_order(warehouse):
    with transaction(warehouse) as conn:
        cursor = conn.execute(query("upload_batch").replace("{part}", ""),
                              {"a": 1, "run": "r", "e": "", "g": 0, "n": 0})
        names = [column.name for column in cursor.description]
    assert names == list(ledger.OutboxRow._fields)


@pytest.mark.parametrize(("stage", "row"), [
    ("hash", ledger.Decided("e1", 1, 2, "uploaded", "uploaded", None, None, None)),
    ("hash", ledger.Decided("e1", 1, 2, "pending", "ready", None, None, None)),
])
def test_a_stage_may_not_write_another_stages_status(warehouse, stage, row):
    with transaction(warehouse) as conn, pytest.raises(ValueError, match="may not write"):
        ledger.record(conn, stage, [row])


def test_frames_and_tuples_stage_the_same_rows_and_a_bulk_write_needs_a_transaction(warehouse):
    import pandas as pd

    from include.msads_capi.warehouse import connect

    cols = ("event_id", "space_id", "status", "reason", "detail", "conversion_value")
    rows = [("t1", "shop", "pending", "ready", 'a "quoted", two-line\ndetail', 19.99),
            ("t2", None, "pending", "ready", "", None)]
    frame = pd.DataFrame([("f" + r[0][1:], *r[1:]) for r in rows], columns=list(cols))
    with transaction(warehouse) as conn:
        ledger.upsert(conn, "msads.results", cols, rows)
        ledger.upsert(conn, "msads.results", cols, frame)  # Arrow's CSV, not binary COPY
        got = conn.execute("SELECT event_id, space_id, detail, conversion_value::text "
                           "FROM msads.results WHERE event_id IN ('t1', 't2', 'f1', 'f2') "
                           "ORDER BY event_id").fetchall()
    # the same text, NULLs and numbers either way (an empty string stays one, not NULL)
    assert [g[1:] for g in got[:2]] == [g[1:] for g in got[2:]]
    assert got[2][1:] == ("shop", 'a "quoted", two-line\ndetail', "19.99")
    assert got[3][1:] == (None, "", None)
    conn = connect(warehouse, autocommit=True)
    try:  # outside a transaction the staged rows would be gone before they are read
        with pytest.raises(RuntimeError, match="need a transaction"):
            ledger.upsert(conn, "msads.results", cols, rows)
    finally:
        conn.close()


def test_new_rows_are_copied_straight_in_and_a_row_that_exists_after_all_is_updated(warehouse):
    import pandas as pd

    cols = ("event_id", "account_id", "goal_id", "space_id", "status", "reason", "detail")
    with transaction(warehouse) as conn:
        ledger.upsert(conn, "msads.results", cols, [
            ("n1", 7, 9, "shop", "pending", "ready", "old"),
            ("n2", 7, 9, "shop", "pending", "ready", "old")])
    fresh = pd.DataFrame([("n1", 7, 9, "shop", "pending", "ready", "planned again"),
                          ("n2", 7, 9, "shop", "pending", "ready", "left by hand"),
                          ("n3", 7, 9, "shop", "pending", "ready", "new")], columns=list(cols))
    with transaction(warehouse) as conn:
        # n1 is declared as planned again; n2 exists too, unannounced: the copy of the new
        # rows fails on it, is undone, and the rows are upserted instead (no error, no twin)
        ledger.insert_new(conn, "msads.results", cols, fresh, [("n1", 7, 9)])
        got = conn.execute("SELECT event_id, detail FROM msads.results WHERE event_id IN "
                           "('n1', 'n2', 'n3') ORDER BY event_id").fetchall()
    assert got == [("n1", "planned again"), ("n2", "left by hand"), ("n3", "new")]
    with transaction(warehouse) as conn:
        ledger.insert_new(conn, "msads.results", cols, fresh.assign(event_id=["n4", "n5", "n6"]))
        assert conn.execute("SELECT count(*) FROM msads.results WHERE event_id IN "
                            "('n4', 'n5', 'n6')").fetchone()[0] == 3


def test_a_frame_keeps_the_instant_of_every_aware_time_whatever_its_zone(warehouse):
    from datetime import UTC, datetime

    import pandas as pd

    instant = datetime(2031, 3, 30, 0, 30, 15, 123456, tzinfo=UTC)  # Paris changes clocks at 1:00
    paris = pd.Series([instant, None, instant], dtype="datetime64[us, UTC]").dt.tz_convert(
        "Europe/Paris")
    frame = pd.DataFrame({"event_id": ["z1", "z2", "z3"], "status": "pending",
                          "reason": "ready", "conversion_time": paris,
                          "claimed_at": pd.Series([instant] * 3, dtype="datetime64[us, UTC]")})
    cols = ("event_id", "status", "reason", "conversion_time", "claimed_at")
    with transaction(warehouse) as conn:
        ledger.insert_new(conn, "msads.results", cols, frame.assign(account_id=0, goal_id=0))
        got = conn.execute("SELECT conversion_time, claimed_at FROM msads.results WHERE "
                           "event_id IN ('z1', 'z2', 'z3') ORDER BY event_id").fetchall()
    assert got == [(instant, instant), (None, instant), (instant, instant)]


def test_recording_outcomes_reads_their_outbox_rows_only_whatever_the_statistics_say(warehouse):
    """The outbox is emptied after every drain. A vacuum that cannot shorten it leaves
    statistics of no rows on many pages, and PostgreSQL then believes it holds one row while it
    holds a backlog: recording 1,000 outcomes once scanned the whole outbox for each of them
    (35 s a call at 1,000,000). The rows are found by their keys, whatever the statistics."""
    from datetime import UTC, datetime

    backlog, decided = 20_000, 500
    fill = ("INSERT INTO msads.outbox (event_id, account_id, goal_id, customer_id, run_id, "
            "conversion_name, conversion_time, hashed) SELECT 'e' || i, 1, 2, 3, 'r', 'Goal', "
            "now(), true FROM generate_series(1, %s) i")
    with transaction(warehouse) as conn:
        conn.execute(fill, (backlog,))
        conn.execute("DELETE FROM msads.outbox")
    with transaction(warehouse) as conn:
        conn.execute("ANALYZE msads.outbox")  # no live rows, all the pages: about 0 rows a page
        conn.execute(fill, (backlog,))
        conn.execute("INSERT INTO msads.results (event_id, account_id, goal_id, status, reason, "
                     "run_id, claimed_at, first_seen_at) SELECT 'e' || i, 1, 2, 'pending', "
                     "'ready', 'r', now(), now() FROM generate_series(1, %s) i", (backlog,))
    now = datetime.now(UTC)
    rows = [ledger.Answered(f"e{i}", 1, 2, "uploaded", "uploaded", None, None, None, None, "t",
                            None, now, True, False, False, None, 1)
            for i in range(1, decided + 1)]
    with transaction(warehouse) as conn:
        ledger.record(conn, "upload", rows)
        read = conn.execute(
            "SELECT pg_stat_get_xact_tuples_returned(c.oid) + pg_stat_get_xact_tuples_fetched(c.oid) "
            "+ (SELECT sum(pg_stat_get_xact_tuples_returned(i.indexrelid)) FROM pg_index i "
            "   WHERE i.indrelid = c.oid) FROM pg_class c WHERE c.oid = 'msads.outbox'::regclass"
        ).fetchone()[0]
        left = conn.execute("SELECT count(*) FROM msads.outbox").fetchone()[0]
    assert left == backlog - decided
    assert read <= 3 * decided, f"{read} outbox rows read to take out {decided}"
