"""Inside a clock-shifted run (``make test-clock``): did the clocks really move, all of them?

Skipped in an ordinary run. tests/clock/shift.py says what it moved in ``MSADS_CLOCK_SHIFT``
(for people) and ``MSADS_CLOCK_SHIFT_SECONDS`` (moved time minus real time); for the
daylight-saving run also ``MSADS_CLOCK_START`` (the moved time the run started at) and
``MSADS_CLOCK_DST_AT`` (the change it crosses), epoch seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

PROJECT = Path(__file__).resolve().parents[2]
SHIFT = os.environ.get("MSADS_CLOCK_SHIFT")
pytestmark = pytest.mark.skipif(not SHIFT, reason="not a clock-shifted run (make test-clock)")

CODE = "import time; time.sleep(0.01); print(repr(time.time()))"


def _child_time(env: dict) -> float:
    """time.time() in a new Python process (it also sleeps: time.sleep must work there)."""
    done = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    return float(done.stdout)


def _real_time() -> float:
    return _child_time({k: v for k, v in os.environ.items()
                        if k != "LD_PRELOAD" and not k.startswith("FAKETIME")})


def test_python_postgresql_and_the_emulator_all_see_the_moved_clock(warehouse, emu):
    expected = float(os.environ["MSADS_CLOCK_SHIFT_SECONDS"])
    python = time.time()
    real = _real_time()
    assert abs(python - real - expected) < 5, (SHIFT, python - real, expected)
    with psycopg.connect(warehouse.url) as conn:
        pg_now, pg_zone = conn.execute(
            "SELECT now(), current_setting('TimeZone')").fetchone()
    assert abs(pg_now.timestamp() - time.time()) < 5, (pg_now, datetime.now(UTC))
    assert abs(emu.admin.clock()["epoch"] - time.time()) < 5
    if os.environ.get("MSADS_CLOCK_DST_AT"):
        assert pg_zone == os.environ["TZ"]  # the embedded server took the run's zone


def test_a_child_process_goes_on_from_the_parents_time_and_can_sleep():
    # the CLI, the reliability drills' workers and the upload part workers are such children;
    # PYTHONPATH is replaced as those tests do
    child = _child_time({**os.environ, "PYTHONPATH": str(PROJECT)})
    assert abs(child - time.time()) < 5


@pytest.mark.skipif(not os.environ.get("MSADS_CLOCK_DST_AT"), reason="no daylight-saving change")
def test_the_run_starts_before_a_daylight_saving_change_of_its_zone():
    change, start = int(os.environ["MSADS_CLOCK_DST_AT"]), int(os.environ["MSADS_CLOCK_START"])
    before, after = time.localtime(change - 1), time.localtime(change)
    assert before.tm_gmtoff != after.tm_gmtoff and before.tm_isdst != after.tm_isdst
    assert start < change < start + 600  # crossed a few minutes into the run
    assert time.time() >= start - 1
    assert datetime.now().astimezone().tzname() in (before.tm_zone, after.tm_zone)
