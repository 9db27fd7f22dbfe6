"""The admin API, state that survives a restart, and ``msads emulator`` from a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from include.msads_emulator import AdminClient, AdminError, Emulator
from include.msads_emulator.testing import seed_tenant
from tests.emulator.support import ago, batch_errors, conversion, upload

PROJECT = Path(__file__).resolve().parents[2]


def test_the_request_log_keeps_what_was_sent(emu, cm, tenant):
    email = "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"
    upload(cm, [conversion(tenant, ago(emu, hours=1), HashedEmailAddress=email)])
    [req] = emu.admin.requests(service="campaign", operation="ApplyOfflineConversions")
    sent = json.loads(req["body"])["OfflineConversions"][0]
    assert sent["HashedEmailAddress"] == email
    assert json.loads(req["response"]) == {"PartialErrors": []}
    assert (req["method"], req["path"]) == ("POST",
                                            "/CampaignManagement/v13/OfflineConversions/Apply")
    assert req["headers"]["user-agent"].startswith("BingAdsSDKPython")
    assert req["headers"]["authorization"] == f"Bearer {tenant.access_token}"
    assert req["account_id"] == str(tenant.account_id) and req["status"] == 200
    assert req["customer_id"] == str(tenant.customer_id)
    assert req["tracking_id"] == cm.tracking_id
    slim = emu.admin.requests(bodies=False, since_id=req["id"] - 1)
    assert "body" not in slim[0]


def test_clock_moves_and_resets(emu, tenant):
    before = emu.admin.clock()
    after = emu.admin.advance(86400)
    assert after["offset_seconds"] == before["offset_seconds"] + 86400
    assert emu.admin.set_clock(offset_seconds=0)["offset_seconds"] == 0
    emu.admin.reset()
    assert emu.admin.clock()["offset_seconds"] == 0 and emu.admin.goals() == []


def test_a_click_can_carry_its_clickers_hashed_identity(emu, tenant):
    admin = emu.admin
    email = "B4C9A289323B21A01C3E940F150EB9B8C542587F1ABFD8F0E1CC1FFC5E475514"
    issued = admin.call("POST", "clicks", {"account_id": tenant.account_id,
                                           "hashed_email": email})
    assert (issued["hashed_email"], issued["hashed_phone"]) == (email.lower(), None)
    assert len(admin.issue_clicks(tenant.account_id, identities=[
        {"hashed_email": email}, {"hashed_phone": email.lower()}])) == 2
    with pytest.raises(AdminError, match="hashed_phone must be a SHA-256"):
        admin.issue_click(tenant.account_id, hashed_phone="+14255550100")
    with pytest.raises(AdminError, match="hashed_email must be a SHA-256"):
        admin.issue_clicks(tenant.account_id, identities=[{"hashed_email": email},
                                                          {"hashed_email": "x"}])
    with pytest.raises(AdminError, match="identities must be a list"):
        admin.call("POST", "clicks", {"account_id": tenant.account_id, "count": 2,
                                      "identities": []})


def test_admin_errors_say_what_to_fix(emu, tenant):
    admin = emu.admin
    with pytest.raises(AdminError, match="does not exist"):
        admin.create_account(1)
    with pytest.raises(AdminError, match="unique per customer") as caught:
        admin.create_goal(tenant.goal_name, account_id=tenant.account_id)
    assert caught.value.status == 409
    with pytest.raises(AdminError, match="window_minutes"):
        admin.create_goal("Huge", account_id=tenant.account_id, window_minutes=200000)
    with pytest.raises(AdminError, match="status"):
        admin.create_account(tenant.customer_id, status="Asleep")
    with pytest.raises(AdminError, match="unknown setting"):
        admin.update_settings(colour="blue")
    with pytest.raises(AdminError, match="unknown setting"):
        admin.update_settings(strict_click_ids=False)  # removed: any 32-hex click id is taken
    with pytest.raises(AdminError, match="unknown setting"):
        admin.update_settings(fault_http_status=200)  # removed: REST faults have own statuses
    with pytest.raises(AdminError, match="conversion goal revenue currencies"):
        admin.create_goal("Lira", account_id=tenant.account_id, currency="TRY")
    with pytest.raises(AdminError) as caught:
        admin.call("GET", "nothing-here")
    assert caught.value.status == 404


def test_goals_change_like_in_the_web_ui(emu, cm, tenant):
    changed = emu.admin.update_goal(tenant.goal_id, status="Paused", enhanced_conversions=False,
                                    externally_attributed=True, window_minutes=1440,
                                    count_type="Unique")
    assert (changed["status"], changed["enhanced_conversions"], changed["externally_attributed"],
            changed["window_minutes"], changed["count_type"]) == ("Paused", 0, 1, 1440, "Unique")
    [goal] = cm.GetConversionGoalsByIds({
        "ConversionGoalTypes": "OfflineConversion",
        "ReturnAdditionalFields": "IsExternallyAttributed,IsEnhancedConversionsEnabled",
    }).conversion_goals
    assert (goal.status.value, goal.is_enhanced_conversions_enabled,
            goal.is_externally_attributed, goal.conversion_window_in_minutes,
            goal.count_type.value) == ("Paused", False, True, 1440, "Unique")
    assert emu.admin.update_goal(tenant.goal_id, status="Active")["status"] == "Active"


@pytest.mark.parametrize("changes, status, words", [
    ({"name": "Renamed"}, 400, "cannot change name"),
    ({"status": "Deleted"}, 400, "status must be"),
    ({"count_type": "Some"}, 400, "count_type must be"),
    ({"window_minutes": 0}, 400, "window_minutes must be"),
    ({"enhanced_conversions": "yes"}, 400, "true or false"),
])
def test_bad_goal_changes_are_refused(emu, tenant, changes, status, words):
    with pytest.raises(AdminError, match=words) as caught:
        emu.admin.update_goal(tenant.goal_id, **changes)
    assert caught.value.status == status


def test_an_unknown_goal_cannot_change(emu, tenant):
    with pytest.raises(AdminError, match="does not exist") as caught:
        emu.admin.update_goal(1, status="Paused")
    assert caught.value.status == 404


def test_conversions_read_back_whether_and_why_they_count(emu, cm, tenant):
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 7200})
    upload(cm, [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click),
                conversion(tenant, ago(emu, hours=1),
                           MicrosoftClickId="0123456789abcdef0123456789abcdef")])
    rows = emu.admin.conversions()
    assert [(r["counted"], r["not_counted_reason"]) for r in rows] == [
        (True, None), (False, "NoMatchingClickFound")]
    assert "dedup_key" not in rows[0] and "identity" not in rows[0]


def test_accounts_change_status(emu, tenant):
    changed = emu.admin.update_account(tenant.account_id, status="Paused")
    assert changed["status"] == "Pause"


def test_state_survives_a_restart(tmp_path, monkeypatch):
    state = tmp_path / "emulator.sqlite"
    with Emulator(str(state)) as first:
        tenant = seed_tenant(first)
        click = first.admin.issue_click(tenant.account_id, click_time={"ago": 7200})
        first.admin.advance(60)
        from include.msads_emulator.testing import campaign_client

        cm = campaign_client(first, tenant)
        assert batch_errors(upload(cm, [conversion(tenant, ago(first, hours=1),
                                                   MicrosoftClickId=click)])) == []
    with Emulator(str(state)) as second:
        assert second.admin.clock()["offset_seconds"] == 60
        assert [c["click_id"] for c in second.admin.conversions()] == [click]
        assert [g["name"] for g in second.admin.goals()] == [tenant.goal_name]
        token = second.store.access_token(tenant.access_token)
        assert token["user_id"] == tenant.user_id


def test_a_reset_gives_back_the_space_its_uploads_took(tmp_path):
    """What a reset deletes leaves no free pages behind (new rows would be spread over them),
    and request ids still count up from where they were."""
    from include.msads_emulator.testing import campaign_client

    state = tmp_path / "emulator.sqlite"
    with Emulator(str(state)) as emu:
        tenant = seed_tenant(emu)
        clicks = emu.admin.issue_clicks(tenant.account_id, 1000, click_time={"ago": 7200})
        upload(campaign_client(emu, tenant),
               [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=c) for c in clicks])
        db = emu.store.db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        last = emu.admin.requests(bodies=False)[-1]["id"]
        emu.admin.reset()
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert db.execute("PRAGMA page_count").fetchone()[0] < pages / 4
        again = seed_tenant(emu)
        click = emu.admin.issue_click(again.account_id, click_time={"ago": 7200})
        assert batch_errors(upload(campaign_client(emu, again), [conversion(
            again, ago(emu, hours=1), MicrosoftClickId=click)])) == []
        assert [r["id"] > last for r in emu.admin.requests(bodies=False)] == [True]


def test_a_state_file_from_before_the_reasons_and_body_faults_still_opens(tmp_path):
    import sqlite3

    from include.msads_emulator.store import Store

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE conversions (
            id INTEGER PRIMARY KEY, request_id INTEGER, item_index INTEGER, account_id INTEGER,
            customer_id INTEGER, goal_id INTEGER, conversion_name TEXT, conversion_time REAL,
            click_id TEXT, hashed_email TEXT, hashed_phone TEXT, value REAL, currency TEXT,
            external_attribution_credit REAL, external_attribution_model TEXT,
            dedup_key TEXT NOT NULL UNIQUE, counted INTEGER NOT NULL, received_at REAL NOT NULL,
            restated_value REAL, restated_currency TEXT, retracted_at REAL);
        CREATE TABLE faults (
            id INTEGER PRIMARY KEY, kind TEXT NOT NULL, operation TEXT, account_id INTEGER,
            remaining INTEGER, until REAL, http_status INTEGER, delay_seconds REAL,
            code INTEGER, error_code TEXT, message TEXT, created_at REAL NOT NULL,
            hits INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE adjustments (
            id INTEGER PRIMARY KEY, request_id INTEGER, item_index INTEGER, account_id INTEGER,
            goal_id INTEGER, conversion_name TEXT, conversion_time REAL, click_id TEXT,
            hashed_email TEXT, hashed_phone TEXT, adjustment_type TEXT, adjustment_time REAL,
            adjustment_value REAL, currency TEXT, original_id INTEGER,
            received_at REAL NOT NULL);
        INSERT INTO adjustments (id, adjustment_type, original_id, received_at)
            VALUES (1, 'Retract', 7, 0), (2, 'Retract', NULL, 0);""")
    db.close()
    store = Store(str(path))
    try:
        columns = {r["name"] for r in store.query("PRAGMA table_info(conversions)")}
        assert {"identity", "not_counted_reason"} <= columns
        faults = {r["name"] for r in store.query("PRAGMA table_info(faults)")}
        assert {"body_contains", "skip", "as_fault"} <= faults
        adjustments = store.query("SELECT id, duplicate_of, not_applied_reason "
                                  "FROM adjustments ORDER BY id")
        assert adjustments == [  # stored before the reasons: applied unless no original
            {"id": 1, "duplicate_of": None, "not_applied_reason": None},
            {"id": 2, "duplicate_of": None, "not_applied_reason": "AdjustmentOriginalNotFound"}]
    finally:
        store.close()


def test_msads_emulator_listens_within_two_seconds_and_serves_the_flow(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "MSADS_HOME": str(tmp_path)}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "include.msads_capi.cli", "emulator", "--port", "0",
         "--state", str(tmp_path / "state.sqlite"), "--seed"],
        cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = {}
        for line in proc.stdout:
            if line.startswith("listening"):
                break
            key, _, value = line.partition(" ")
            lines[key if key != "seed" else "seed"] = value.strip()
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"listening after {elapsed:.2f}s"
        admin_url = next(v.split()[-1] for k, v in lines.items() if k == "admin")
        seeded = json.loads(lines["seed"])
        admin = AdminClient(admin_url)
        health = admin.health()
        assert health["ok"] and Path(health["ca_file"]).is_file()
        assert health["authority"].startswith("https://127.0.0.1:")
        assert [g["id"] for g in admin.goals()] == [seeded["goal_id"]]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_a_port_in_use_is_a_clear_error(emu, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "MSADS_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "include.msads_capi.cli", "emulator", "--port", str(emu.port)],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "cannot listen on 127.0.0.1" in done.stderr and "--port" in done.stderr
