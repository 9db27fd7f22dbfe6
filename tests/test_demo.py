"""`make demo` from nothing: every outcome appears and the ledger agrees with Microsoft, for
the conversions, for the refunds and cancellations sent after them, and for what Microsoft's
reports say became of each upload (``msads report``)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from include.msads_capi.ledger import reference

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
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        _assert_demo(out)
        _assert_reconciled(out, tmp_path / "local")
    finally:
        subprocess.run([sys.executable, "-m", "include.msads_capi.cli", "warehouse", "stop"],
                       env=env, cwd=PROJECT, capture_output=True, timeout=120)


def _assert_demo(out: str) -> None:
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


REPORT_LINE = re.compile(
    r"account (?P<account>\d+), goal (?P<goal>\d+) \((?P<name>[^)]+)\): accepted "
    r"(?P<accepted>\d+), reported (?P<reported>\d+), counted (?P<counted>\d+), attributed "
    r"(?P<attributed>\d+); waiting for the report (?P<waiting>\d+), not reported "
    r"(?P<not_reported>\d+)")
KINDS_SENT = {"click": "sent_click_id", "email": "sent_email", "phone": "sent_phone"}


def _printed_report(out: str) -> dict[tuple[int, int], dict]:
    """``msads report --since 7d`` as the demo printed it: per (account, goal), its numbers,
    match rates (as printed), reasons and Microsoft's goal totals."""
    text = out.split("$ msads report --since 7d\n", 1)[1].split("\n\n", 1)[0]
    goals: dict[tuple[int, int], dict] = {}
    current: dict = {}
    for line in text.splitlines()[1:]:
        if m := REPORT_LINE.fullmatch(line):
            current = {k: (v if k == "name" else int(v)) for k, v in m.groupdict().items()}
            current.update(rates={}, reasons={}, totals=None)
            goals[current["account"], current["goal"]] = current
        elif line.startswith("  match rate by identifier: "):
            rates = line.split(": ", 1)[1]
            if rates != "none reported yet":
                current["rates"] = dict(r.split(" ") for r in rates.split(", "))
        elif m := re.fullmatch(r"  not attributed: (\S+) x(\d+)", line):
            current["reasons"][m[1]] = int(m[2])
        elif m := re.fullmatch(r"  Microsoft's goal totals: (\d+) attributed, (\d+) not", line):
            current["totals"] = (int(m[1]), int(m[2]))
        else:
            raise AssertionError(f"unexpected report line: {line!r}")
    assert goals, text
    return goals


def _ledger(url: str) -> tuple[dict, dict, dict, dict]:
    """From the demo's ledger: per (account, goal) its uploads' numbers, per identifier kind
    (sent and reported, attributed), the unattributed reasons, the click ids sent, and the
    references of those sent with only a hashed email or phone."""
    kinds = ", ".join(
        f"count(*) FILTER (WHERE {col} AND ms_reported_at IS NOT NULL), "
        f"count(*) FILTER (WHERE {col} AND ms_attributed)" for col in KINDS_SENT.values())
    with psycopg.connect(url) as conn:
        numbers = {}
        for row in conn.execute(
                "SELECT account_id, goal_id, count(*), count(ms_reported_at), "
                "count(*) FILTER (WHERE ms_status = 'Success'), "
                "count(*) FILTER (WHERE ms_attributed), "
                "count(*) FILTER (WHERE ms_status IS NULL), "
                "count(*) FILTER (WHERE ms_status = 'NotReported'), " + kinds +
                " FROM msads.results WHERE event_id LIKE 'demo-%' AND status = 'uploaded' "
                "GROUP BY 1, 2"):
            numbers[row[0], row[1]] = dict(
                zip(("accepted", "reported", "counted", "attributed", "waiting",
                     "not_reported"), row[2:8], strict=True),
                kinds={kind: row[8 + 2 * i:10 + 2 * i] for i, kind in enumerate(KINDS_SENT)})
        reasons: dict = {}
        for account, goal, reason, n in conn.execute(
                "SELECT account_id, goal_id, ms_unattributed, count(*) FROM msads.results "
                "WHERE event_id LIKE 'demo-%' AND status = 'uploaded' AND ms_unattributed "
                "IS NOT NULL GROUP BY 1, 2, 3"):
            reasons.setdefault((account, goal), {})[reason] = n
        clicks: dict = {}
        for account, goal, click in conn.execute(
                "SELECT account_id, goal_id, sent_ref FROM msads.results WHERE event_id LIKE "
                "'demo-%' AND status = 'uploaded' AND sent_click_id"):
            clicks.setdefault((account, goal), []).append(click)
        hashed: dict = {}
        for account, goal, ref in conn.execute(
                "SELECT account_id, goal_id, sent_ref FROM msads.results WHERE event_id LIKE "
                "'demo-%' AND status = 'uploaded' AND NOT sent_click_id"):
            hashed.setdefault((account, goal), []).append(ref)
    return numbers, reasons, clicks, hashed


