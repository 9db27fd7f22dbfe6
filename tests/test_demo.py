"""`make demo` from nothing: every outcome appears and the ledger agrees with Microsoft, for
the conversions and for the refunds and cancellations sent after them."""

from __future__ import annotations

import os
import re
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
    _assert_refunds(out)


def _row(table: str, adjustment_id: str) -> str:
    rows = [line for line in table.splitlines() if line.startswith(f"  {adjustment_id} ")]
    assert len(rows) == 1, (adjustment_id, table)
    return " ".join(rows[0].split())


def _assert_refunds(out: str) -> None:
    """The second table: per adjustment, the pipeline's decision beside what Microsoft got."""
    part = out.split("Refunds and cancellations: what the pipeline decided", 1)[1]
    table = part.split("The refunded orders in Microsoft afterwards:", 1)[0]
    orders = part.split("The refunded orders in Microsoft afterwards:", 1)[1].split("\n\n")[0]
    event = {a: _row(table, a).split()[1] for a in ("refund-1", "refund-2", "refund-3a",
                                                     "refund-3b", "refund-4")}
    # a full refund: sent as a Retract, applied, and the conversion is retracted
    assert re.fullmatch(r"refund-1 demo-\d+ retract uploaded uploaded Retract yes",
                        _row(table, "refund-1"))
    assert re.search(rf"^  {event['refund-1']} .*, retracted$", orders, re.M)
    # a partial refund: the new value is what was sent, applied and what Microsoft holds
    restate = re.fullmatch(r"refund-2 demo-\d+ restate (\S+) uploaded uploaded "
                           r"Restate (\S+) USD yes", _row(table, "refund-2"))
    assert restate, _row(table, "refund-2")
    assert restate[1] == restate[2]
    held = re.search(rf"^  {event['refund-2']} .* (\S+) USD, restated to (\S+) USD$", orders,
                     re.M)
    assert held, orders
    assert held[2] == restate[1] and float(held[2]) < float(held[1])
    # a partial then a full refund of one order: the earlier restate is superseded, only the
    # retract is sent
    assert event["refund-3a"] == event["refund-3b"]
    assert re.fullmatch(r"refund-3a demo-\d+ restate \S+ superseded skipped nothing -",
                        _row(table, "refund-3a"))
    assert re.fullmatch(r"refund-3b demo-\d+ retract uploaded uploaded Retract yes",
                        _row(table, "refund-3b"))
    assert re.search(rf"^  {event['refund-3a']} .*, retracted$", orders, re.M)
    # the refund of an order never uploaded: decided in the warehouse, nothing sent
    assert re.fullmatch(r"refund-4 demo-\d+ retract original_not_uploaded skipped nothing -",
                        _row(table, "refund-4"))
    assert re.search(rf"^  {event['refund-4']} .* no conversion", orders, re.M)
    assert "received adjustments: 3   (ledger says uploaded: 3)" in table
    assert "the ledger and Microsoft agree" in table
    assert f"$ msads why {event['refund-3b']}" in part
