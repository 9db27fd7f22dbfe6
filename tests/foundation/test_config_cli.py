"""Every configuration command, as a person types it, including the errors they can meet."""

from __future__ import annotations

import json

import psycopg
import pytest


def _snapshot(url: str) -> list:
    with psycopg.connect(url) as conn:
        return [conn.execute(f"SELECT * FROM msads.{t} ORDER BY 1").fetchall()
                for t in ("spaces", "accounts", "goals", "mappings")]


@pytest.fixture
def shop(warehouse, msads):
    assert msads("space", "add", "shop-us", "--currency", "usd", "--region", "us")[0] == 0
    assert msads("account", "link", "1001", "--customer", "2001", "--space", "shop-us")[0] == 0
    return warehouse


def test_every_command_names_the_warehouse_it_uses(warehouse, msads):
    code, out, err = msads("space", "list")
    assert code == 0
    assert err.startswith("warehouse: MSADS_WAREHOUSE_URL (postgresql://")
    assert "no Spaces yet" in out


def test_space_add_list_set(warehouse, msads):
    code, out, _ = msads("space", "add", "shop-us", "--name", "US shop", "--currency", "usd",
                         "--region", "us")
    assert code == 0 and "CAPI is off" in out
    code, out, _ = msads("space", "list", "--json")
    assert json.loads(out) == [{"space_id": "shop-us", "name": "US shop", "currency_code": "USD",
                                "phone_region": "US", "capi_enabled": False,
                                "capi_changed_at": None}]
    code, out, _ = msads("space", "set", "shop-us", "--currency", "EUR", "--region", "DE")
    assert code == 0 and "currency EUR" in out and "phone region DE" in out
    out = msads("space", "list")[1]
    assert "EUR" in out and "DE" in out and "US shop" in out


@pytest.mark.parametrize(("args", "message"), [
    (("space", "add", "s1", "--currency", "XYZ", "--region", "US"), "not a currency Microsoft"),
    (("space", "add", "s1", "--currency", "US", "--region", "US"), "not a currency Microsoft"),
    (("space", "add", "s1", "--currency", "USD", "--region", "UK"), "United Kingdom is GB"),
    (("space", "add", "s1", "--currency", "USD", "--region", "ZZ"), "not an ISO 3166-1"),
    (("space", "add", "bad id!", "--currency", "USD", "--region", "US"), "Space id"),
    (("space", "add", "shop-us", "--currency", "USD", "--region", "US"), "already exists"),
    (("space", "set", "nope", "--currency", "USD"), "does not exist"),
    (("space", "set", "shop-us"), "nothing to change"),
    (("space", "set", "shop-us", "--currency", "EUR", "--region", "XX"), "not an ISO 3166-1"),
    (("capi", "on", "--space", "nope"), "msads space add nope"),
    (("account", "link", "abc", "--customer", "1", "--space", "shop-us"), "account id"),
    (("account", "link", "5", "--customer", "0", "--space", "shop-us"), "customer id"),
    (("account", "link", "5", "--customer", "6", "--space", "nope"), "does not exist"),
    (("account", "link", "5", "--customer", "6", "--space", "shop-us", "--conn-id", "a b"),
     "connection id"),
    (("account", "unlink", "999"), "is not linked"),
    (("map", "add", "--account", "999", "--goal", "1", "--event", "Purchase"), "is not linked"),
    (("map", "add", "--account", "1001", "--goal", "Checkout", "--event", "Purchase"),
     "have not been fetched"),
    (("map", "add", "--account", "1001", "--goal", "1", "--event", "Purchase", "--rule",
      "some"), "attributed_only"),
    (("map", "add", "--account", "1001", "--goal", "1", "--event", " "), "event name"),
    (("map", "remove", "42"), "does not exist"),
    (("map", "enable", "x"), "mapping id"),
])
def test_bad_input_is_one_clear_line_and_changes_nothing(shop, msads, args, message):
    before = _snapshot(shop.url)
    code, out, err = msads(*args)
    assert code == 2
    error_lines = [line for line in err.splitlines() if line.startswith("msads: error:")]
    assert len(error_lines) == 1 and message in error_lines[0], err
    assert out == ""
    assert _snapshot(shop.url) == before


def test_capi_off_keeps_mappings_and_status_shows_them(shop, msads):
    assert msads("map", "add", "--account", "1001", "--goal", "77", "--event", "Purchase")[0] == 0
    code, out, _ = msads("capi", "on", "--space", "shop-us")
    assert code == 0 and "is on" in out
    code, out, _ = msads("capi", "off", "--space", "shop-us")
    assert code == 0 and "1 mapping(s) kept" in out
    status = json.loads(msads("capi", "status", "--space", "shop-us", "--json")[1])
    assert status["capi_enabled"] is False and status["capi_changed_at"]
    assert [(m["event_name"], m["goal_id"]) for m in status["mappings"]] == [("Purchase", 77)]
    code, out, _ = msads("capi", "status", "--space", "shop-us")
    assert "CAPI is off" in out and "Purchase" in out


