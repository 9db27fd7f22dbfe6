"""The identity platform endpoints through real msal (https with the emulator's CA)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from include.msads_emulator.testing import ADS_SCOPE, http_session, msal_app

REDIRECT = "http://localhost:8400"
# msal warns about query response mode and about polling sooner than the interval; both are
# what the tests mean to do.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def refresh(app, token):
    return app.acquire_token_by_refresh_token(token, scopes=[ADS_SCOPE])


def test_discovery_document(emu, tenant):
    doc = http_session(emu).get(
        f"{emu.authority}/v2.0/.well-known/openid-configuration").json()
    assert doc["token_endpoint"] == emu.token_url
    assert doc["device_authorization_endpoint"].endswith("/common/oauth2/v2.0/devicecode")
    assert doc["authorization_endpoint"].startswith("https://")


def test_a_refreshed_access_token_works_on_the_rest_services(emu, cust, tenant):
    result = refresh(msal_app(emu, tenant), tenant.refresh_token)
    assert result["token_type"] == "Bearer" and result["expires_in"] == 3600
    assert result["scope"] == ADS_SCOPE
    assert result["refresh_token"] != tenant.refresh_token
    cust.use(tenant, access_token=result["access_token"])
    assert cust.GetUser().user.id == str(tenant.user_id)
    assert emu.admin.requests(operation="GetUser")[-1]["headers"]["authorization"] == \
        f"Bearer {result['access_token']}"
    form = parse_qs(emu.admin.requests(operation="token")[-1]["body"])
    assert form["grant_type"] == ["refresh_token"]
    assert ADS_SCOPE in form["scope"][0] and "offline_access" in form["scope"][0]


def test_requests_ca_bundle_does_not_override_the_emulator_ca(emu, tenant, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    assert "access_token" in refresh(msal_app(emu, tenant), tenant.refresh_token)


def test_a_rotated_refresh_token_dies_once_its_successor_is_used(emu, tenant):
    app = msal_app(emu, tenant)
    first = refresh(app, tenant.refresh_token)["refresh_token"]
    again = refresh(app, tenant.refresh_token)  # the successor is unused: still fine
    assert "access_token" in again
    refresh(app, first)  # now the original is superseded
    stale = refresh(app, tenant.refresh_token)
    assert stale["error"] == "invalid_grant" and stale["error_codes"] == [70000]
    assert stale["error_description"].startswith("AADSTS70000: ")


def test_single_use_and_microsoft_reuse_policies(emu, tenant):
    app = msal_app(emu, tenant)
    emu.admin.update_settings(refresh_token_reuse="single-use")
    refresh(app, tenant.refresh_token)
    assert refresh(app, tenant.refresh_token)["error"] == "invalid_grant"
    emu.admin.update_settings(refresh_token_reuse="microsoft")
    token = emu.admin.issue_refresh_token(tenant.user_id, tenant.client_id)
    newer = refresh(app, token)["refresh_token"]
    refresh(app, newer)
    assert "access_token" in refresh(app, token)  # Microsoft does not revoke old tokens


def test_an_expired_refresh_token_is_invalid_grant(emu, tenant):
    emu.admin.advance(90 * 86400)
    result = refresh(msal_app(emu, tenant), tenant.refresh_token)
    assert result["error"] == "invalid_grant" and result["error_codes"] == [700082]
    assert "expired due to inactivity" in result["error_description"]


def test_every_refresh_gives_the_new_token_another_90_days(emu, tenant):
    app = msal_app(emu, tenant)
    emu.admin.advance(80 * 86400)
    token = refresh(app, tenant.refresh_token)["refresh_token"]
    emu.admin.advance(80 * 86400)
    assert "access_token" in refresh(app, token)


def test_a_revoked_refresh_token_is_invalid_grant(emu, tenant):
    assert emu.admin.revoke_refresh_tokens(user_id=tenant.user_id) == 1
    result = refresh(msal_app(emu, tenant), tenant.refresh_token)
    assert (result["error"], result["error_codes"]) == ("invalid_grant", [50173])


def test_client_authentication_errors(emu, tenant):
    wrong = refresh(msal_app(emu, tenant, client_secret="wrong"), tenant.refresh_token)
    assert (wrong["error"], wrong["error_codes"]) == ("invalid_client", [7000215])
    missing = refresh(msal_app(emu, tenant, public=True), tenant.refresh_token)
    assert (missing["error"], missing["error_codes"]) == ("invalid_client", [7000218])
    unknown = refresh(msal_app(emu, client_id="nobody", client_secret="x"),
                      tenant.refresh_token)
    assert (unknown["error"], unknown["error_codes"]) == ("unauthorized_client", [700016])
    stranger = emu.admin.create_client()
    other = refresh(msal_app(emu, client_id=stranger["client_id"],
                             client_secret=stranger["client_secret"]), tenant.refresh_token)
    assert other["error"] == "invalid_grant"


def _auth_code_flow(emu, tenant, app):
    flow = app.initiate_auth_code_flow([ADS_SCOPE], redirect_uri=REDIRECT)
    answer = http_session(emu).get(flow["auth_uri"], allow_redirects=False)
    return flow, answer


def test_auth_code_flow_with_an_auto_approved_user(emu, tenant):
    emu.admin.update_settings(auto_approve_user_id=tenant.user_id)
    app = msal_app(emu, tenant)
    flow, answer = _auth_code_flow(emu, tenant, app)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == REDIRECT
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert "access_token" in result and "refresh_token" in result
    assert result["id_token_claims"]["preferred_username"] == tenant.user_name
    # The code is single use.
    again = http_session(emu).post(emu.token_url, data={
        "client_id": tenant.client_id, "client_secret": tenant.client_secret,
        "grant_type": "authorization_code", "code": params["code"],
        "redirect_uri": REDIRECT, "code_verifier": flow["code_verifier"]}).json()
    assert again["error_codes"] == [54005]


def test_the_sign_in_form_accepts_or_declines(emu, tenant):
    app = msal_app(emu, tenant)
    flow, page = _auth_code_flow(emu, tenant, app)
    assert page.status_code == 200 and tenant.user_name in page.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(flow["auth_uri"]).query).items()}
    session = http_session(emu)
    accepted = session.post(f"{emu.authority}/oauth2/v2.0/authorize", allow_redirects=False,
                            data={**query, "action": "accept", "user_id": tenant.user_id})
    params = {k: v[0] for k, v in parse_qs(urlsplit(accepted.headers["Location"]).query).items()}
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, params)
    declined = session.post(f"{emu.authority}/oauth2/v2.0/authorize", allow_redirects=False,
                            data={**query, "action": "decline"})
    assert "error=access_denied" in declined.headers["Location"]


def test_pkce_and_redirect_uri_are_checked(emu, tenant):
    emu.admin.update_settings(auto_approve_user_id=tenant.user_id)
    app = msal_app(emu, tenant)
    flow, answer = _auth_code_flow(emu, tenant, app)
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    bad = http_session(emu).post(emu.token_url, data={
        "client_id": tenant.client_id, "client_secret": tenant.client_secret,
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": "not-the-verifier"}).json()
    assert (bad["error"], bad["error_codes"]) == ("invalid_grant", [501481])
    elsewhere = app.initiate_auth_code_flow([ADS_SCOPE], redirect_uri="https://evil.example/cb")
    page = http_session(emu).get(elsewhere["auth_uri"], allow_redirects=False)
    assert page.status_code == 400 and "AADSTS50011" in page.text


def test_device_code_flow(emu, tenant):
    client = emu.admin.create_client(public=True)
    app = msal_app(emu, client_id=client["client_id"], public=True)
    flow = app.initiate_device_flow(scopes=[ADS_SCOPE])
    assert flow["verification_uri"].endswith("/devicelogin") and flow["user_code"] in \
        flow["message"]
    pending = app.acquire_token_by_device_flow(flow, exit_condition=lambda f: True)
    assert (pending["error"], pending["error_codes"]) == ("authorization_pending", [70016])
    emu.admin.approve_device_code(flow["user_code"], tenant.user_id)
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda f: True)
    assert "access_token" in result and "refresh_token" in result


def test_device_code_sign_in_page_and_denial_and_expiry(emu, tenant):
    client = emu.admin.create_client(public=True)
    app = msal_app(emu, client_id=client["client_id"], public=True)
    session = http_session(emu)
    flow = app.initiate_device_flow(scopes=[ADS_SCOPE])
    assert session.get(flow["verification_uri"]).status_code == 200
    page = session.post(flow["verification_uri"], data={
        "user_code": flow["user_code"], "user_id": tenant.user_id, "action": "accept"})
    assert "You have signed in" in page.text
    assert "access_token" in app.acquire_token_by_device_flow(flow, exit_condition=lambda f: 1)
    denied = app.initiate_device_flow(scopes=[ADS_SCOPE])
    emu.admin.deny_device_code(denied["user_code"])
    result = app.acquire_token_by_device_flow(denied, exit_condition=lambda f: True)
    assert result["error"] == "authorization_declined"
    late = app.initiate_device_flow(scopes=[ADS_SCOPE])
    emu.admin.advance(901)
    result = app.acquire_token_by_device_flow(late, exit_condition=lambda f: True)
    assert result["error"] == "expired_token"


@pytest.mark.parametrize("form, error", [
    ({"grant_type": "password"}, "unsupported_grant_type"),
    ({"grant_type": "refresh_token", "refresh_token": "x", "scope": "https://graph.microsoft"
      ".com/.default"}, "invalid_scope"),
])
def test_token_endpoint_request_errors(emu, tenant, form, error):
    answer = http_session(emu).post(emu.token_url, data={
        "client_id": tenant.client_id, "client_secret": tenant.client_secret, **form})
    assert answer.status_code == 400 and answer.json()["error"] == error
