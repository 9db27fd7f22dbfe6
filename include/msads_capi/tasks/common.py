"""What DAG tasks share: the warehouse as Airflow sees it, and how errors become task states."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from include.msads_capi import warehouse as wh
from include.msads_capi.errors import BUGS, MsadsError
from include.msads_capi.hooks.connections import airflow_warehouse

if TYPE_CHECKING:
    from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger(__name__)


def task_warehouse() -> wh.Warehouse:
    """The warehouse for a task: MSADS_WAREHOUSE_URL, else warehouse_default; the embedded
    PostgreSQL only when warehouse_default asks for it (extra ``{"embedded": true}``).

    Call it inside :func:`task_errors`: a missing or hostless connection is an MsadsError, so
    the task fails at once with what to set.
    """
    return airflow_warehouse()


def fail_without_retry(message: str) -> AirflowFailException:
    """An error no retry can fix (bad credentials, bad configuration): the task fails at once."""
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(message)


@contextmanager
def task_errors(what: str) -> Iterator[None]:
    """The one place where errors.py's kinds become Airflow behaviour, for every task.

    - :class:`~include.msads_capi.errors.MsadsError` (a person can fix it): the task fails at
      once, with the error's one line saying how; retrying cannot help.
    - :data:`~include.msads_capi.errors.BUGS` (our own code is wrong): the task fails at once,
      with the traceback in the log; the work it held waits for the next run.
    - everything else, :class:`~include.msads_capi.errors.Unavailable` first (the warehouse or
      Microsoft are unavailable for now): raised as it is, so Airflow retries the task.
    """
    try:
        yield
    except MsadsError as exc:
        raise fail_without_retry(f"{what}: {exc}") from exc
    except BUGS as exc:
        log.exception("a bug in msads-capi while %s", what)
        raise fail_without_retry(
            f"a bug in msads-capi while {what} ({type(exc).__name__}: {exc}); nothing is lost: "
            "the events wait for the next run; please report it with this log") from exc
