"""Every setting of the product, typed, validated and read from the environment in one place.

:func:`load` reads the ``MSADS_*`` variables (the table :data:`VARIABLES`, which
``docs/configuration.md`` lists) into one :class:`Settings`. It is called where a setting is
used, so a test or a shell that changes a variable is seen at once; a bad value raises
:class:`MsadsError` naming the variable and the fix. Airflow's own variables (``AIRFLOW_*``) are
Airflow's; two are read here because the product follows them: the Fernet key and
``AIRFLOW_CONN_*`` connections (``warehouse.env_connection_lookup``).

:class:`PipelineConfig` holds the pipeline's tunable limits with the defaults the DAG uses.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

from include.msads_capi.errors import MsadsError
from include.msads_capi.paths import PROJECT_ROOT

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$")

#: Every environment variable the product reads, with what it does (docs/configuration.md).
VARIABLES: dict[str, str] = {
    "MSADS_EVENTS_TABLE": "the events table to read (default conversion_events)",
    "MSADS_ADJUSTMENTS_TABLE": "the adjustments table to read (default conversion_adjustments)",
    "MSADS_WAREHOUSE_URL": "the warehouse, as a PostgreSQL URL; wins over warehouse_default",
    "MSADS_HOME": "the folder for local state (default .local in the project)",
    "MSADS_FERNET_KEY": "the key that encrypts tokens in the warehouse",
    "MSADS_CHUNK_SIZE": "events read, planned and hashed at a time",
    "MSADS_RUN_BUDGET_SECONDS": "how long one upload task calls Microsoft per run",
    "MSADS_UPLOAD_PROCESSES": "upload tasks per account at once, for big backlogs",
    "MSADS_PART_MIN_CONVERSIONS": "the fewest conversions an upload part gets",
    "MSADS_RECONCILE_DAYS": "how many days of uploads msads_reconcile asks Microsoft about",
    "MSADS_AIRFLOW_HOME": "make run's Airflow home (default .airflow in the project)",
    "MSADS_AIRFLOW_PASSWORD": "make run's admin password (default admin)",
    "MSADS_ALERT_REJECTION_RATE": "alert when Microsoft rejects more than this share of an "
                                  "account's conversions in an hour (default 0.05)",
    "MSADS_ALERT_MIN_CONVERSIONS": "judge the rejection rate only from this many conversions "
                                   "an hour (default 50)",
    "MSADS_ALERT_CONNECTIONS": "the Airflow connections alerts go through, comma-separated "
                               "(default msads_alerts_email,msads_alerts_slack)",
    "MSADS_ALERT_EMAIL_TO": "who alert emails go to when the SMTP connection's extra has no to",
}


def _rules() -> ModuleType:
    """include.msads_capi.rules, imported when a config is made: it imports the outcomes, which
    import the SQL helpers, which import this module."""
    from include.msads_capi import rules

    return rules


@dataclass(frozen=True)
class PipelineConfig:
    chunk_size: int = 20000                 # events read, planned and hashed at a time
    max_events_per_run: int = 100_000       # new events one run claims at most
    overlap: timedelta = timedelta(minutes=15)   # late-commit window before the cursor
    sweep_every: timedelta = timedelta(minutes=1)  # the window is swept this often at most
    lease: timedelta = timedelta(minutes=10)     # a claim older than this is taken over
    upload_budget_seconds: float = 45.0     # per account and run; the rest waits for the next
    upload_processes: int = 2               # uploaders per account at once, for big backlogs
    part_min_conversions: int = 10_000      # an account is split only with this many per part
    account_hold: timedelta = timedelta(days=7)      # account_inactive: how long events wait
    goal_hold: timedelta = timedelta(days=7)         # goal_paused: how long events wait
    unverified_hold: timedelta = timedelta(hours=24)  # goals not fetched yet
    hold_recheck: timedelta = timedelta(minutes=15)
    original_hold: timedelta = timedelta(hours=24)  # an adjustment waits for its original
    retry_base: timedelta = timedelta(minutes=1)
    retry_max: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(hours=24)
    # Microsoft's limits and the platforms that mean Microsoft, as rules.py owns them
    future_tolerance: timedelta = field(default_factory=lambda: _rules().FUTURE_TOLERANCE)
    max_age: timedelta = field(default_factory=lambda: _rules().MAX_AGE)  # 90 days at upload
    goal_min_age: timedelta = field(default_factory=lambda: _rules().GOAL_MIN_AGE)
    max_value: float = field(default_factory=lambda: _rules().MAX_VALUE)
    attributed_platforms: frozenset[str] = field(
        default_factory=lambda: _rules().MICROSOFT_PLATFORMS)

    def next_attempt(self, attempts: int, first_seen: datetime,
                     now: datetime) -> datetime | None:
        """When to try the ``attempts``-th time (backoff), or None: tried long enough
        (``give_up_after`` since first seen), so the row ends ``failed``."""
        if first_seen + self.give_up_after <= now:
            return None
        return now + self.retry_delay(attempts)

    def retry_delay(self, attempts: int) -> timedelta:
        """Exponential backoff for the n-th failed attempt (1-based)."""
        seconds = self.retry_base.total_seconds() * 2 ** max(0, attempts - 1)
        return timedelta(seconds=min(seconds, self.retry_max.total_seconds()))


# MSADS_* variable → (PipelineConfig field, type)
_PIPELINE_VARIABLES = {"MSADS_CHUNK_SIZE": ("chunk_size", int),
                       "MSADS_RUN_BUDGET_SECONDS": ("upload_budget_seconds", float),
                       "MSADS_UPLOAD_PROCESSES": ("upload_processes", int),
                       "MSADS_PART_MIN_CONVERSIONS": ("part_min_conversions", int)}


@dataclass(frozen=True)
class AlertSettings:
    """When an alert fires and where it goes (docs/alerts.md)."""

    rejection_rate: float = 0.05       # share of an account's answered conversions in an hour
    min_conversions: int = 50          # fewer answered in the hour: the rate is not judged
    connections: tuple[str, ...] = ("msads_alerts_email", "msads_alerts_slack")
    email_to: tuple[str, ...] = ()     # when the SMTP connection's extra names nobody


@dataclass(frozen=True)
class Settings:
    """The product's settings, as :func:`load` read them."""

    events_table: str = "conversion_events"
    adjustments_table: str = "conversion_adjustments"
    warehouse_url: str | None = None
    home: Path = PROJECT_ROOT / ".local"
    fernet_key: str | None = None
    airflow_home: Path = PROJECT_ROOT / ".airflow"
    airflow_password: str = "admin"
    reconcile_days: int = 7
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    alerts: AlertSettings = field(default_factory=AlertSettings)


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``environ`` (the process environment by default), validated."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str:
        return (env.get(name) or "").strip()

    events, adjustments = tables(env)
    return Settings(
        events_table=events,
        adjustments_table=adjustments,
        warehouse_url=get("MSADS_WAREHOUSE_URL") or None,
        home=Path(get("MSADS_HOME") or PROJECT_ROOT / ".local").resolve(),
        fernet_key=get("MSADS_FERNET_KEY") or get("AIRFLOW__CORE__FERNET_KEY") or None,
        airflow_home=Path(get("MSADS_AIRFLOW_HOME") or PROJECT_ROOT / ".airflow"),
        airflow_password=get("MSADS_AIRFLOW_PASSWORD") or "admin",
        reconcile_days=_reconcile_days(get("MSADS_RECONCILE_DAYS")),
        pipeline=_pipeline(get),
        alerts=_alerts(get),
    )


