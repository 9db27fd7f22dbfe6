"""Shared fixtures: a real PostgreSQL warehouse for every test that needs one.

The warehouse is the server named by ``MSADS_WAREHOUSE_URL`` when it is set (CI also runs the
suite against the machine's PostgreSQL that way); otherwise an embedded PostgreSQL started in a
temporary folder, never the developer's own ``.local`` one. Each test gets a fresh database
cloned from a migrated template, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]

# Airflow reads its configuration at import time: point it at a throw-away home first.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="msads-test-airflow-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PROJECT / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
for p in (PROJECT, PROJECT / "dags"):
    if str(p) not in sys.path:
        sys.path.append(str(p))

from include.msads_capi import migrations  # noqa: E402
from include.msads_capi.warehouse import EmbeddedWarehouse, Warehouse  # noqa: E402
from tests.fixtures_microsoft import (  # noqa: E402,F401 - fixtures for every test directory
    client,
    emu,
    make_client,
    msads_conn,
    profile,
    sleeper,
    tenant,
)
from tests.fixtures_pipeline import shop  # noqa: E402,F401

_SERVER_URL = os.environ.get("MSADS_WAREHOUSE_URL", "").strip()
_TEMPLATE = f"msads_tmpl_{os.getpid()}"

# Time-sensitive tests: `make test-clock` runs them again with the clock moved (tests/clock/).
# Marked by directory, so a new test there is covered without anyone remembering a marker;
# except a test that only adds volume (it reads the clock as its neighbours do).
CLOCK_DIRS = {"clock", "emulator", "microsoft", "pipeline", "reliability"}
NOT_CLOCK = {"test_a_backlog_is_drained_in_chunks"}


def pytest_collection_modifyitems(config, items):
    tests = PROJECT / "tests"
    for item in items:
        path = Path(item.path)
        if (path.is_relative_to(tests) and path.relative_to(tests).parts[0] in CLOCK_DIRS
                and item.originalname not in NOT_CLOCK):
            item.add_marker(pytest.mark.clock)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a server a test starts."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _with_database(url: str, dbname: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """An admin URL of the PostgreSQL server the tests use."""
    if _SERVER_URL:
        yield _SERVER_URL
        return
    # Not under pytest's basetemp: another pytest session on the machine would rotate it away.
    home = Path(tempfile.mkdtemp(prefix="msads-test-home-"))
    os.environ["MSADS_HOME"] = str(home)
    embedded = EmbeddedWarehouse(home / "warehouse")
    url = embedded.start()
    yield url
    embedded.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server_url) -> str:
    """A database migrated once, cloned for every test."""
    import psycopg

    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"')
        conn.execute(f'CREATE DATABASE "{_TEMPLATE}"')
    migrations.migrate(Warehouse(_with_database(pg_server_url, _TEMPLATE), "test template"))
    yield _TEMPLATE
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)')


def _fresh_db(pg_server_url: str, template: str | None):
    import psycopg

    name = f"msads_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def _drop_db(pg_server_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def warehouse(pg_server_url, template_db, monkeypatch) -> Warehouse:
    """A fresh, migrated warehouse; ``MSADS_WAREHOUSE_URL`` points at it for the test."""
    name = _fresh_db(pg_server_url, template_db)
    url = _with_database(pg_server_url, name)
    monkeypatch.setenv("MSADS_WAREHOUSE_URL", url)
    yield Warehouse(url, "MSADS_WAREHOUSE_URL")
    unexplained = _unexplained_reasons(url)
    _drop_db(pg_server_url, name)
    assert not unexplained, (f"the pipeline recorded reasons that msads.reasons (and so msads why "
                             f"and docs/pipeline.md) does not explain: {unexplained}")


def _unexplained_reasons(url: str) -> list[str]:
    """Reasons recorded in the ledger during a test that have no sentence for analysts."""
    import psycopg

    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('msads.reasons')").fetchone()[0] is None:
            return []
        return [r for (r,) in conn.execute(
            "SELECT DISTINCT r.reason FROM msads.results r LEFT JOIN msads.reasons x "
            "USING (reason) WHERE x.reason IS NULL AND r.reason NOT LIKE 'rejected:%'")]


@pytest.fixture
def empty_warehouse(pg_server_url, monkeypatch) -> Warehouse:
    """A fresh database with no migrations applied."""
    name = _fresh_db(pg_server_url, None)
    url = _with_database(pg_server_url, name)
    monkeypatch.setenv("MSADS_WAREHOUSE_URL", url)
    yield Warehouse(url, "MSADS_WAREHOUSE_URL")
    _drop_db(pg_server_url, name)


@pytest.fixture
def msads(capsys):
    """Run the ``msads`` CLI in-process: returns (exit status, stdout, stderr)."""
    from include.msads_capi.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run
