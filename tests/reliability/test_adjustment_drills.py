"""Fault drills for refunds and cancellations: a worker is killed while Microsoft applies a batch
of adjustments the worker will never record. Runs go on while its claims are held; the first
run after the lease sends the batch again. Every adjustment ends with one outcome per goal, and
Microsoft ends in the state the latest adjustments say, each applied once: a resend is absorbed
as a duplicate, never applied a second time.

Time moves on the emulator's clock; every time here is relative to it.
"""

from __future__ import annotations

import signal
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
import pytest

from tests.reliability.conftest import add_events, assert_accounted, wait_for

ADJUST = "ApplyOfflineConversionAdjustments"
LEASE = 11 * 60  # past PipelineConfig.lease: a dead run's claims are taken over
TERMINAL = {"uploaded", "rejected", "skipped", "failed"}
MINUTE = timedelta(minutes=1)
ALREADY_RETRACTED = "ConversionAlreadyRetracted"


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def add_adjustments(s, rows: list[tuple]) -> None:
    """(adjustment_id, event_id, type, value, adjusted_at) rows, as analysts insert them."""
    with psycopg.connect(s.warehouse.url) as conn, conn.cursor().copy(
            "COPY conversion_adjustments (adjustment_id, event_id, adjustment_type, "
            "adjusted_value, adjusted_at) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def adjustment_ledger(s) -> dict[str, list[tuple]]:
    """(account, goal, status, reason, next_attempt_at) rows per adjustment."""
    out: dict[str, list[tuple]] = defaultdict(list)
    with psycopg.connect(s.warehouse.url) as conn:
        for row in conn.execute("SELECT adjustment_id, account_id, goal_id, status, reason, "
                                "next_attempt_at FROM msads.adjustment_results"):
            out[row[0]].append(row[1:])
    return out


def waiting(s) -> list[str]:
    return [a for a, rows in adjustment_ledger(s).items()
            if any(r[2] not in TERMINAL for r in rows)]


def adjustment_calls(s, *, since: int = 0) -> list[dict]:
    """The ApplyOfflineConversionAdjustments requests after request ``since``; ``status`` is
    None while Microsoft has not answered."""
    return s.emu.admin.requests(operation=ADJUST, since_id=since, bodies=False)


def last_request(s) -> int:
    return s.emu.admin.requests(bodies=False)[-1]["id"]


def kill_in_call(s, pipeline, operation: str, n: int) -> list[dict]:
    """Start a worker, SIGKILL it while Microsoft is on its ``n``-th ``operation`` call (held
    3 s by a delay), and wait for Microsoft to finish that call anyway; returns the worker's
    calls of ``operation``."""
    s.emu.admin.add_fault("delay", delay_seconds=3, operation=operation, count=1,
                          after_calls=n - 1)
    since = last_request(s)

    def calls() -> list[dict]:
        return s.emu.admin.requests(operation=operation, since_id=since, bodies=False)

    def answering() -> bool:
        seen = calls()
        return [r["status"] is None for r in seen] == [False] * (n - 1) + [True]

    worker = pipeline.start("killed")
    try:
        wait_for(answering, timeout=60, what=f"{operation} call {n} to start")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    assert worker.returncode == -signal.SIGKILL
    assert [f["hits"] for f in s.emu.admin.faults()] == [1]  # it died in the delayed call
    s.emu.admin.clear_faults()

    def answered() -> list[dict] | None:
        seen = calls()
        return seen if all(r["status"] is not None for r in seen) else None

    return wait_for(answered, what="Microsoft to answer the call nobody awaits any more")


def assert_adjustments_accounted(s, expected: dict[str, str]) -> dict[str, int]:
    """Every adjustment has one row per goal (the shop's Purchase goal), final, with the reason
    ``expected`` says; returns how many ended with each reason."""
    rows = adjustment_ledger(s)
    lost = sorted(set(expected) - set(rows))
    assert not lost, f"{len(lost)} adjustment(s) have no outcome, e.g. {lost[:3]}"
    assert set(rows) == set(expected), sorted(set(rows) - set(expected))[:3]
    reasons: Counter = Counter()
    wrong = []
    for adjustment_id, outcomes in rows.items():
        assert len(outcomes) == 1, (adjustment_id, outcomes)
        [(account, goal, status, reason, _next)] = outcomes
        assert (account, goal) == (s.tenant.account_id, s.purchase_goal), outcomes
        assert status in TERMINAL, (adjustment_id, outcomes)
        if reason != expected[adjustment_id]:
            wrong.append((adjustment_id, expected[adjustment_id], status, reason))
        reasons[reason] += 1
    assert not wrong, f"{len(wrong)} adjustment(s) ended otherwise than the rules say: {wrong[:5]}"
    return dict(reasons)


def applied_once(s) -> tuple[dict[tuple, list[dict]], list[dict]]:
    """What Microsoft received, grouped by adjustment (original, type, time, value, currency).

    Each adjustment is applied exactly once, by the first copy received; every later copy (a
    resend) is a duplicate of it or refused as ConversionAlreadyRetracted. Returns the groups and
    the resends."""
    received = s.emu.admin.adjustments(account_id=s.tenant.account_id)
    assert all(a["original_id"] is not None for a in received)
    same: dict[tuple, list[dict]] = defaultdict(list)
    for a in received:
        same[(a["original_id"], a["adjustment_type"], a["adjustment_time"],
              a["adjustment_value"], a["currency"])].append(a)
    unapplied = [got[0] for got in same.values() if not got[0]["applied"]]
    assert not unapplied, f"{len(unapplied)} adjustment(s) never applied, e.g. {unapplied[:2]}"
    resent = [a for got in same.values() for a in got[1:]]
    twice = [a for a in resent if a["applied"]]
    assert not twice, f"{len(twice)} resent adjustment(s) applied again, e.g. {twice[:2]}"
    for got in same.values():
        for a in got[1:]:
            assert a["duplicate_of"] == got[0]["id"] or (
                a["duplicate_of"] is None and a["not_applied_reason"] == ALREADY_RETRACTED), a
    return same, resent


def restated(s, events: list[str]) -> Counter:
    """How many of these events' conversions Microsoft holds with each restated value."""
    with psycopg.connect(s.warehouse.url) as conn:
        clicks = {c for (c,) in conn.execute("SELECT msclkid FROM conversion_events "
                                            "WHERE event_id = ANY(%s)", (events,))}
    return Counter(c["restated_value"] for c in s.emu.admin.conversions(
        account_id=s.tenant.account_id) if c["click_id"] in clicks)


@dataclass
class Plan:
    """The adjustments of the drill, what each must end with, and Microsoft's final state."""

    expected: dict[str, str] = field(default_factory=dict)  # adjustment id -> reason
    final: dict[str, tuple] = field(default_factory=dict)  # click -> (value, retracted_at)

    def add(self, rows: list[tuple], adjustment_id: str, event_id: str, kind: str,
            value: float | None, at: datetime, reason: str) -> None:
        rows.append((adjustment_id, event_id, kind, value, at))
        self.expected[adjustment_id] = reason


def adjust_every_conversion(plan: Plan, events: list[str], clicks: dict[str, str],
                            now: datetime) -> tuple[list[tuple], list[tuple]]:
    """Groups by position, so every call holds some of each: A partly refunded, B cancelled,
    C partly refunded then cancelled, D refunded again (partly refunded before), E refunded
    after an earlier cancellation. Returns the adjustments already sent before the drill and
    those of the run that dies."""
    before: list[tuple] = []
    batch: list[tuple] = []
    for i, e in enumerate(events):
        g, click = "AAABBBCCDE"[i % 10], clicks[e]
        if g == "A":
            plan.add(batch, f"{e}-a", e, "restate", 10 + i % 7, now - 30 * MINUTE, "uploaded")
            plan.final[click] = (10 + i % 7, None)
        elif g == "B":
            plan.add(batch, f"{e}-b", e, "retract", None, now - 25 * MINUTE, "uploaded")
            plan.final[click] = (None, now - 25 * MINUTE)
        elif g == "C":  # only the cancellation is sent
            plan.add(batch, f"{e}-c1", e, "restate", 5, now - 40 * MINUTE, "superseded")
            plan.add(batch, f"{e}-c2", e, "retract", None, now - 20 * MINUTE, "uploaded")
            plan.final[click] = (None, now - 20 * MINUTE)
        elif g == "D":  # a newer refund, and one older than the one Microsoft has
            plan.add(before, f"{e}-d0", e, "restate", 20, now - 90 * MINUTE, "uploaded")
            plan.add(batch, f"{e}-d1", e, "restate", 15, now - 10 * MINUTE, "uploaded")
            plan.add(batch, f"{e}-d2", e, "restate", 22, now - 100 * MINUTE, "superseded")
            plan.final[click] = (15, None)
        else:
            plan.add(before, f"{e}-e0", e, "retract", None, now - 80 * MINUTE, "uploaded")
            plan.add(batch, f"{e}-e1", e, "restate", 7, now - 15 * MINUTE,
                     "restate_after_retract")
            plan.final[click] = (None, now - 80 * MINUTE)
    return before, batch


@pytest.mark.parametrize("killed_call", [1, 2], ids=["in-the-first-call", "in-the-last-call"])
def test_a_worker_killed_while_microsoft_applies_adjustments_is_finished_once(
        shop, pipeline, killed_call):
    s = shop
    events = add_events(s, 1_500, hours_ago=2)
    s.run("conversions")
    assert assert_accounted(s, events) == {"uploaded": 1_500}
    with psycopg.connect(s.warehouse.url) as conn:
        clicks = dict(conn.execute("SELECT event_id, msclkid FROM conversion_events "
                                   "WHERE event_id = ANY(%s)", (events,)).fetchall())
    now = s.now().replace(microsecond=0)
    plan = Plan()
    before, batch = adjust_every_conversion(plan, events, clicks, now)
    add_adjustments(s, before)  # earlier refunds and cancellations: Microsoft has them
    s.run("adjustments-before")
    assert assert_adjustments_accounted(s, {a[0]: "uploaded" for a in before}) == {
        "uploaded": 300}
    add_adjustments(s, batch)  # the run that dies: every conversion is adjusted
    assert sum(plan.expected[b[0]] == "uploaded" for b in batch) == 1_350  # 1,000 + 350

    calls = kill_in_call(s, pipeline, ADJUST, killed_call)
    assert len(calls) == killed_call  # nothing was sent after the call it died in
    in_flight = s.emu.admin.adjustments(request_id=calls[-1]["id"])
    assert len(in_flight) == (1_000 if killed_call == 1 else 350)
    assert all(a["applied"] for a in in_flight)  # Microsoft applied what nobody recorded
    held = waiting(s)
    assert len(held) == 1_350 - (1_000 if killed_call == 2 else 0)

    # While the dead run's claims are held, analysts go on, and the scheduler's next runs
    # plan what they add against the adjustments held: a refund of conversions whose
    # cancellation is held, and a refund older than the held one.
    during: list[tuple] = []
    for i, e in enumerate(events):
        if i % 30 == 3:  # group B
            plan.add(during, f"{e}-b3", e, "restate", 3, now - 3 * MINUTE,
                     "restate_after_retract")
        elif i % 30 == 8:  # group D
            plan.add(during, f"{e}-d3", e, "restate", 18, now - 12 * MINUTE, "superseded")
    add_adjustments(s, during)
    since = last_request(s)
    for minute in range(1, 4):
        s.emu.admin.advance(60)
        s.run(f"next-minute-{minute}")
    assert adjustment_calls(s, since=since) == []  # the held claims are not sent yet
    assert sorted(waiting(s)) == sorted(held)

    s.emu.admin.advance(LEASE - 3 * 60)
    for runs in range(1, 6):
        s.run(f"after-the-lease-{runs}")
        if not waiting(s):
            break
        s.emu.admin.advance(60)
    reasons = assert_adjustments_accounted(s, plan.expected)
    assert reasons == {"uploaded": 300 + 1_350, "superseded": 450 + 50,
                       "restate_after_retract": 150 + 50}, reasons

    # Microsoft: each conversion as the latest adjustments say ...
    conversions = s.emu.admin.conversions(account_id=s.tenant.account_id)
    assert len(conversions) == 1_500
    state = {c["click_id"]: (c["restated_value"], _at(c["retracted_at"])) for c in conversions}
    off = {c: (state[c], want) for c, want in plan.final.items() if state[c] != want}
    assert not off, f"{len(off)} conversion(s) not as adjusted, e.g. {list(off.items())[:3]}"
    # ... each adjustment applied once, every resend absorbed
    same, resent = applied_once(s)
    assert len(same) == reasons["uploaded"]
    absorbed = [a for a in resent if a["duplicate_of"] is not None]
    print(f"\nkilled in adjustment call {killed_call} of 2 ({len(in_flight)} adjustments in "
          f"flight); done {runs} run(s) after the lease: {sum(map(len, same.values()))} "
          f"adjustments received, {len(same)} applied, {len(resent)} resent, {len(absorbed)} "
          f"absorbed as duplicates, {len(resent) - len(absorbed)} as {ALREADY_RETRACTED}")
    assert len(resent) == len(in_flight)  # only the call nobody recorded went again
    assert len(absorbed) > 0


@pytest.mark.parametrize("held_by", ["a-dead-run", "a-retry"])
def test_a_newer_refund_is_not_undone_by_an_older_one_sent_late(shop, pipeline, held_by):
    s = shop
    events = add_events(s, 20, hours_ago=2)
    s.run("conversions")
    now = s.now().replace(microsecond=0)
    add_adjustments(s, [(f"{e}-old", e, "restate", 12, now - 30 * MINUTE) for e in events])
    if held_by == "a-dead-run":  # planned, then the worker dies uploading new conversions
        add_events(s, 1, hours_ago=1)
        kill_in_call(s, pipeline, "ApplyOfflineConversions", 1)
    else:  # Microsoft fails the whole request: the refunds wait a minute for their retry
        s.emu.admin.add_fault("http_error", operation=ADJUST, http_status=503, count=10)
        s.run("failed-call")
        s.emu.admin.clear_faults()
    assert sorted(waiting(s)) == sorted(f"{e}-old" for e in events)
    assert s.emu.admin.adjustments() == []
    # a bigger refund of the same sales comes in and goes at once
    add_adjustments(s, [(f"{e}-new", e, "restate", 9, now - 2 * MINUTE) for e in events])
    s.run("next-minute")
    assert restated(s, events) == {9: 20}
    s.emu.admin.advance(LEASE)
    for minute in range(5):
        if not waiting(s):
            break
        s.run(f"later-{minute}")
        s.emu.admin.advance(60)
    assert not waiting(s)
    # Microsoft must still count the latest refund: 9, not the older 12
    assert restated(s, events) == {9: 20}
    with psycopg.connect(s.warehouse.url) as conn:
        late = dict(conn.execute("SELECT reason, count(*) FROM msads.adjustment_results "
                                 "WHERE adjustment_id LIKE '%%-old' GROUP BY 1").fetchall())
    assert late == {"superseded": 20}  # overtaken right before it would have gone
