"""The analysts' events table beyond its required columns: which optional columns it has."""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.msads_capi.settings import events_table

if TYPE_CHECKING:
    import psycopg

# Columns of the data contract a custom events table (or a view) may lack; read as NULL then.
OPTIONAL_COLUMNS = {"external_attribution_credit": "numeric",
                    "external_attribution_model": "text"}


def optional_columns(conn: psycopg.Connection) -> frozenset[str]:
    """The optional columns the events table has."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped AND attname = ANY(%s)",
        (events_table(), list(OPTIONAL_COLUMNS))).fetchall()
    return frozenset(r[0] for r in rows)


def select_optional(conn: psycopg.Connection, alias: str = "") -> str:
    """The optional columns as a select list: the column where the table has it, else NULL."""
    present = optional_columns(conn)
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{name}" if name in present else f"NULL::{kind} AS {name}"
                     for name, kind in OPTIONAL_COLUMNS.items())
