"""`make demo` from nothing: every outcome appears and the ledger agrees with Microsoft."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
KINDS = ["uploaded", "no_identifier", "not_attributed", "account_inactive", "not_mapped",
         "capi_off", "goal_too_new", "goal_missing", "invalid_value", "outside_window",
         "future_time", "not_due_yet", "rejected:OfflineConversionMicrosoftClickIdInvalid"]


@pytest.mark.slow
@pytest.mark.airflow
def test_demo_runs_end_to_end_on_embedded_defaults(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MSADS_")) and k != "XDG_RUNTIME_DIR"}
    env.update(MSADS_HOME=str(tmp_path / "local"), PYTHONPATH=str(PROJECT))
    proc = subprocess.run([sys.executable, "-m", "include.msads_capi.local.demo"], env=env,
                          cwd=PROJECT, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    subprocess.run([sys.executable, "-m", "include.msads_capi.cli", "warehouse", "stop"],
                   env=env, cwd=PROJECT, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = out.split("Outcomes recorded", 1)[1].split("What the Microsoft", 1)[0]
    for kind in KINDS:
        assert f"  {kind} " in table, kind
    assert "the ledger and Microsoft agree" in out
    assert "accepted, not counted (NoMatchingClickFound)" in out
    assert out.count("$ msads why ") >= len(KINDS)
    assert "[NO] Is the event mapped?" in out
