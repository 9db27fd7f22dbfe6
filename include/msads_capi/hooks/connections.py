"""Read Airflow connections from Airflow itself (secrets backends, env, metadata database)."""

from __future__ import annotations

import json

from include.msads_capi import warehouse as wh


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


def airflow_warehouse() -> wh.Warehouse:
    """The warehouse as Airflow's tasks and hooks see it: ``MSADS_WAREHOUSE_URL``, else
    ``warehouse_default``. The embedded PostgreSQL only when that connection asks for it with
    the extra ``{"embedded": true}``; a connection without a host, or none, is an
    :class:`~include.msads_capi.errors.MsadsError` saying what to set, and starts nothing."""
    return wh.resolve(connection_json, embedded_by_default=False)
