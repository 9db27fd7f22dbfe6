"""What every command shares: the warehouse it talks to, tables, JSON and one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from include.msads_capi import migrations, warehouse

if TYPE_CHECKING:
    import psycopg

    from include.msads_capi.microsoft.client import AdsClient
    from include.msads_capi.microsoft.profile import Profile


# Exit statuses: 2 for something a person must fix, 75 (EX_TEMPFAIL) for "try again later".
USER_ERROR, TRY_AGAIN = 2, 75


def fail(message: str, status: int = USER_ERROR) -> int:
    """Print ``msads: error: <one line>`` to stderr; returns the exit status (2 by default)."""
    print(f"msads: error: {' '.join(message.split())}", file=sys.stderr)
    return status


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
    def transaction(self, *, migrated: bool = True) -> Iterator[psycopg.Connection]:
        """A connection in one transaction; by default it first checks the schema is current."""
        if migrated:
            migrations.require_current(self.warehouse)
        with warehouse.transaction(self.warehouse) as conn:
            yield conn

    def profile(self, conn_id: str) -> Profile:
        """The Microsoft profile held by an Airflow connection (env var, or Airflow's store)."""
        from include.msads_capi.errors import MsadsError
        from include.msads_capi.microsoft.profile import (
            connection_from_value,
            profile_from_connection,
        )

        raw = cli_connection_lookup(conn_id)
        if not raw:
            raise MsadsError(f"connection {conn_id} is not defined; set AIRFLOW_CONN_"
                             f"{conn_id.upper()} or add it in the Airflow UI (docs/connections.md)")
        return profile_from_connection(conn_id, connection_from_value(raw))

    def client(self, conn_id: str) -> AdsClient:
        """An API client for the connection's profile, tokens kept in this warehouse."""
        from include.msads_capi.microsoft.client import AdsClient
        from include.msads_capi.microsoft.tokens import TokenProvider, TokenStore

        profile = self.profile(conn_id)
        migrations.require_current(self.warehouse)
        return AdsClient(profile, TokenProvider(profile, TokenStore(self.warehouse)))


def connection_client(warehouse_: warehouse.Warehouse, conn_id: str) -> AdsClient:
    """The API client for a connection, as the commands build it (for upload worker processes,
    which get the warehouse from their parent)."""
    ctx = Context()
    ctx._warehouse = warehouse_
    return ctx.client(conn_id)


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


def _cell(value: object) -> str:
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


def _json_default(value: object) -> str | float:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False))
