"""Load an Astro CLI ``airflow_settings.yaml`` into plain Airflow (connections, pools, variables).

Only what is missing is created: a connection edited in the UI is never overwritten by the
placeholders in the file. Run inside the project venv: ``python -m
include.msads_capi.local.airflow_settings [FILE]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from include.msads_capi.paths import PROJECT_ROOT

_CONN_FIELDS = {"conn_host": "host", "conn_schema": "schema", "conn_login": "login",
                "conn_password": "password", "conn_port": "port"}


def read(path: Path) -> dict:
    """The file's ``airflow:`` section as connections, pools and variables (Astro schema)."""
    data = (yaml.safe_load(path.read_text()) or {}).get("airflow") or {}
    conns = []
    for c in data.get("connections") or []:
        conn = {"conn_id": c["conn_id"], "conn_type": c.get("conn_type"),
                "uri": c.get("conn_uri")}
        for src, dst in _CONN_FIELDS.items():
            conn[dst] = c.get(src) if c.get(src) not in ("", None) else None
        extra = c.get("conn_extra")
        conn["extra"] = json.dumps(extra) if isinstance(extra, dict) else (extra or None)
        conns.append(conn)
    pools = [{"name": p["pool_name"], "slots": int(p.get("pool_slot", 1)),
              "description": p.get("pool_description", "")} for p in data.get("pools") or []]
    variables = [{"key": v["variable_name"], "value": str(v.get("variable_value", ""))}
                 for v in data.get("variables") or []]
    return {"connections": conns, "pools": pools, "variables": variables}


def load(path: Path) -> list[str]:
    """Create the missing connections, pools and variables; returns what was done, per item."""
    # The metadata-database models, as `airflow connections import` itself uses them: this
    # writes Airflow's store, it does not author DAGs, so the SDK classes do not apply
    # (hence AIR311 is off for this file in pyproject.toml).
    from airflow.models import Connection, Pool, Variable
    from airflow.utils.session import create_session

    settings = read(path)
    done = []
    with create_session() as session:
        for c in settings["connections"]:
            if session.query(Connection).filter(Connection.conn_id == c["conn_id"]).first():
                done.append(f"kept connection {c['conn_id']}")
                continue
            if c["uri"]:
                conn = Connection(conn_id=c["conn_id"], uri=c["uri"])
            else:
                conn = Connection(conn_id=c["conn_id"], conn_type=c["conn_type"], host=c["host"],
                                  schema=c["schema"], login=c["login"], password=c["password"],
                                  port=c["port"], extra=c["extra"])
            session.add(conn)
            done.append(f"added connection {c['conn_id']}")
        for p in settings["pools"]:
            if session.query(Pool).filter(Pool.pool == p["name"]).first():
                done.append(f"kept pool {p['name']}")
                continue
            session.add(Pool(pool=p["name"], slots=p["slots"], description=p["description"],
                             include_deferred=False))
            done.append(f"added pool {p['name']} ({p['slots']} slots)")
        for v in settings["variables"]:
            if session.query(Variable).filter(Variable.key == v["key"]).first():
                done.append(f"kept variable {v['key']}")
                continue
            session.add(Variable(key=v["key"], val=v["value"]))
            done.append(f"added variable {v['key']}")
    return done


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else PROJECT_ROOT / "airflow_settings.yaml"
    for line in load(path):
        print(f"airflow_settings.yaml: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
