"""Queries kept as files under ``include/sql/queries``, with the events table filled in."""

from __future__ import annotations

from functools import cache

from include.msads_capi import settings
from include.msads_capi.paths import SQL_DIR


@cache
def _template(name: str) -> str:
    return (SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8")


def query(name: str) -> str:
    """The text of ``include/sql/queries/<name>.sql``."""
    return _template(name).replace("{{events_table}}", settings.events_table())
