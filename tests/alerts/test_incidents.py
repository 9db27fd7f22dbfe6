"""Incidents in the warehouse: one alert when something starts, one recovery when it ends,
nothing in between; rejection rates, expiring sign-ins and auth_failed accounts as a person
would meet them. Times come from the emulator's clock, which the test controls."""

from __future__ import annotations

from datetime import timedelta

import pytest

from include.msads_capi import alerts
from include.msads_capi.goals.refresh import mark_auth_failed
from include.msads_capi.microsoft.faults import AccountAuthError
from include.msads_capi.microsoft.tokens import EXPIRY_WARNING, REFRESH_TOKEN_LIFETIME, TokenStore
from include.msads_capi.settings import AlertSettings
from include.msads_capi.warehouse import transaction
from tests.fixtures_pipeline import emu_now

ACCOUNT = {"account_id": 180000001, "label": "180000001 Contoso (shop)"}
# Personal data and secrets that must never reach an alert.
PRIVATE = ("jane.doe@example.com", "+44 20 7946 0958", "(415) 555-0134",
           "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9abcdef0123456789", "s3cr3t-pa55word")


def _check(warehouse, now, config=None):
    with transaction(warehouse) as conn:
        return alerts.check(conn, now, config or AlertSettings())


def test_one_alert_per_incident_however_often_it_is_seen_and_one_recovery(warehouse, emu):
    now = emu_now(emu)
    failed = alerts.task_failed("msads_upload_conversions", "upload_conversions", "run-1",
                                error="upload: Space 'shop' is not configured", account=ACCOUNT)
    with transaction(warehouse) as conn:
        first = alerts.sight(conn, failed, now)
    assert first is not None and not first.recovery
    assert "180000001 Contoso (shop)" in first.text and "What to do:" in first.text
    for minute in range(1, 6):  # the next runs fail the same way: nothing more is sent
        with transaction(warehouse) as conn:
            assert alerts.sight(conn, failed, now + timedelta(minutes=minute)) is None
    with transaction(warehouse) as conn:
        recovery = alerts.clear(conn, failed.key, now + timedelta(minutes=7), "it succeeded")
        assert alerts.clear(conn, failed.key, now + timedelta(minutes=8), "again") is None
    assert recovery.recovery and recovery.alert_id == first.alert_id
    assert "seen 6 time(s)" in recovery.text and "lasted 7 minute(s)" in recovery.text
    assert recovery.subject.startswith("msads: resolved: upload_conversions failed")
    # the same trouble later is a new incident, with a new alert
    with transaction(warehouse) as conn:
        again = alerts.sight(conn, failed, now + timedelta(hours=1))
    assert again is not None and again.alert_id != first.alert_id


def test_an_incident_nobody_was_told_about_ends_quietly(warehouse, emu):
    now = emu_now(emu)
    incident = alerts.run_overdue("msads_upload_conversions", "scheduled__x", queued_at=now,
                                  deadline_at=now + timedelta(minutes=5))
    with transaction(warehouse) as conn:
        notice = alerts.sight(conn, incident, now)
        alerts.release(conn, notice)  # no channel took it
        assert alerts.clear(conn, incident.key, now, "finished") is None
        assert alerts.unsent(conn, now) == []


def test_an_alert_no_channel_took_is_handed_out_once_more(warehouse, emu):
    now = emu_now(emu)
    incident = alerts.task_failed("msads_refresh_goals", "refresh_account_goals", "run-1",
                                  error="boom", account=ACCOUNT)
    with transaction(warehouse) as conn:
        alerts.release(conn, alerts.sight(conn, incident, now))
        assert alerts.sight(conn, incident, now) is not None  # seen again: claimed again
        alerts.release(conn, alerts.clear(conn, incident.key, now, "fine") or
                       pytest.fail("the alert went out, so the recovery must too"))
        (recovery,) = alerts.unsent(conn, now)
        assert recovery.recovery and alerts.unsent(conn, now) == []


def test_the_rejection_rate_alerts_above_the_threshold_with_enough_volume(shop):
    s = shop
    config = AlertSettings(rejection_rate=0.05, min_conversions=20)
    good = [s.event() for _ in range(16)]
    bad = [s.event(msclkid="not-a-click-id-from-microsoft") for _ in range(4)]
    s.run()
    assert s.reason(bad[0]) == ["rejected:OfflineConversionMicrosoftClickIdInvalid"]
    assert s.reason(good[0]) == ["uploaded"]
    now = s.now()
    # under the minimum volume the rate is not judged at all
    assert _check(s.warehouse, now, AlertSettings(min_conversions=50)) == []
    (notice,) = _check(s.warehouse, now, config)
    assert notice.kind == alerts.REJECTION_RATE and not notice.recovery
    assert f"account {s.tenant.account_id}" in notice.subject
    assert "rejected 4 of the 20 conversions" in notice.text and "20.0%" in notice.text
    assert "rejected:OfflineConversionMicrosoftClickIdInvalid (4)" in notice.text
    assert "msads_replay" in notice.text  # the fix, from outcomes.words
    assert _check(s.warehouse, now + timedelta(minutes=5), config) == []  # still bad: quiet
    # an hour with too few conversions to judge leaves the incident open, unannounced
    later = now + timedelta(hours=2)
    assert _check(s.warehouse, later, config) == []
    with transaction(s.warehouse) as conn:
        assert [r["key"] for r in alerts.open_incidents(conn)] == [notice.key]


