"""Queries kept as files under ``include/sql/queries`` (with the events table filled in), and
what a query returns as dicts or as a pandas frame."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from include.msads_capi import settings
from include.msads_capi.paths import SQL_DIR

if TYPE_CHECKING:
    import pandas as pd
    import psycopg


@cache
def _template(name: str) -> str:
    return (SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8")


def query(name: str) -> str:
    """The text of ``include/sql/queries/<name>.sql``."""
    return _filled(name, *settings.tables())


@cache
def _filled(name: str, events: str, adjustments: str) -> str:
    return (_template(name).replace("{{events_table}}", events)
            .replace("{{adjustments_table}}", adjustments))


def dicts(cursor: psycopg.Cursor) -> list[dict]:
    """The rows of an executed query as dicts by column name."""
    cols = [d.name for d in cursor.description]
    return [dict(zip(cols, r, strict=True)) for r in cursor.fetchall()]


def frame(cursor: psycopg.Cursor) -> pd.DataFrame:
    """The rows of an executed query as a pandas frame, with the query's column names."""
    import pandas as pd

    return pd.DataFrame(cursor.fetchall(), columns=[d.name for d in cursor.description])
