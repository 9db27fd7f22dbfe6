"""Every reason code, both send rules, the CAPI switch, two goals, and what Microsoft received."""

from __future__ import annotations

import math
from datetime import UTC, timedelta
from decimal import Decimal

import psycopg

from include.msads_capi.identity import sha256_hex


def test_every_reason_code_and_the_emulator_agrees(shop, msads):
    s = shop
    now = s.now()
    ids = {
        "uploaded": s.event(),
        "uploaded_by_email": s.event(email=" Ana@Example.COM ", msclkid=None),
        "not_mapped": s.event("Signup"),
        "no_identifier": s.event(msclkid=None, email="not-an-email", phone="123"),
        "not_attributed": s.event("Lead", attributed_platform="google"),
        "outside_window": s.event(event_time=now - timedelta(days=95)),
        "future_time": s.event(event_time=now + timedelta(hours=3)),
        "invalid_value": s.event(value=-5),
        "invalid_currency": s.event(currency_code="ZZZ"),
        "nan_value": s.event(value=math.nan),
        "rejected": s.event(msclkid="not-a-click-id-from-microsoft"),
    }
    msads("space", "add", "off", "--currency", "EUR", "--region", "DE")
    ids["capi_off"] = s.event(space_id="off")
    ids["unknown_space"] = s.event(space_id="nowhere")
    summary = s.run()
    got = {k: s.reason(v) for k, v in ids.items()}
    assert got == {
        "uploaded": ["uploaded"], "uploaded_by_email": ["uploaded"],
        "not_mapped": ["not_mapped"], "no_identifier": ["no_identifier"],
        "not_attributed": ["not_attributed"], "outside_window": ["outside_window"],
        "future_time": ["future_time"], "invalid_value": ["invalid_value"],
        "invalid_currency": ["invalid_value"], "nan_value": ["invalid_value"],
        "rejected": ["rejected:OfflineConversionMicrosoftClickIdInvalid"],
        "capi_off": ["capi_off"], "unknown_space": ["not_mapped"],
    }
    assert summary["outcomes"]["uploaded"] == 2
    # identifiers of the events that reached hashing (those not decided by the plan's rules)
    assert summary["identifier_coverage"] == {"rows": 9, "click_id": 7, "email": 1, "phone": 0,
                                              "none": 1}
    received = s.emu.admin.conversions(account_id=s.tenant.account_id)
    assert len(received) == 2
    hashed = [c for c in received if c.get("hashed_email")]
    assert hashed[0]["hashed_email"] == sha256_hex("ana@example.com")
    with psycopg.connect(s.warehouse.url) as conn:
        (tracking,) = conn.execute("SELECT tracking_id FROM msads.results WHERE event_id = %s",
                                   (ids["uploaded"],)).fetchone()
        flags = conn.execute("SELECT sent_click_id, sent_email, sent_phone FROM msads.results "
                             "WHERE event_id = %s", (ids["uploaded_by_email"],)).fetchone()
    assert tracking and flags == (False, True, False)


def test_held_and_missing_goals_and_inactive_accounts(shop, msads):
    s = shop
    mapping = [m for m in __import__("json").loads(msads("map", "list", "--json")[1])
               if m["event_name"] == "Purchase"][0]
    with psycopg.connect(s.warehouse.url) as conn:
        conn.execute("UPDATE msads.goals SET missing_since = now() WHERE goal_id = %s",
                     (s.purchase_goal,))
    missing = s.event()
    s.run()
    assert s.reason(missing) == ["goal_missing"]
    with psycopg.connect(s.warehouse.url) as conn:
        conn.execute("UPDATE msads.goals SET missing_since = NULL")
        conn.execute("UPDATE msads.accounts SET status = 'paused', status_reason = 'test'")
    held = s.event()
    s.run()
    assert s.outcomes(held)[0][2:] == ("deferred", "account_inactive")
    with psycopg.connect(s.warehouse.url) as conn:
        conn.execute("UPDATE msads.accounts SET status = 'active'")
        conn.execute("UPDATE msads.results SET next_attempt_at = now() - interval '1 second' "
                     "WHERE event_id = %s", (held,))
    s.run()
    assert s.reason(held) == ["uploaded"]
    assert mapping["enabled"]


