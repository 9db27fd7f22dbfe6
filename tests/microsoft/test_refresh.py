"""Goal refresh: goals added, renamed and deleted; accounts gone, paused or signed out."""

from __future__ import annotations

import json

import psycopg
import pytest

from include.msads_capi import spaces as cfg
from include.msads_capi.goals.refresh import refresh_account
from include.msads_capi.microsoft.faults import AccountAuthError
from include.msads_capi.microsoft.profile import profile_from_connection
from include.msads_capi.warehouse import transaction
from include.msads_emulator.testing import seed_tenant
from tests.microsoft.conftest import connection


@pytest.fixture
def linked(warehouse, tenant, msads_conn, msads):
    assert msads("space", "add", "shop", "--currency", "USD", "--region", "US")[0] == 0
    code, _, err = msads("account", "link", str(tenant.account_id), "--space", "shop")
    assert code == 0, err  # the customer id came from the profile's account list
    with transaction(warehouse) as conn:
        return cfg.get_account(conn, tenant.account_id)


def _goals(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return {r[0]: r[1:] for r in conn.execute(
            "SELECT name, missing_since IS NOT NULL FROM msads.goals")}


def _mapping_states(msads) -> dict:
    return {m["goal_id"]: m["goal_state"] for m in json.loads(msads("map", "list", "--json")[1])}


def test_refresh_tracks_added_renamed_and_deleted_goals(linked, client, warehouse, emu, tenant,
                                                       msads):
    lead = emu.admin.create_goal("Lead", account_id=tenant.account_id)
    first = refresh_account(warehouse, client, linked)
    assert first.status == "active" and sorted(first.added) == sorted([tenant.goal_name, "Lead"])
    assert msads("map", "add", "--account", str(tenant.account_id), "--goal", "lead",
                 "--event", "Lead")[0] == 0
    assert msads("map", "add", "--account", str(tenant.account_id), "--goal",
                 str(tenant.goal_id), "--event", "Purchase")[0] == 0
    assert _mapping_states(msads) == {lead["id"]: "verified", tenant.goal_id: "verified"}

    emu.store.execute("UPDATE goals SET name = 'Qualified lead' WHERE id = ?", (lead["id"],))
    emu.store.execute("DELETE FROM goals WHERE id = ?", (tenant.goal_id,))
    second = refresh_account(warehouse, client, linked)
    assert second.renamed == ["Lead -> Qualified lead"]
    assert second.disappeared == [tenant.goal_name] and second.mappings_held == 2
    assert _mapping_states(msads) == {lead["id"]: "renamed", tenant.goal_id: "missing"}
    assert _goals(warehouse.url)[tenant.goal_name] == (True,)

    mapping = [m for m in json.loads(msads("map", "list", "--json")[1])
               if m["goal_id"] == lead["id"]][0]
    code, out, _ = msads("map", "confirm", str(mapping["mapping_id"]))
    assert code == 0 and "Qualified lead" in out
    assert _mapping_states(msads)[lead["id"]] == "verified"
    # a third refresh with nothing changed holds nothing more
    assert refresh_account(warehouse, client, linked).mappings_held == 0


def test_an_account_the_profile_no_longer_reaches_becomes_not_found(linked, client, warehouse,
                                                                   emu, tenant):
    emu.store.execute("DELETE FROM accounts WHERE id = ?", (tenant.account_id,))
    summary = refresh_account(warehouse, client, linked)
    assert summary.status == "not_found"
    with transaction(warehouse) as conn:
        assert cfg.get_account(conn, tenant.account_id).status == "not_found"


def test_a_paused_account_is_paused_and_active_again_later(linked, client, warehouse, emu, tenant):
    emu.admin.update_account(tenant.account_id, status="Paused")
    assert refresh_account(warehouse, client, linked).status == "paused"
    emu.admin.update_account(tenant.account_id, status="Active")
    assert refresh_account(warehouse, client, linked).status == "active"


def test_revoked_consent_marks_the_account_auth_failed(linked, client, warehouse, emu, tenant,
                                                      msads):
    emu.admin.revoke_refresh_tokens(user_id=tenant.user_id)
    emu.admin.advance(2 * 3600)  # the access token from linking expires; the refresh is refused
    with pytest.raises(AccountAuthError):
        refresh_account(warehouse, client, linked)
    accounts = json.loads(msads("account", "list", "--json")[1])
    assert accounts[0]["status"] == "auth_failed"
    assert "msads auth login" in accounts[0]["status_reason"]
    code, out, _ = msads("auth", "status")
    assert code == 0 and "auth_failed" in out and "last error" in out


def test_two_accounts_on_two_connections(linked, warehouse, emu, tenant, make_client, monkeypatch,
                                        msads):
    other = seed_tenant(emu, customer_name="Fabrikam", user_name="ops@fabrikam.example",
                        goal_name="Store visit")
    monkeypatch.setenv("AIRFLOW_CONN_MSADS_FABRIKAM", json.dumps(connection(emu, other)))
    assert msads("account", "link", str(other.account_id), "--space", "shop", "--conn-id",
                 "msads_fabrikam")[0] == 0
    with transaction(warehouse) as conn:
        accounts = {a.account_id: a for a in cfg.list_accounts(conn)}
    for account in accounts.values():
        profile = profile_from_connection(account.conn_id, connection(
            emu, tenant if account.conn_id == "msads_default" else other))
        summary = refresh_account(warehouse, make_client(profile), account)
        assert summary.status == "active"
    names = set(_goals(warehouse.url))
    assert {tenant.goal_name, "Store visit"} <= names


def test_refresh_stores_the_goal_state_that_decides_what_may_be_sent(linked, client, warehouse,
                                                                    emu, tenant, msads):
    plain = emu.admin.create_goal("Store visit", account_id=tenant.account_id,
                                  window_minutes=7 * 1440, enhanced_conversions=False,
                                  externally_attributed=True)
    emu.admin.update_goal(plain["id"], status="Paused")
    refresh_account(warehouse, client, linked)
    goals = {g["goal_id"]: g for g in json.loads(
        msads("goal", "list", "--account", str(tenant.account_id), "--json")[1])}
    assert [goals[plain["id"]][k] for k in ("status", "window_minutes", "enhanced_conversions",
                                            "externally_attributed")] == [
        "Paused", 7 * 1440, False, True]
    assert [goals[tenant.goal_id][k] for k in ("status", "enhanced_conversions",
                                               "externally_attributed")] == [
        "Active", True, False]
    emu.admin.update_goal(plain["id"], status="Active", enhanced_conversions=True)
    refresh_account(warehouse, client, linked)
    out = msads("goal", "list", "--account", str(tenant.account_id))[1]
    assert "ENHANCED_CONVERSIONS" in out  # the table shows the flags
    goals = {g["goal_id"]: g for g in json.loads(
        msads("goal", "list", "--account", str(tenant.account_id), "--json")[1])}
    assert (goals[plain["id"]]["status"], goals[plain["id"]]["enhanced_conversions"]) == (
        "Active", True)
