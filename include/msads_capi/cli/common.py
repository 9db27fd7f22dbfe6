"""What every command shares: the warehouse it talks to, tables, JSON and one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

from include.msads_capi import migrations, warehouse


def fail(message: str) -> int:
    """Print ``msads: error: <one line>`` to stderr; the exit status is 2."""
    print(f"msads: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def info(message: str) -> None:
    """Progress and context for people; stderr, so that stdout stays parseable."""
    print(message, file=sys.stderr)


class Context:
    """Resolves the warehouse once per command and says which one it is."""

    def __init__(self) -> None:
        self._warehouse: warehouse.Warehouse | None = None

    @property
    def warehouse(self) -> warehouse.Warehouse:
        if self._warehouse is None:
            self._warehouse = warehouse.resolve(cli_connection_lookup)
            info(self._warehouse.describe())
        return self._warehouse

    @contextmanager
    def transaction(self, *, migrated: bool = True) -> Iterator:
        """A connection in one transaction; by default it first checks the schema is current."""
        if migrated:
            migrations.require_current(self.warehouse)
        with warehouse.transaction(self.warehouse) as conn:
            yield conn

    def close(self) -> None:
        pass


def cli_connection_lookup(conn_id: str) -> str | None:
    """Airflow connections for the CLI: the AIRFLOW_CONN_* variable, then Airflow's own store.

    Airflow is asked only when it is configured for this shell (``AIRFLOW_HOME`` is set), so
    plain commands stay fast and work where Airflow has no metadata database.
    """
    import os

    value = warehouse.env_connection_lookup(conn_id)
    if value or not os.environ.get("AIRFLOW_HOME"):
        return value
    from include.msads_capi.hooks.connections import connection_json

    return connection_json(conn_id)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z")
    return str(value)


def print_table(rows: Sequence[dict], columns: Sequence[str], *, empty: str) -> None:
    """Rows as an aligned text table on stdout, or ``empty`` (a hint) when there are none."""
    if not rows:
        print(empty)
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def print_json(data) -> None:
    print(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False))
