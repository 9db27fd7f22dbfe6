"""The architecture stays visible: an Airflow-free core, Astro-schema settings, thin DAGs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from include.msads_capi.local.airflow_settings import read

PROJECT = Path(__file__).resolve().parents[2]
CORE = PROJECT / "include" / "msads_capi"
AIRFLOW_ALLOWED = {"hooks", "tasks", "local"}  # the only rooms that may import Airflow
ASTRO_KEYS = {
    "connections": {"conn_id", "conn_type", "conn_host", "conn_schema", "conn_login",
                    "conn_password", "conn_port", "conn_extra", "conn_uri"},
    "pools": {"pool_name", "pool_slot", "pool_description"},
    "variables": {"variable_name", "variable_value"},
}


def test_the_core_does_not_import_airflow():
    offenders = []
    for path in CORE.rglob("*.py"):
        if path.relative_to(CORE).parts[0] in AIRFLOW_ALLOWED:
            continue
        if re.search(r"^\s*(from|import)\s+airflow\b", path.read_text(), re.MULTILINE):
            offenders.append(str(path.relative_to(PROJECT)))
    assert offenders == []


def test_airflow_settings_follows_the_astro_schema_with_placeholders():
    raw = yaml.safe_load((PROJECT / "airflow_settings.yaml").read_text())
    assert set(raw) == {"airflow"}
    for section, keys in ASTRO_KEYS.items():
        for item in raw["airflow"][section]:
            assert set(item) <= keys, (section, set(item) - keys)
    settings = read(PROJECT / "airflow_settings.yaml")
    conns = {c["conn_id"]: c for c in settings["connections"]}
    assert set(conns) == {"msads_default", "warehouse_default"}
    # empty host, and the embedded warehouse asked for explicitly (tasks never assume it)
    assert conns["warehouse_default"]["host"] is None
    assert json.loads(conns["warehouse_default"]["extra"]) == {"embedded": True}
    assert "replace-with" in conns["msads_default"]["password"]
    assert [p["name"] for p in settings["pools"]] == ["msads_api"]


def test_sql_lives_in_include_sql():
    migrations = sorted(p.name for p in (PROJECT / "include" / "sql" / "migrations").glob("*.sql"))
    assert migrations[0].startswith("0001_")


def test_microsoft_is_reached_over_rest_only():
    """Microsoft switches its SOAP API off: no suds, no SOAP SDK pin, and nothing builds the
    SDK's ServiceClient (it patches pydantic's BaseModel for the whole process)."""
    pins = {line.split("==")[0].strip().lower() for name in ("requirements.txt",
                                                             "constraints.txt")
            for line in (PROJECT / name).read_text().splitlines() if "==" in line}
    assert "msads" in pins
    assert not pins & {"bingads", "suds-community", "suds", "xmlschema"}
    offenders = []
    for folder in ("include", "dags", "plugins", "bench", "tests"):
        for path in (PROJECT / folder).rglob("*.py"):
            text = path.read_text()
            if re.search(r"^\s*(from|import)\s+(suds|xmlschema)\b", text, re.MULTILINE) or \
                    re.search(r"\bServiceClient\(", text):
                offenders.append(str(path.relative_to(PROJECT)))
    assert offenders == []