def _assert_reconciled(out: str, home: Path) -> None:
    """The report the demo ends with says what the demo's own data says: its numbers and match
    rates are the ledger's, every upload is reported, and exactly the conversions sent with a
    click id the emulator never issued, or with only hashes that are no issued click's
    identity, are not attributed (NoMatchingClickFound)."""
    assert "airflow dags test msads_reconcile: done" in out
    printed = _printed_report(out)
    url = re.search(r"MSADS_WAREHOUSE_URL='([^']+)'", out)[1]
    numbers, reasons, clicks, hashed = _ledger(url)
    assert set(printed) == set(numbers), (printed, numbers)
    for key, p in printed.items():
        ledger = numbers[key]
        for field in ("accepted", "reported", "counted", "attributed", "waiting",
                      "not_reported"):
            assert p[field] == ledger[field], (key, field, p, ledger)
        rates = {kind: f"{round(matched / sent, 4):.0%}"
                 for kind, (sent, matched) in ledger["kinds"].items() if sent}
        assert p["rates"] == rates, (key, p["rates"], ledger["kinds"])
        assert p["reasons"] == dict(sorted(reasons.get(key, {}).items(),
                                           key=lambda r: (-r[1], r[0]))[:5]), key
        assert p["totals"] == (p["attributed"], p["accepted"] - p["attributed"]), key
    with sqlite3.connect(home / "emulator" / "demo.sqlite") as emulator:
        issued = {reference(c) for (c,) in emulator.execute("SELECT click_id FROM clicks")}
        people = {reference(h) for row in emulator.execute(
            "SELECT hashed_email, hashed_phone FROM clicks") for h in row if h}
    purchase = [key for key, p in printed.items() if p["name"] == "Offline purchase"]
    assert len(purchase) == 1, printed
    p = printed[purchase[0]]
    never_issued = [c for c in clicks[purchase[0]] if c not in issued]
    strangers = [r for r in hashed[purchase[0]] if r not in people]
    sent, matched = numbers[purchase[0]]["kinds"]["click"]
    # every upload of the demo is in Microsoft's reports (the window covers them all)
    assert p["reported"] == p["accepted"] > 0 and p["waiting"] == p["not_reported"] == 0
    # the click ids the emulator never issued, and the hashed-only conversions of people it
    # issued no click to, are what Microsoft could not attribute
    assert never_issued and strangers
    assert p["reasons"]["NoMatchingClickFound"] == len(never_issued) + len(strangers)
    assert p["attributed"] == p["accepted"] - sum(reasons[purchase[0]].values()) < p["accepted"]
    assert (sent, matched) == (len(clicks[purchase[0]]),
                               len(clicks[purchase[0]]) - len(never_issued))
    assert 0 < matched < sent
    # some were sent with only a hashed email or phone (an enhanced conversions goal)
    # and most, not all, of those people clicked: realistic match rates
    for kind in ("email", "phone"):
        sent_kind, matched_kind = numbers[purchase[0]]["kinds"][kind]
        assert 0 < matched_kind < sent_kind, (kind, sent_kind, matched_kind)
    assert sent < p["accepted"]
    check = out.split("Microsoft's view in the ledger beside what the emulator counted", 1)[1]
    assert "the ledger and Microsoft agree" in check.split("\n\n", 1)[0]
    assert "[NO] Did Microsoft count it? no: Microsoft reports NoMatchingClickFound" in check
