"""Read Airflow connections from Airflow itself (secrets backends, env, metadata database)."""

from __future__ import annotations

import json


def connection_json(conn_id: str) -> str | None:
    """The connection in Airflow's JSON form, or None when Airflow does not know it."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # not defined, or no metadata database reachable from here
        return None
    return json.dumps({
        "conn_type": conn.conn_type, "host": conn.host, "port": conn.port,
        "login": conn.login, "password": conn.password, "schema": conn.schema,
        "extra": conn.extra_dejson,
    })
