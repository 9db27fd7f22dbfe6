"""Incremental pick-up, for events and adjustments alike: a named cursor on
``(ingested_at, id)`` in ``msads.pickup_cursor``, due rows, the overlap sweep, then new rows in
keyset order (the queries in ``include/sql/queries``).

The overlap sweep reads every row of the window before the cursor (``PipelineConfig.overlap``)
for those that committed after the cursor passed them. It runs at most once a minute
(``PipelineConfig.sweep_every``), not in every run: while a backlog drains, runs follow each
other every few seconds and the whole backlog sits in the window, so each sweep read all of
it. A row that commits late is taken within a minute or so.

Due and swept rows, and new adjustments, are claimed with a committed ledger row each. New
events are not: the plan stage takes them chunk by chunk, writing their outcomes, then locking
the cursor row (:func:`lock_cursor`), checking it and moving it (:func:`advance`) in the same
transaction, so a claim row per event, written and deleted again, is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from include.msads_capi.sql import query
from include.msads_capi.warehouse import Warehouse, transaction

if TYPE_CHECKING:
    import psycopg

    from include.msads_capi.settings import PipelineConfig


@dataclass(frozen=True)
class Source:
    """What one kind of row is picked up with: its cursor's name and its three queries."""

    cursor: str
    due: str
    late: str
    new: str | None  # None: new rows are taken by the plan stage, which moves the cursor


EVENTS = Source("events", "claim_due", "claim_late", None)
ADJUSTMENTS = Source("adjustments", "adjustments_claim_due", "adjustments_claim_late",
                     "adjustments_claim_new")

_ADVANCE = """
INSERT INTO msads.pickup_cursor (name, ingested_at, event_id, run_id)
VALUES (%(n)s, %(at)s, %(id)s, %(run)s)
ON CONFLICT (name) DO UPDATE SET ingested_at = EXCLUDED.ingested_at,
    event_id = EXCLUDED.event_id, run_id = EXCLUDED.run_id, updated_at = now()
WHERE (msads.pickup_cursor.ingested_at, msads.pickup_cursor.event_id)
    < (EXCLUDED.ingested_at, EXCLUDED.event_id)
"""


def lock_cursor(conn: psycopg.Connection, name: str) -> tuple[object, str]:
    """Take the cursor ``name`` until the transaction ends (a transaction-level advisory lock,
    which works before the cursor's row exists); where it stands, read after the lock is held,
    so a run that waited reads where the one before it left the cursor."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('msads.pickup_cursor:' || %s))",
                 (name,))
    return cursor_position(conn, name)


def cursor_position(conn: psycopg.Connection, name: str) -> tuple[object, str]:
    """Where the cursor ``name`` stands, ``("-infinity", "")`` before its first move."""
    row = conn.execute("SELECT ingested_at, event_id FROM msads.pickup_cursor WHERE name = %s",
                       (name,)).fetchone()
    return row if row else ("-infinity", "")


def same_position(a: tuple[object, str], b: tuple[object, str]) -> bool:
    """Whether two cursor positions are one (times as datetimes or pandas Timestamps)."""
    import pandas as pd

    if isinstance(a[0], str) or isinstance(b[0], str):
        return a == b
    return a[1] == b[1] and pd.Timestamp(a[0]) == pd.Timestamp(b[0])


def advance(conn: psycopg.Connection, name: str, at: object, last_id: str, run_id: str) -> None:
    """Move the cursor ``name`` forward to ``(at, last_id)`` (never back)."""
    conn.execute(_ADVANCE, {"n": name, "at": at, "id": last_id, "run": run_id})


def sweep_due(swept_at: datetime | None, now: datetime, config: PipelineConfig) -> bool:
    """Whether this run sweeps the overlap window: never swept yet, ``config.sweep_every`` or
    more since the last sweep by the run's clock, or that clock not later than the last sweep's
    (set back, or frozen in a test)."""
    return swept_at is None or not swept_at < now < swept_at + config.sweep_every


def pick_up(warehouse: Warehouse, source: Source, run_id: str, now: datetime,
            config: PipelineConfig) -> tuple[int, int, int]:
    """Claim due, late and new rows of ``source`` for ``run_id``: (new, late, due)."""
    with transaction(warehouse) as conn:
        due = len(conn.execute(query(source.due), {
            "run_id": run_id, "now": now, "stale_before": now - config.lease,
            "limit": config.max_events_per_run}).fetchall())
        row = conn.execute("SELECT ingested_at, event_id, swept_at FROM msads.pickup_cursor "
                           "WHERE name = %s", (source.cursor,)).fetchone()
        after_at, after_id, swept_at = row if row else ("-infinity", "", None)
        late = 0
        if row and sweep_due(swept_at, now, config):
            late = len(conn.execute(query(source.late), {
                "run_id": run_id, "now": now, "cursor_at": after_at, "cursor_id": after_id,
                "overlap": config.overlap, "limit": config.max_events_per_run}).fetchall())
            if late < config.max_events_per_run:  # a full sweep may have left more: again
                conn.execute("UPDATE msads.pickup_cursor SET swept_at = %s WHERE name = %s",
                             (now, source.cursor))
    new = 0
    while source.new and new < config.max_events_per_run:
        limit = min(config.chunk_size, config.max_events_per_run - new)
        with transaction(warehouse) as conn:
            claimed, seen, last_at, last_id = conn.execute(query(source.new), {
                "run_id": run_id, "now": now, "after_at": after_at, "after_id": after_id,
                "limit": limit}).fetchone()
            if seen:
                advance(conn, source.cursor, last_at, last_id, run_id)
        new += claimed
        if seen < limit:
            break
        after_at, after_id = last_at, last_id
    return new, late, due