def test_send_rules(shop):
    s = shop
    attributed = s.event("Lead", attributed_platform=" Microsoft ")
    other = s.event("Lead", attributed_platform="google")
    none = s.event("Lead", attributed_platform=None)
    every = s.event("Purchase", attributed_platform="google")
    s.run()
    assert s.reason(attributed) == ["uploaded"]
    assert s.reason(other) == ["not_attributed"] and s.reason(none) == ["not_attributed"]
    assert s.reason(every) == ["uploaded"]


def test_capi_off_then_on_keeps_mappings_and_does_not_send_the_gap(shop, msads):
    s = shop
    msads("capi", "off", "--space", "shop")
    during = s.event()
    s.run()
    msads("capi", "on", "--space", "shop")
    after = s.event()
    s.run()
    assert s.reason(during) == ["capi_off"] and s.reason(after) == ["uploaded"]
    assert len(s.emu.admin.conversions()) == 1


def test_one_event_mapped_to_two_goals_has_two_outcomes(shop, msads):
    s = shop
    msads("map", "add", "--account", str(s.tenant.account_id), "--goal", str(s.lead_goal),
          "--event", "Purchase")
    event = s.event()
    s.run()
    outcomes = s.outcomes(event)
    assert sorted((goal, reason) for _, goal, _, reason in outcomes) == sorted(
        [(s.purchase_goal, "uploaded"), (s.lead_goal, "uploaded")])
    assert {c["goal_id"] for c in s.emu.admin.conversions()} == {s.purchase_goal, s.lead_goal}


def test_a_too_new_goal_is_deferred_then_sent_two_hours_later(shop, msads):
    s = shop
    goal_id = s.client.add_offline_goal(s.tenant.account_id, s.tenant.customer_id,
                                        name="Fresh goal")
    with psycopg.connect(s.warehouse.url) as conn:
        conn.execute("INSERT INTO msads.goals (account_id, goal_id, name, created_at) VALUES "
                     "(%s, %s, 'Fresh goal', %s)", (s.tenant.account_id, goal_id, s.now()))
    msads("map", "add", "--account", str(s.tenant.account_id), "--goal", str(goal_id),
          "--event", "Renewal")
    event = s.event("Renewal", event_time=s.now() - timedelta(minutes=10))
    s.run()
    assert s.outcomes(event)[0][2:] == ("deferred", "goal_too_new")
    s.emu.admin.advance(2 * 3600 + 60)
    s.run()
    assert s.reason(event) == ["uploaded"]


def test_batch_errors_at_the_first_and_last_index(shop):
    s = shop
    first = s.event(event_id="a-first", msclkid="bogus-first")
    middle = [s.event(event_id=f"b-{i}") for i in range(3)]
    last = s.event(event_id="z-last", msclkid="bogus-last")
    s.run()
    assert s.reason(first) == ["rejected:OfflineConversionMicrosoftClickIdInvalid"]
    assert s.reason(last) == ["rejected:OfflineConversionMicrosoftClickIdInvalid"]
    assert all(s.reason(m) == ["uploaded"] for m in middle)
    with psycopg.connect(s.warehouse.url) as conn:
        code, message = conn.execute("SELECT ms_code, ms_message FROM msads.results "
                                     "WHERE event_id = 'a-first'").fetchone()
    assert code == 5604 and message


def test_values_currencies_and_times_arrive_as_written(shop):
    s = shop
    when = (s.now() - timedelta(hours=1)).replace(microsecond=0)
    cents = s.event(value="19.99", currency_code="eur", event_time=when)
    whole = s.event(value=1234567, event_time=when)
    none = s.event(value=None, event_time=when)
    s.run()
    # times read back in UTC: in a session time zone whose clocks go back, an hour repeats, and
    # Python never finds a time in that hour equal to one in another zone (PEP 495)
    with psycopg.connect(s.warehouse.url) as conn:
        ledger = {e: [value, currency, at.astimezone(UTC)]
                  for e, value, currency, at in conn.execute(
                      "SELECT event_id, conversion_value, currency_code, conversion_time "
                      "FROM msads.results").fetchall()}
    assert ledger[cents] == [Decimal("19.99"), "EUR", when]
    assert ledger[whole] == [Decimal("1234567"), "USD", when]
    assert ledger[none] == [None, None, when]
    sent = {c["click_id"]: c for c in s.emu.admin.conversions()}
    assert len(sent) == 3
    values = sorted(((c["value"], c["currency"]) for c in sent.values()), key=repr)
    assert values == sorted([(19.99, "EUR"), (1234567.0, "USD"), (None, None)], key=repr)
