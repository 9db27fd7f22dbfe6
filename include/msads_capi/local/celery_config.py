"""The Celery configuration of ``make run-celery``: Airflow's, plus two things for its workers.

``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS`` names :data:`CELERY_CONFIG` (Airflow's defaults,
unchanged). Importing this module also connects :func:`preload` to Celery's ``worker_init``:
a worker imports the REST SDK, pandas and the task runner once, before it forks its pool, and
every task process forked from the pool inherits them (the same saving as the LocalExecutor's
forkserver preload in ``make run``: about 4 s of CPU per upload task). The scheduler imports this
module too, but ``worker_init`` is sent only in workers.

:func:`worker_hostname` is the ``hostname_callable`` of ``make run-celery``'s workers: several
workers on one machine would all record the machine's name on their task instances.
"""

from __future__ import annotations

import importlib
import socket

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

from include.msads_capi.local.run_airflow import PRELOAD_MODULES

CELERY_CONFIG = DEFAULT_CELERY_CONFIG


@worker_init.connect
def preload(**_: object) -> None:
    """Import what every task imports, once per worker, before the pool forks."""
    for module in PRELOAD_MODULES:
        importlib.import_module(module)


def worker_hostname() -> str:
    """The worker's own name (``[msads] worker_hostname``, set per worker by ``make
    run-celery``), else the machine's, as Airflow records it by default."""
    from airflow.sdk.configuration import conf  # the task SDK's, which asks for the hostname

    return conf.get("msads", "worker_hostname", fallback="") or socket.getfqdn()