def tables(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The analysts' events and adjustments tables (``MSADS_EVENTS_TABLE``,
    ``MSADS_ADJUSTMENTS_TABLE``), checked: what :func:`load` reads for them, without the rest,
    for every query that names them (the upload's recording of a call read all the settings
    three times, 3% of an upload process's time)."""
    env = os.environ if environ is None else environ
    return _tables((env.get("MSADS_EVENTS_TABLE") or "").strip(),
                   (env.get("MSADS_ADJUSTMENTS_TABLE") or "").strip())


@functools.lru_cache(maxsize=8)
def _tables(events: str, adjustments: str) -> tuple[str, str]:
    names = []
    for var, value, default in (("MSADS_EVENTS_TABLE", events, "conversion_events"),
                                ("MSADS_ADJUSTMENTS_TABLE", adjustments,
                                 "conversion_adjustments")):
        name = value or default
        if not _IDENT.match(name):
            raise MsadsError(f"{var}={name!r} is not a plain table name; use "
                             "lowercase letters, digits and _ (optionally schema.table)")
        names.append(name)
    return names[0], names[1]


def _reconcile_days(raw: str) -> int:
    if not raw:
        return 7
    if not raw.isdigit() or not 1 <= int(raw) <= 90:
        raise MsadsError(f"MSADS_RECONCILE_DAYS={raw!r} is not a number of days from 1 to 90 "
                         "(Microsoft keeps 90 days of offline conversions); unset it for 7")
    return int(raw)


def _names(raw: str) -> tuple[str, ...]:
    return tuple(n for n in (part.strip() for part in raw.split(",")) if n)


def _alerts(get: Callable[[str], str]) -> AlertSettings:
    default = AlertSettings()
    rate_raw, least_raw = get("MSADS_ALERT_REJECTION_RATE"), get("MSADS_ALERT_MIN_CONVERSIONS")
    try:
        rate = float(rate_raw) if rate_raw else default.rejection_rate
    except ValueError:
        rate = -1.0
    if not 0 <= rate < 1:
        raise MsadsError(f"MSADS_ALERT_REJECTION_RATE={rate_raw!r} is not a share between 0 and "
                         "1; write 0.05 for 5%, or unset it for the default")
    if least_raw and not (least_raw.isdigit() and int(least_raw) >= 1):
        raise MsadsError(f"MSADS_ALERT_MIN_CONVERSIONS={least_raw!r} is not a whole number of "
                         "conversions of at least 1; unset it for 50")
    return AlertSettings(
        rejection_rate=rate,
        min_conversions=int(least_raw) if least_raw else default.min_conversions,
        connections=_names(get("MSADS_ALERT_CONNECTIONS")) or default.connections,
        email_to=_names(get("MSADS_ALERT_EMAIL_TO")),
    )


def _pipeline(get: object) -> PipelineConfig:
    config = PipelineConfig()
    for var, (name, kind) in _PIPELINE_VARIABLES.items():
        raw = get(var)  # type: ignore[operator]
        if raw:
            try:
                config = replace(config, **{name: kind(raw)})
            except ValueError:
                raise MsadsError(f"{var}={raw!r} is not a number; unset it or give one, "
                                 f"e.g. {getattr(PipelineConfig(), name)}") from None
    return config


def pipeline_config(**overrides: object) -> PipelineConfig:
    """The pipeline's limits: defaults, then the ``MSADS_*`` variables, then ``overrides`` (the
    CLI's options, the Airflow Variables); checked after all three."""
    config = load().pipeline
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if not 1 <= config.chunk_size <= 100_000:
        raise MsadsError("chunk size must be between 1 and 100000 events")
    if not 1 <= config.upload_processes <= 8:
        raise MsadsError("MSADS_UPLOAD_PROCESSES must be between 1 and 8 uploaders per account")
    if config.part_min_conversions < 1:
        raise MsadsError("MSADS_PART_MIN_CONVERSIONS must be at least 1")
    return config


def adjustments_table() -> str:
    """The analysts' adjustments table, ``conversion_adjustments`` unless
    ``MSADS_ADJUSTMENTS_TABLE`` says."""
    return tables()[1]


def events_table() -> str:
    """The analysts' events table, ``conversion_events`` unless ``MSADS_EVENTS_TABLE`` says."""
    return tables()[0]
