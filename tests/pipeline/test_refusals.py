"""A request Microsoft refuses as a whole is not the fault of the conversions in it.

Through the real SDK against the emulator's fault injection: HTTP 404 and 400 on every call, a
retired API version (303), and one unreadable item in a batch of 1,000. Nothing is rejected
for a refusal that is not an item's own; an item Microsoft refuses when sent alone, while it
accepts the others, is the only one rejected; a systemic refusal stops the account for the run,
keeps everything waiting, and nothing is sent twice once Microsoft accepts requests again.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.reliability.conftest import (
    add_events,
    assert_accounted,
    assert_sent_once,
    calls,
    click_of,
)

APPLY = "ApplyOfflineConversions"


def _reasons(s, event_ids: list[str]) -> dict[str, int]:
    with psycopg.connect(s.warehouse.url) as conn:
        return dict(conn.execute("SELECT reason, count(*) FROM msads.results "
                                 "WHERE event_id = ANY(%s) GROUP BY reason",
                                 (event_ids,)).fetchall())


def _account(s) -> tuple:
    with psycopg.connect(s.warehouse.url) as conn:
        return conn.execute("SELECT status, refused_since, refusal FROM msads.accounts "
                            "WHERE account_id = %s", (s.tenant.account_id,)).fetchone()


def _drain(s, event_ids: list[str], runs: int = 6) -> None:
    for _ in range(runs):
        if assert_accounted(s, event_ids) == {"uploaded": len(event_ids)}:
            return
        s.emu.admin.advance(5 * 60)
        s.run()
    raise AssertionError(f"still waiting: {assert_accounted(s, event_ids)}")


@pytest.mark.parametrize("fault", [
    {"kind": "http_error", "http_status": 404},
    {"kind": "http_error", "http_status": 400},
    {"kind": "adapi_error", "code": 303},  # ApiVersionNoLongerSupported: a retired version
], ids=["http-404", "http-400", "retired-version"])
def test_requests_refused_whole_on_every_call_reject_nothing(shop, msads, fault):
    s = shop
    events = add_events(s, 1_500)
    s.emu.admin.add_fault(operation=APPLY, for_seconds=3600, **fault)
    summary = s.run()
    assert assert_accounted(s, events) == {"pending": 1_500}  # waiting, with a next attempt
    assert _reasons(s, events) == {"refused": 1_500}
    stopped = summary["uploads"][0]["stopped"]
    assert "refused whole requests since" in stopped and "none was rejected" in stopped
    # the circuit breaker: a first call, halves down to single items, then three of those
    assert len(calls(s)) <= 16, len(calls(s))
    status, since, refusal = _account(s)
    assert status == "active" and since is not None
    signature = f"HTTP {fault['http_status']}" if "http_status" in fault else "303 "
    assert refusal.startswith(signature)
    code, out, _ = msads("why", events[0])
    assert code == 0 and "waiting: Microsoft refused whole requests since" in out
    assert signature in out

    s.emu.admin.clear_faults()  # Microsoft accepts requests again
    _drain(s, events)
    assert_sent_once(s, resends_allowed=False)
    assert s.emu.admin.rejections() == []
    assert _account(s)[1:] == (None, None)


def test_one_unreadable_item_in_a_batch_of_1000_is_the_only_one_rejected(shop, msads):
    s = shop
    events = add_events(s, 1_000)
    bad = events[417]
    click = click_of(s, bad)
    # the service cannot read that item, so every request that carries it is refused whole
    s.emu.admin.add_fault("deserialization", operation=APPLY, body_contains=click,
                          for_seconds=3600)
    s.run()
    assert assert_accounted(s, events) == {"uploaded": 999, "rejected": 1}
    assert s.reason(bad) == ["rejected:NullRequest"]
    assert len(s.emu.admin.conversions()) == 999
    assert click not in {c["click_id"] for c in s.emu.admin.conversions()}
    assert len(calls(s)) <= 30, len(calls(s))  # split in halves, not one call per item
    code, out, _ = msads("why", bad)
    assert code == 0 and "sent alone" in out
    assert_sent_once(s, resends_allowed=False)


def test_items_a_fault_names_are_rejected_and_the_others_sent_again(shop):
    s = shop
    events = add_events(s, 10)
    # an ApiFaultDetail whose BatchErrors name the item: that item's own fault
    s.emu.admin.add_fault("batch_error", operation=APPLY, code=5604,
                          body_contains=click_of(s, events[3]), as_fault=True, count=1)
    s.run()
    assert assert_accounted(s, events) == {"uploaded": 9, "rejected": 1}
    assert s.reason(events[3]) == ["rejected:OfflineConversionMicrosoftClickIdInvalid"]


def test_a_refusal_after_accepted_calls_keeps_what_was_accepted(shop):
    s = shop
    events = add_events(s, 2_500)
    # the first two calls pass, then the endpoint is gone
    s.emu.admin.add_fault("http_error", http_status=404, operation=APPLY, for_seconds=3600,
                          after_calls=2)
    s.run()
    statuses = assert_accounted(s, events)
    assert statuses == {"uploaded": 2_000, "pending": 500}, statuses
    assert s.emu.admin.rejections() == []
    s.emu.admin.clear_faults()
    _drain(s, events)
    assert_sent_once(s, resends_allowed=False)


def test_replay_resends_rows_an_earlier_version_rejected_for_a_refused_request(shop, msads):
    s = shop
    refused = [s.event() for _ in range(3)]
    own = s.event()
    # What versions before this one recorded when Microsoft answered HTTP 404 to a whole call,
    # beside a conversion Microsoft rejected on its own; none of them reached Microsoft.
    with psycopg.connect(s.warehouse.url) as conn:
        for event_id, reason, code, message in (
                [(e, "rejected:RequestError", None,
                  "Microsoft Advertising answered HTTP 404 Not Found") for e in refused]
                + [(own, "rejected:OfflineConversionNameInvalid", 5606, "The conversion name "
                    "do not match an existing offline conversion goal.")]):
            conn.execute(
                "INSERT INTO msads.results (event_id, account_id, goal_id, space_id, event_name,"
                " status, reason, ms_code, ms_error_code, ms_message, run_id, decided_at) "
                "VALUES (%s, %s, %s, 'shop', 'Purchase', 'rejected', %s, %s, %s, %s, 'old', "
                "now())", (event_id, s.tenant.account_id, s.purchase_goal, reason, code,
                           reason.split(":")[1], message))
    code, out, _ = msads("replay", "--outcome", "refused")
    assert code == 0 and "3 event(s)" in out, out
    code, out, _ = msads("replay", "--outcome", "refused", "--go")
    assert code == 0, out
    assert [s.reason(e) for e in refused] == [["uploaded"]] * 3
    assert s.reason(own) == ["rejected:OfflineConversionNameInvalid"]
    assert len(s.emu.admin.conversions()) == 3
