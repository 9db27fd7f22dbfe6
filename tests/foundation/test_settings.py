"""Every setting has one owner (include/msads_capi/settings.py) and is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from include.msads_capi import settings
from include.msads_capi.errors import MsadsError

PROJECT = Path(__file__).resolve().parents[2]


def test_every_variable_the_product_reads_is_declared_and_documented():
    read = set()
    for path in (PROJECT / "include" / "msads_capi").rglob("*.py"):
        read |= set(re.findall(r"\b(MSADS_[A-Z_]+)\b", path.read_text()))
    read -= {"MSADS_DEFAULT"}  # the tail of AIRFLOW_CONN_MSADS_DEFAULT, Airflow's own
    assert read == set(settings.VARIABLES)
    doc = (PROJECT / "docs" / "configuration.md").read_text()
    assert [v for v in settings.VARIABLES if f"`{v}`" not in doc] == []


def test_only_the_settings_module_reads_the_environment():
    readers = []
    for path in (PROJECT / "include" / "msads_capi").rglob("*.py"):
        text = path.read_text()
        if re.search(r"os\.environ\.get\(\s*\"MSADS_|getenv\(\s*\"MSADS_", text):
            readers.append(path.name)
    assert readers == []


def test_settings_are_read_from_the_environment_given():
    loaded = settings.load({"MSADS_EVENTS_TABLE": "sales.events", "MSADS_CHUNK_SIZE": "250",
                            "MSADS_WAREHOUSE_URL": " postgresql://h/db "})
    assert loaded.events_table == "sales.events"
    assert loaded.pipeline.chunk_size == 250
    assert loaded.warehouse_url == "postgresql://h/db"
    assert settings.load({}).events_table == "conversion_events"


@pytest.mark.parametrize(("env", "names"), [
    ({"MSADS_EVENTS_TABLE": "events; drop table x"}, "MSADS_EVENTS_TABLE"),
    ({"MSADS_RUN_BUDGET_SECONDS": "forty"}, "MSADS_RUN_BUDGET_SECONDS"),
])
def test_a_bad_setting_is_one_line_naming_the_variable(env, names):
    with pytest.raises(MsadsError, match=names) as info:
        settings.load(env)
    assert "\n" not in str(info.value)
