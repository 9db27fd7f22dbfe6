"""Several uploaders for one account at once, outside Airflow.

Building each request, and planning and hashing the rows before it, is Python work that holds
the GIL (the REST SDK's models and JSON cost about 20-50 ms per 1,000 conversions;
docs/performance.md), so one process does one part's work at a time, and threads do not help. A big backlog is therefore split into parts of consecutive events
(:func:`~include.msads_capi.pipeline.upload.accounts_with_work`), which never overlap. In
Airflow each part is a mapped ``upload_conversions`` task, so the executor runs them side by
side and the ``msads_api`` pool caps how many calls are in flight. ``run_once`` (``msads run``,
the demo, the benchmark) uploads part 1 itself and hands the other parts to these worker
processes.

Workers are started with ``spawn`` (no inherited connections, locks or threads) the first time a
part is handed over (or by :meth:`PartWorkers.start`), import :data:`WARM_MODULES` as they start,
build their own API client from the connection id, and are kept for the next run until
:meth:`PartWorkers.close`.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime

from include.msads_capi.microsoft.client import AdsClient
from include.msads_capi.microsoft.faults import AccountAuthError
from include.msads_capi.pipeline import WARM_MODULES
from include.msads_capi.pipeline.upload import AccountRefusedError, Part, upload_account
from include.msads_capi.settings import PipelineConfig
from include.msads_capi.warehouse import Warehouse

log = logging.getLogger(__name__)

ClientFactory = Callable[[Warehouse, str], AdsClient]
"""Builds the API client for a connection id; must be a module-level function (it is pickled)."""

_clients: dict[tuple, AdsClient] = {}  # per worker process: one client per connection


def warm_up() -> None:
    """Import :data:`include.msads_capi.pipeline.WARM_MODULES` in this process."""
    for module in WARM_MODULES:
        importlib.import_module(module)


class PartWorkers:
    """A pool of worker processes that upload parts of an account's outbox."""

    def __init__(self, make_client: ClientFactory, processes: int) -> None:
        self.make_client, self.processes = make_client, max(1, processes)
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, warehouse: Warehouse, entry: dict, run_id: str,
               config: PipelineConfig) -> Future:
        return self._started().submit(upload_part, self.make_client, warehouse, entry, run_id,
                                      config)

    def start(self) -> None:
        """Start the workers now and wait for their answers (a worker answers once it has
        imported :data:`WARM_MODULES`), so that no run waits for their start-up: the benchmark
        starts them before its clock."""
        pool = self._started()
        for answer in [pool.submit(os.getpid) for _ in range(self.processes)]:
            answer.result()

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes, initializer=warm_up,
                                             mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> PartWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def upload_part(make_client: ClientFactory, warehouse: Warehouse, entry: dict, run_id: str,
                config: PipelineConfig) -> dict:
    """Upload one part (an entry of ``accounts_with_work``); the summary as a dict."""
    key = (make_client, warehouse.url, entry["conn_id"])
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = make_client(warehouse, entry["conn_id"])
    return upload_one_part(warehouse, client, entry["account_id"], run_id, config,
                           Part.of_entry(entry))


def upload_one_part(warehouse: Warehouse, client: AdsClient, account_id: int, run_id: str,
                    config: PipelineConfig, part: Part,
                    clock: Callable[[], datetime] | None = None) -> dict:
    """One part's upload summary as a dict; a sign-in failure or an account whose requests
    Microsoft refuses is reported, not raised (its conversions wait, and other accounts go
    on)."""
    try:
        summary = upload_account(warehouse, client, account_id, run_id, config, clock,
                                 part).as_dict()
    except (AccountAuthError, AccountRefusedError) as exc:
        log.error("%s", exc if str(exc).startswith(f"account {account_id}")
                  else f"account {account_id}: {exc}")
        summary = {"account_id": account_id, "stopped": str(exc)}
    return {**summary, "part": part.number, "parts": part.of}
