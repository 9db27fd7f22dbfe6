"""Tunable limits of the pipeline, with the defaults the DAG uses."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import timedelta

from include.msads_capi.errors import MsadsError


@dataclass(frozen=True)
class PipelineConfig:
    chunk_size: int = 5000                  # events read, planned and hashed at a time
    max_events_per_run: int = 100_000       # new events one run claims at most
    overlap: timedelta = timedelta(minutes=15)   # late-commit window re-read every run
    lease: timedelta = timedelta(minutes=10)     # a claim older than this is taken over
    upload_budget_seconds: float = 45.0     # per account and run; the rest waits for the next
    upload_processes: int = 2               # uploaders per account at once, for big backlogs
    part_min_conversions: int = 10_000      # an account is split only with this many per part
    account_hold: timedelta = timedelta(days=7)      # account_inactive: how long events wait
    goal_hold: timedelta = timedelta(days=7)         # goal_paused: how long events wait
    unverified_hold: timedelta = timedelta(hours=24)  # goals not fetched yet
    hold_recheck: timedelta = timedelta(minutes=15)
    retry_base: timedelta = timedelta(minutes=1)
    retry_max: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(hours=24)
    future_tolerance: timedelta = timedelta(minutes=5)  # ahead of now by less: held, not skipped
    max_age: timedelta = timedelta(days=90)         # Microsoft: "within the last 90 days"
    goal_min_age: timedelta = timedelta(hours=2)
    max_value: float = 1e12
    attributed_platforms: frozenset[str] = field(default_factory=lambda: frozenset(
        {"microsoft", "microsoft ads", "microsoft_ads", "microsoft advertising", "bing",
         "bing ads", "msads"}))

    def retry_delay(self, attempts: int) -> timedelta:
        """Exponential backoff for the n-th failed attempt (1-based)."""
        seconds = self.retry_base.total_seconds() * 2 ** max(0, attempts - 1)
        return timedelta(seconds=min(seconds, self.retry_max.total_seconds()))


def from_env(**overrides) -> PipelineConfig:
    """Defaults, then ``MSADS_CHUNK_SIZE`` / ``MSADS_RUN_BUDGET_SECONDS`` /
    ``MSADS_UPLOAD_PROCESSES`` / ``MSADS_PART_MIN_CONVERSIONS``, then overrides."""
    config = PipelineConfig()
    for var, name, kind in (("MSADS_CHUNK_SIZE", "chunk_size", int),
                            ("MSADS_RUN_BUDGET_SECONDS", "upload_budget_seconds", float),
                            ("MSADS_UPLOAD_PROCESSES", "upload_processes", int),
                            ("MSADS_PART_MIN_CONVERSIONS", "part_min_conversions", int)):
        raw = os.environ.get(var, "").strip()
        if raw:
            try:
                config = replace(config, **{name: kind(raw)})
            except ValueError:
                raise MsadsError(f"{var}={raw!r} is not a number; unset it or give one, "
                                 f"e.g. {getattr(PipelineConfig(), name)}") from None
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if not 1 <= config.chunk_size <= 100_000:
        raise MsadsError("chunk size must be between 1 and 100000 events")
    if not 1 <= config.upload_processes <= 8:
        raise MsadsError("MSADS_UPLOAD_PROCESSES must be between 1 and 8 uploaders per account")
    if config.part_min_conversions < 1:
        raise MsadsError("MSADS_PART_MIN_CONVERSIONS must be at least 1")
    return config
