"""The asset watcher that starts ``msads_upload_conversions`` when new rows arrive.

:class:`NewRowsTrigger` runs in Airflow's triggerer. Every few seconds it asks the warehouse one
cheap question (``include/sql/queries/watch_new_rows.sql``: an index-only probe past each
pick-up cursor) and fires an asset event when rows wait beyond the cursors. It fires **once per
cursor position**: the cursors move only when a run claims, so while a run is queued or before
it has claimed, more rows arriving fire nothing, and at most one more run waits behind the active
one (Airflow keeps one queued asset event per DAG while ``max_active_runs`` is reached).

The DAG's one-minute schedule stays as the backstop: due retries, late-committed rows, and any
time the watcher is down or the warehouse was unreachable, are picked up by the next minute's run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from include.msads_capi.hooks.connections import airflow_warehouse
from include.msads_capi.sql import query

POLL_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 60.0

Position = tuple[Any, ...]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class NewRowsTrigger(BaseEventTrigger):
    """Fire when events or adjustments wait beyond their pick-up cursor (once per position).

    :param poll_seconds: how often the warehouse is asked (an index-only probe; no claims).
    """

    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__()
        self.poll_seconds = float(poll_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "poll_seconds": self.poll_seconds}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        probe = query("watch_new_rows")
        fired_for: Position | None = None
        conn = None
        failures = 0
        try:
            while True:
                try:
                    if conn is None or conn.closed:
                        conn = await self._connect()
                    row = await (await conn.execute(probe)).fetchone()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # warehouse down, not configured yet, not migrated
                    failures += 1
                    await self._close(conn)
                    conn = None
                    wait = min(MAX_BACKOFF_SECONDS, self.poll_seconds * 2 ** min(failures, 6))
                    if failures == 1 or wait >= MAX_BACKOFF_SECONDS:
                        self.log.warning("cannot look for new rows (%s); trying again in %.0f s; "
                                         "the one-minute schedule still runs the DAG", exc, wait)
                    await asyncio.sleep(wait)
                    continue
                failures = 0
                (events_at, events_id, next_event_at,
                 adjustments_at, adjustments_id, next_adjustment_at) = row
                position = (events_at, events_id, adjustments_at, adjustments_id)
                waiting = next_event_at is not None or next_adjustment_at is not None
                if waiting and position != fired_for:
                    fired_for = position
                    yield TriggerEvent({
                        "events_cursor": [_iso(events_at), events_id],
                        "adjustments_cursor": [_iso(adjustments_at), adjustments_id],
                        "first_waiting": _iso(min(t for t in (next_event_at, next_adjustment_at)
                                                  if t is not None))})
                await asyncio.sleep(self.poll_seconds)
        finally:
            await self._close(conn)

    async def _connect(self):  # noqa: ANN202 - psycopg.AsyncConnection, imported lazily
        import psycopg

        # Resolving may read the warehouse_default connection from Airflow (a blocking call)
        # or find the embedded PostgreSQL: done in a thread, off the triggerer's event loop.
        warehouse = await asyncio.to_thread(airflow_warehouse)
        conn = await psycopg.AsyncConnection.connect(
            warehouse.url, autocommit=True, connect_timeout=10,
            application_name="msads_new_rows_watcher")
        self.log.info("looking for new rows every %g s in the %s", self.poll_seconds,
                      warehouse.describe())
        return conn

    @staticmethod
    async def _close(conn: Any) -> None:
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except Exception:  # closing a broken connection: nothing left to release
                pass
