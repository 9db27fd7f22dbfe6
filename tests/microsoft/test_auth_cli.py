"""`msads auth login` (device code and auth code flows) and `msads auth status`."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime, timedelta

import psycopg
import requests

from include.msads_capi import crypto
from include.msads_capi.microsoft import login
from include.msads_capi.microsoft.profile import profile_from_connection
from tests.fixtures_microsoft import connection


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stored(url: str) -> str:
    with psycopg.connect(url) as conn:
        (enc,) = conn.execute("SELECT refresh_token_enc FROM msads.oauth_tokens").fetchone()
    return crypto.decrypt(enc)


def test_device_code_login_stores_a_working_refresh_token(warehouse, emu, tenant, monkeypatch,
                                                         msads):
    public = emu.admin.create_client(public=True)
    conn = connection(emu, tenant, refresh_token=None)
    conn.update(login=public["client_id"], password=None)
    monkeypatch.setenv("AIRFLOW_CONN_MSADS_DEFAULT", json.dumps(conn))

    def approve_when_shown(message: str) -> None:
        code = re.search(r"enter the code (\S+)", message) or re.search(r"\b([A-Z0-9]{8,9})\b",
                                                                        message)
        emu.admin.approve_device_code(code.group(1).rstrip("."), user_id=tenant.user_id)

    monkeypatch.setattr("include.msads_capi.cli.microsoft.info", approve_when_shown)
    code, out, err = msads("auth", "login", "--flow", "device")
    assert code == 0, err
    assert f"signed in as {tenant.user_name}" in out
    profile = profile_from_connection("msads_default", conn)
    stored = _stored(warehouse.url)
    assert stored and stored != tenant.refresh_token
    code, out, _ = msads("account", "list", "--remote", "--json")
    assert code == 0 and json.loads(out)[0]["account_id"] == tenant.account_id
    assert profile.client_secret is None


def test_auth_code_login_with_a_localhost_redirect(warehouse, emu, tenant, monkeypatch, msads):
    port = _free_port()
    redirect = f"http://localhost:{port}/"
    client = emu.admin.create_client(redirect_uris=[redirect])
    emu.admin.update_settings(auto_approve_user_id=tenant.user_id)
    conn = connection(emu, tenant, refresh_token=None, redirect_uri=redirect)
    conn.update(login=client["client_id"], password=client["client_secret"])
    monkeypatch.setenv("AIRFLOW_CONN_MSADS_DEFAULT", json.dumps(conn))
    original = login.auth_code

    def browser(profile, say, **kw):  # the person opens the URL; the emulator redirects back
        return original(profile, say, on_url=lambda url: requests.get(
            url, verify=emu.ca_file, timeout=10), timeout=20)

    monkeypatch.setattr(login, "auth_code", browser)
    code, out, err = msads("auth", "login")
    assert code == 0, err
    assert "signed in as" in out and "Open this URL" in err
    code, out, _ = msads("auth", "status")
    assert code == 0 and f"connected as {tenant.user_name}" in out
    assert "token last refreshed" in out


def test_auth_status_warns_before_an_unused_refresh_token_expires(warehouse, msads_conn, msads):
    # 80 times 24 hours: PostgreSQL's interval '80 days' keeps the time of day in the session's
    # time zone, an hour more or less across a daylight-saving change
    issued = datetime.now(UTC) - timedelta(days=80)
    with psycopg.connect(warehouse.url) as conn:
        conn.execute("INSERT INTO msads.oauth_tokens (conn_id, refresh_token_enc, profile, "
                     "refreshed_at, refresh_token_issued_at) VALUES ('msads_default', %s, "
                     "'ana@contoso.example', %s, %s)", (crypto.encrypt("rt"), issued, issued))
    code, out, err = msads("auth", "status")
    assert code == 0 and "connected as ana@contoso.example" in out
    assert "warning: the refresh token of msads_default expires in 9 day(s)" in err
    data = json.loads(msads("auth", "status", "--json")[1])
    assert data["warning"] and data["connected"] is True


def test_login_without_a_connection_says_how_to_define_it(warehouse, monkeypatch, msads):
    monkeypatch.delenv("AIRFLOW_CONN_MSADS_OTHER", raising=False)
    code, _, err = msads("auth", "login", "--conn-id", "msads_other")
    assert code == 2 and "AIRFLOW_CONN_MSADS_OTHER" in err
