"""Read Airflow connections from Airflow itself (secrets backends, env, metadata database)."""

from __future__ import annotations

import json


def connection_dict(conn_id: str) -> dict | None:
    """The connection as Airflow's JSON form (a dict), or None when Airflow does not know it."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # not defined, or no metadata database reachable from here
        return None
    return {"conn_type": conn.conn_type, "host": conn.host, "port": conn.port,
            "login": conn.login, "password": conn.password, "schema": conn.schema,
            "extra": conn.extra_dejson}


def connection_json(conn_id: str) -> str | None:
    conn = connection_dict(conn_id)
    return json.dumps(conn) if conn is not None else None
