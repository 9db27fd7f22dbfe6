"""What DAG tasks share: the warehouse as Airflow sees it, and failures that must not retry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.msads_capi import warehouse as wh
from include.msads_capi.hooks.connections import connection_json

if TYPE_CHECKING:
    from airflow.exceptions import AirflowFailException


def task_warehouse() -> wh.Warehouse:
    """The warehouse for a task: MSADS_WAREHOUSE_URL, warehouse_default, or the embedded one."""
    return wh.resolve(connection_json)


def fail_without_retry(message: str) -> AirflowFailException:
    """An error no retry can fix (bad credentials, bad configuration): the task fails at once."""
    from airflow.exceptions import AirflowFailException

    return AirflowFailException(message)