def test_the_rejection_rate_recovers_once_at_or_below_the_threshold(shop):
    s = shop
    config = AlertSettings(rejection_rate=0.05, min_conversions=20)
    for _ in range(16):
        s.event()
    for _ in range(4):
        s.event(msclkid="not-a-click-id-from-microsoft")
    s.run()
    assert len(_check(s.warehouse, s.now(), config)) == 1
    for _ in range(60):  # 4 of 80 is 5%: not above the threshold
        s.event()
    s.run()
    (recovery,) = _check(s.warehouse, s.now(), config)
    assert recovery.recovery and "rejected 4 of 80 conversions (5.0%)" in recovery.text
    assert _check(s.warehouse, s.now(), config) == []


def test_a_sign_in_expiring_within_14_days_alerts_once_and_clears_when_renewed(warehouse, emu,
                                                                             msads):
    assert msads("space", "add", "shop", "--currency", "USD", "--region", "US")[0] == 0
    assert msads("account", "link", "180000001", "--customer", "9001", "--space", "shop",
                 "--name", "Contoso")[0] == 0
    signed_in = emu_now(emu)
    store = TokenStore(warehouse)
    store.save("msads_default", PRIVATE[3], now=signed_in)
    just_before = signed_in + REFRESH_TOKEN_LIFETIME - EXPIRY_WARNING - timedelta(hours=1)
    assert _check(warehouse, just_before) == []
    (notice,) = _check(warehouse, just_before + timedelta(hours=2))
    assert notice.kind == alerts.TOKEN_EXPIRY
    assert "connection msads_default" in notice.text and "180000001 Contoso (shop)" in notice.text
    assert "msads auth login --conn-id msads_default" in notice.text
    assert PRIVATE[3] not in notice.text + notice.subject
    assert _check(warehouse, just_before + timedelta(days=3)) == []
    renewed = just_before + timedelta(days=3)
    store.save("msads_default", "a-new-refresh-token", now=renewed)
    (recovery,) = _check(warehouse, renewed + timedelta(minutes=5))
    assert recovery.recovery and recovery.key == notice.key


def test_an_account_newly_auth_failed_alerts_once_without_personal_data(warehouse, emu, msads):
    assert msads("space", "add", "shop", "--currency", "USD", "--region", "US")[0] == 0
    assert msads("account", "link", "180000001", "--customer", "9001", "--space", "shop")[0] == 0
    now = emu_now(emu)
    assert _check(warehouse, now) == []
    mark_auth_failed(warehouse, 180000001, AccountAuthError(
        f"Microsoft sign-in for connection msads_default failed: invalid_grant (AADSTS50173 "
        f"for {PRIVATE[0]}, phone {PRIVATE[1]} or {PRIVATE[2]}, token {PRIVATE[3]}, "
        f"password={PRIVATE[4]})"))
    (notice,) = _check(warehouse, now)
    assert notice.kind == alerts.AUTH_FAILED and "account 180000001" in notice.subject
    assert "invalid_grant" in notice.text and "msads auth login --conn-id msads_default" in \
        notice.text
    assert not [p for p in PRIVATE if p in notice.text + notice.subject]
    assert _check(warehouse, now + timedelta(minutes=5)) == []
    with transaction(warehouse) as conn:  # what msads auth login does
        conn.execute("UPDATE msads.accounts SET status = 'active', status_reason = NULL")
    (recovery,) = _check(warehouse, now + timedelta(minutes=10))
    assert recovery.recovery and "no longer auth_failed" in recovery.text


@pytest.mark.parametrize("private", [*PRIVATE[:4], f"password={PRIVATE[4]}",
                                     f"postgresql://msads:{PRIVATE[4]}@db/warehouse"])
def test_free_text_loses_personal_data_and_secrets_but_keeps_ids(private):
    text = alerts.scrub(f"account 180000001 failed in run 42 for {private}\nDETAIL: x")
    assert PRIVATE[4] not in text and private not in text and "DETAIL" not in text
    assert "account 180000001 failed in run 42" in text