def test_account_belongs_to_one_space(shop, msads):
    msads("space", "add", "shop-eu", "--currency", "EUR", "--region", "FR")
    code, _, err = msads("account", "link", "1001", "--customer", "2001", "--space", "shop-eu")
    assert code == 2 and "linked to Space 'shop-us'" in err and "unlink" in err
    code, out, _ = msads("account", "link", "1001", "--customer", "2001", "--space", "shop-us",
                         "--conn-id", "msads_eu")
    assert code == 0 and "already linked" in out
    rows = json.loads(msads("account", "list", "--json")[1])
    assert [(r["account_id"], r["space_id"], r["conn_id"]) for r in rows] == [
        (1001, "shop-us", "msads_eu")]
    assert json.loads(msads("account", "list", "--space", "shop-eu", "--json")[1]) == []


def test_unlink_refuses_while_mapped_unless_forced(shop, msads):
    msads("map", "add", "--account", "1001", "--goal", "77", "--event", "Purchase")
    code, _, err = msads("account", "unlink", "1001")
    assert code == 2 and "1 mapping(s)" in err
    code, out, _ = msads("account", "unlink", "1001", "--force")
    assert code == 0 and "removed its 1 mapping(s)" in out
    assert json.loads(msads("map", "list", "--json")[1]) == []
    assert json.loads(msads("account", "list", "--json")[1]) == []


def test_mappings_several_goals_and_one_event_to_two_goals(shop, msads):
    for goal, event, rule in (("77", "Purchase", "all"), ("78", "Purchase", "attributed_only"),
                              ("79", "Lead", "attributed-only")):
        code, out, err = msads("map", "add", "--account", "1001", "--goal", goal, "--event",
                               event, "--rule", rule)
        assert code == 0, err
        assert "unverified" in err
    rows = json.loads(msads("map", "list", "--json")[1])
    assert [(r["event_name"], r["goal_id"], r["send_rule"], r["goal_state"]) for r in rows] == [
        ("Lead", 79, "attributed_only", "unverified"),
        ("Purchase", 77, "all", "unverified"),
        ("Purchase", 78, "attributed_only", "unverified"),
    ]
    code, _, err = msads("map", "add", "--account", "1001", "--goal", "77", "--event", "Purchase")
    assert code == 2 and "already mapped" in err
    first = rows[0]["mapping_id"]
    assert "disabled" in msads("map", "disable", str(first))[1]
    assert json.loads(msads("map", "list", "--account", "1001", "--json")[1])[0]["enabled"] is False
    assert "enabled" in msads("map", "enable", str(first))[1]
    assert "removed mapping" in msads("map", "remove", str(first))[1]
    assert len(json.loads(msads("map", "list", "--space", "shop-us", "--json")[1])) == 2


def _fetched_goals(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO msads.goals (account_id, goal_id, name, status) VALUES "
                     "(1001, 77, 'Offline purchase', 'Active'), (1001, 78, 'Lead form', 'Active')")
        conn.execute("UPDATE msads.accounts SET goals_fetched_at = now()")


def test_once_goals_are_fetched_a_goal_must_belong_to_the_account(shop, msads):
    _fetched_goals(shop.url)
    code, out, _ = msads("map", "add", "--account", "1001", "--goal", "offline purchase",
                         "--event", "Purchase")
    assert code == 0 and "goal 77 (Offline purchase)" in out
    code, _, err = msads("map", "add", "--account", "1001", "--goal", "99", "--event", "Lead")
    assert code == 2 and "not an offline conversion goal of account 1001" in err
    code, _, err = msads("map", "add", "--account", "1001", "--goal", "Nope", "--event", "Lead")
    assert code == 2 and "no offline conversion goal named 'Nope'" in err
    rows = json.loads(msads("map", "list", "--json")[1])
    assert [(r["goal_id"], r["goal_state"]) for r in rows] == [(77, "verified")]


def test_commands_ask_for_migration_on_a_new_warehouse(empty_warehouse, msads):
    code, _, err = msads("space", "list")
    assert code == 2 and "run: msads db migrate" in err
    code, out, _ = msads("db", "status", "--json")
    assert code == 0 and {r["state"] for r in json.loads(out)} == {"pending"}
    assert msads("db", "migrate")[0] == 0
    assert "nothing to migrate" in msads("db", "migrate")[1]
