"""OAuth 2.0 as the Microsoft identity platform answers it: discovery, token, device code, sign-in."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlsplit

from include.msads_emulator.store import Store, StoreError, new_user_code
from include.msads_emulator.web import (
    Request,
    Response,
    add_query,
    html_response,
    json_response,
    redirect,
)

ADS_SCOPES = ("https://ads.microsoft.com/msads.manage", "https://si.ads.microsoft.com/msads.manage")
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
DEVICE_GRANTS = ("urn:ietf:params:oauth:grant-type:device_code", "device_code")


class OAuthError(Exception):
    """An error answered as the identity platform's JSON (``error``, ``AADSTSnnnn: ...``)."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status, self.error, self.code, self.description = status, error, code, description


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _scopes(raw: str | None) -> list[str]:
    return [s for s in (raw or "").split() if s]


def _resource_scope(scopes: list[str]) -> str:
    """The Microsoft Advertising scope asked for; a bad one is ``invalid_scope``."""
    unknown = [s for s in scopes if s not in ADS_SCOPES and s not in OIDC_SCOPES]
    if unknown:
        raise OAuthError(400, "invalid_scope", 70011,
                         f"The provided request must include a 'scope' input parameter. The "
                         f"provided value for the input parameter 'scope' is not valid. The "
                         f"scope {' '.join(unknown)} is not valid.")
    ads = [s for s in scopes if s in ADS_SCOPES]
    return ads[0] if ads else ADS_SCOPES[0]


class OAuth:
    """The identity platform endpoints under ``/{tenant}/...``, backed by the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- helpers ---------------------------------------------------------------------------

    def error_response(self, err: OAuthError) -> Response:
        now = datetime.fromtimestamp(self.store.now(), UTC)
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        body = {
            "error": err.error,
            "error_description": f"AADSTS{err.code}: {err.description}\r\nTrace ID: {trace}\r\n"
                                 f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
            "error_codes": [err.code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={err.code}",
        }
        return json_response(body, err.status, {"Cache-Control": "no-store, no-cache",
                                                "Pragma": "no-cache"})

    @staticmethod
    def base(req: Request) -> str:
        return f"https://{req.host}"

    def _client(self, form: dict[str, str], req: Request, tenant: str) -> dict:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = req.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                cid, _, sec = base64.b64decode(auth[6:]).decode().partition(":")
                client_id, secret = client_id or cid, secret or sec
            except ValueError:
                pass
        if not client_id:
            raise OAuthError(400, "invalid_request", 900144, "The request body must contain "
                             "the following parameter: 'client_id'.")
        client = self.store.client(client_id)
        if client is None:
            raise OAuthError(400, "unauthorized_client", 700016,
                             f"Application with identifier '{client_id}' was not found in the "
                             f"directory '{tenant}'. This can happen if the application has not "
                             "been installed by the administrator of the tenant or consented to "
                             "by any user in the tenant. You might have sent your "
                             "authentication request to the wrong tenant.")
        if client["public"] and secret:
            raise OAuthError(401, "invalid_client", 700025, "Client is public so neither "
                             "'client_assertion' nor 'client_secret' should be presented.")
        if not client["public"]:
            if not secret:
                raise OAuthError(401, "invalid_client", 7000218, "The request body must "
                                 "contain the following parameter: 'client_assertion' or "
                                 "'client_secret'.")
            if not secrets.compare_digest(secret, client["client_secret"]):
                raise OAuthError(401, "invalid_client", 7000215,
                                 "Invalid client secret provided. Ensure the secret being sent "
                                 "in the request is the client secret value, not the client "
                                 f"secret ID, for a secret added to app '{client_id}'.")
        return client

    def _id_token(self, req: Request, user: dict, client_id: str, nonce: str | None) -> str:
        now = int(self.store.now())
        claims = {"aud": client_id, "iss": f"{self.base(req)}/{self.store.tenant_id}/v2.0",
                  "iat": now, "nbf": now, "exp": now + 3600, "name":
                  f"{user['first_name']} {user['last_name']}".strip(), "oid": user["oid"],
                  "preferred_username": user["user_name"], "sub": user["oid"],
                  "tid": self.store.tenant_id, "ver": "2.0"}
        if nonce:
            claims["nonce"] = nonce
        header = {"typ": "JWT", "alg": "RS256", "kid": "msads-emulator"}
        # Not signed with a published key: the emulator's id_tokens are for msal's cache only.
        return ".".join([_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode()),
                         _b64url(secrets.token_bytes(32))])

    def _token_response(self, req: Request, form: dict[str, str], user_id: int,
                        client_id: str, scopes: list[str], *, refresh: bool,
                        parent: str | None = None, nonce: str | None = None) -> Response:
        user = self.store.user(user_id)
        if user is None:
            raise OAuthError(400, "invalid_grant", 50034, "The user account does not exist in "
                             "the directory.")
        resource = _resource_scope(scopes)
        access = self.store.issue_access_token(user_id, client_id, resource)
        body = {"token_type": "Bearer", "scope": resource, "expires_in": access["expires_in"],
                "ext_expires_in": access["expires_in"], "access_token": access["access_token"]}
        if refresh:
            body["refresh_token"] = self.store.issue_refresh_token(
                user_id, client_id, " ".join(scopes) or resource, parent=parent)["refresh_token"]
        if "openid" in scopes:
            body["id_token"] = self._id_token(req, user, client_id, nonce)
        if form.get("client_info") == "1":
            body["client_info"] = _b64url(json.dumps(
                {"uid": user["oid"], "utid": self.store.tenant_id}).encode())
        return json_response(body, 200, {"Cache-Control": "no-store, no-cache",
                                         "Pragma": "no-cache"})

    # -- endpoints -------------------------------------------------------------------------

    def openid_configuration(self, req: Request, tenant: str) -> Response:
        base = f"{self.base(req)}/{tenant}"
        issuer_tenant = "{tenantid}" if tenant in ("common", "organizations", "consumers") \
            else tenant
        return json_response({
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                      "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token",
                                         "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{self.base(req)}/{issuer_tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce",
                                 "preferred_username", "name", "tid", "ver", "oid"],
            "tenant_region_scope": None,
            "cloud_instance_name": "microsoftonline.com",
        })

    def token(self, req: Request, tenant: str) -> Response:
        try:
            form = req.form()
            grant = form.get("grant_type", "")
            client = self._client(form, req, tenant)
            if grant == "refresh_token":
                return self._refresh(req, form, client)
            if grant == "authorization_code":
                return self._authorization_code(req, form, client)
            if grant in DEVICE_GRANTS:
                return self._device_code(req, form, client)
            if not grant:
                raise OAuthError(400, "invalid_request", 900144, "The request body must "
                                 "contain the following parameter: 'grant_type'.")
            raise OAuthError(400, "unsupported_grant_type", 70003,
                             f"The app requested an unsupported grant type '{grant}'.")
        except OAuthError as err:
            return self.error_response(err)

    def _refresh(self, req: Request, form: dict[str, str], client: dict) -> Response:
        token = form.get("refresh_token")
        if not token:
            raise OAuthError(400, "invalid_request", 900144, "The request body must contain "
                             "the following parameter: 'refresh_token'.")
        scopes = _scopes(form.get("scope"))
        _resource_scope(scopes)
        store = self.store
        with store.lock:
            rt = store.refresh_token(token)
            now = store.now()
            if rt is None:
                raise OAuthError(400, "invalid_grant", 70000, "Provided grant is invalid or "
                                 "malformed: the refresh token is not one this service issued.")
            if rt["client_id"] != client["client_id"]:
                raise OAuthError(400, "invalid_grant", 70000, "Provided grant is invalid or "
                                 "malformed: the refresh token was issued to a different "
                                 "client.")
            issued = datetime.fromtimestamp(rt["issued_at"], UTC).strftime(
                "%m/%d/%Y %H:%M:%S")
            if rt["revoked_at"] is not None:
                raise OAuthError(400, "invalid_grant", 50173,
                                 "The provided grant has expired due to it being revoked, a "
                                 "fresh auth token is needed. The user might have changed or "
                                 f"reset their password. The grant was issued on '{issued}'.")
            if now >= rt["expires_at"]:
                days = (rt["expires_at"] - rt["issued_at"]) / 86400
                raise OAuthError(400, "invalid_grant", 700082,
                                 f"The refresh token has expired due to inactivity. The token "
                                 f"was issued on {issued} and was inactive for "
                                 f"{int(days)}.00:00:00.")
            if rt["superseded_at"] is not None:
                raise OAuthError(400, "invalid_grant", 70000,
                                 "Provided grant is invalid or malformed: this refresh token "
                                 "was replaced by a newer one that has already been used. Use "
                                 "the refresh token from the latest token response.")
            policy = store.setting("refresh_token_reuse")
            store.execute("UPDATE refresh_tokens SET used_at = COALESCE(used_at, ?), "
                          "superseded_at = CASE WHEN ? THEN ? ELSE superseded_at END "
                          "WHERE token = ?", (now, policy == "single-use", now, token))
            if policy == "until-successor-used" and rt["parent"]:
                store.execute("UPDATE refresh_tokens SET superseded_at = ? WHERE token = ? AND "
                              "superseded_at IS NULL", (now, rt["parent"]))
            return self._token_response(req, form, rt["user_id"], client["client_id"],
                                        scopes or _scopes(rt["scope"]), refresh=True,
                                        parent=token)

    def _authorization_code(self, req: Request, form: dict[str, str], client: dict
                            ) -> Response:
        code = form.get("code")
        if not code:
            raise OAuthError(400, "invalid_request", 900144, "The request body must contain "
                             "the following parameter: 'code'.")
        store = self.store
        with store.lock:
            row = store.one("SELECT * FROM auth_codes WHERE code = ?", (code,))
            if row is None or row["client_id"] != client["client_id"]:
                raise OAuthError(400, "invalid_grant", 70000, "Provided grant is invalid or "
                                 "malformed: the authorization code is not valid for this "
                                 "client.")
            if row["redeemed_at"] is not None:
                raise OAuthError(400, "invalid_grant", 54005, "OAuth2 Authorization code was "
                                 "already redeemed, please retry with a new valid code or use "
                                 "an existing refresh token.")
            if store.now() >= row["expires_at"]:
                raise OAuthError(400, "invalid_grant", 70008, "The provided authorization code "
                                 "or refresh token has expired due to inactivity. Send a new "
                                 "interactive authorization request for this user and "
                                 "resource.")
            if (row["redirect_uri"] or "") != (form.get("redirect_uri") or ""):
                raise OAuthError(400, "invalid_grant", 70000, "Provided grant is invalid or "
                                 "malformed: the redirect_uri does not match the one used to "
                                 "get the authorization code.")
            if row["code_challenge"]:
                verifier = form.get("code_verifier") or ""
                if row["code_challenge_method"] == "S256":
                    computed = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
                else:
                    computed = verifier
                if not verifier or computed != row["code_challenge"]:
                    raise OAuthError(400, "invalid_grant", 501481, "The Code_Verifier does not "
                                     "match the code_challenge supplied in the authorization "
                                     "request.")
            store.execute("UPDATE auth_codes SET redeemed_at = ? WHERE code = ?",
                          (store.now(), code))
        scopes = _scopes(row["scope"])
        return self._token_response(req, form, row["user_id"], client["client_id"], scopes,
                                    refresh="offline_access" in scopes, nonce=row["nonce"])

    def _device_code(self, req: Request, form: dict[str, str], client: dict) -> Response:
        code = form.get("device_code")
        store = self.store
        with store.lock:
            row = store.one("SELECT * FROM device_codes WHERE device_code = ?", (code or "",))
            if row is None or row["client_id"] != client["client_id"]:
                raise OAuthError(400, "bad_verification_code", 70018, "Invalid verification "
                                 "code: the device_code is not one this service issued.")
            if store.now() >= row["expires_at"]:
                raise OAuthError(400, "expired_token", 70019, "Verification code expired. "
                                 "Start the device code flow again.")
            if row["status"] == "denied":
                raise OAuthError(400, "authorization_declined", 65004, "User declined to "
                                 "consent to access the app.")
            if row["status"] == "redeemed":
                raise OAuthError(400, "invalid_grant", 54005, "OAuth2 Authorization code was "
                                 "already redeemed, please retry with a new valid code.")
            if row["status"] != "approved":
                raise OAuthError(400, "authorization_pending", 70016, "OAuth 2.0 device flow "
                                 "error. Authorization is pending. Continue polling.")
            store.execute("UPDATE device_codes SET status = 'redeemed' WHERE device_code = ?",
                          (code,))
        scopes = _scopes(row["scope"])
        return self._token_response(req, form, row["user_id"], client["client_id"], scopes,
                                    refresh="offline_access" in scopes)

    def devicecode(self, req: Request, tenant: str) -> Response:
        try:
            form = req.form()
            client_id = form.get("client_id")
            if not self.store.client(client_id):
                raise OAuthError(400, "unauthorized_client", 700016,
                                 f"Application with identifier '{client_id}' was not found in "
                                 f"the directory '{tenant}'.")
            scopes = _scopes(form.get("scope"))
            _resource_scope(scopes)
        except OAuthError as err:
            return self.error_response(err)
        now = self.store.now()
        life = int(self.store.setting("device_code_lifetime_seconds"))
        device_code = "DAQABAAEAAA" + secrets.token_urlsafe(64)
        user_code = new_user_code()
        self.store.execute("INSERT INTO device_codes VALUES (?, ?, ?, ?, ?, ?, 'pending', NULL)",
                           (device_code, user_code, client_id, " ".join(scopes), now,
                            now + life))
        uri = f"{self.base(req)}/devicelogin"
        return json_response({
            "user_code": user_code, "device_code": device_code, "verification_uri": uri,
            "expires_in": life, "interval": int(self.store.setting(
                "device_code_interval_seconds")),
            "message": f"To sign in, use a web browser to open the page {uri} and enter the "
                       f"code {user_code} to authenticate.",
        })

    def decide_device_code(self, user_code: str, user_id: int | None, approve: bool) -> dict:
        """Approve or deny a pending device code (the admin API and the sign-in page)."""
        row = self.store.one("SELECT * FROM device_codes WHERE user_code = ?",
                             ((user_code or "").strip().upper().replace("-", ""),))
        if row is None:
            raise StoreError(f"no device code with user code {user_code!r}", 404)
        if row["status"] != "pending":
            raise StoreError(f"device code {user_code} is {row['status']}, not pending", 409)
        if approve:
            user_id = user_id if user_id is not None else self._default_user_id()
            if user_id is None or self.store.user(int(user_id)) is None:
                raise StoreError("say which user signs in: user_id of an existing user")
        self.store.execute("UPDATE device_codes SET status = ?, user_id = ? WHERE user_code = ?",
                           ("approved" if approve else "denied", user_id, row["user_code"]))
        return {"user_code": row["user_code"], "status": "approved" if approve else "denied",
                "user_id": user_id}

    def _default_user_id(self) -> int | None:
        auto = self.store.setting("auto_approve_user_id")
        if auto is not None:
            return int(auto)
        users = self.store.query("SELECT id FROM users ORDER BY id LIMIT 2")
        return users[0]["id"] if len(users) == 1 else None

    # -- sign-in pages -----------------------------------------------------------------------

    def authorize(self, req: Request, tenant: str) -> Response:
        params = dict(req.query)
        if req.method == "POST":
            params.update(req.form())
        client = self.store.client(params.get("client_id"))
        if client is None:
            return html_response("Sign in", "<p>AADSTS700016: Application with identifier "
                                 f"'{escape(params.get('client_id', ''))}' was not found in the "
                                 f"directory '{escape(tenant)}'.</p>", 400)
        redirect_uri = params.get("redirect_uri", "")
        if not _redirect_ok(redirect_uri, client["redirect_uris"]):
            return html_response("Sign in", f"<p>AADSTS50011: The redirect URI "
                                 f"'{escape(redirect_uri)}' specified in the request does not "
                                 "match the redirect URIs configured for the application "
                                 f"'{escape(client['client_id'])}'.</p>", 400)
        state = {"state": params["state"]} if "state" in params else {}
        if params.get("response_type") != "code":
            return redirect(add_query(redirect_uri, {
                "error": "unsupported_response_type", **state,
                "error_description": "AADSTS70005: response_type 'id_token' is not enabled for "
                                     "the application."}))
        try:
            _resource_scope(_scopes(params.get("scope")))
        except OAuthError as err:
            return redirect(add_query(redirect_uri, {
                "error": err.error, "error_description": f"AADSTS{err.code}: {err.description}",
                **state}))
        action = params.get("action")
        user_id = params.get("user_id")
        auto = self.store.setting("auto_approve_user_id")
        if action is None and auto is not None:
            action, user_id = "accept", str(auto)
        if action == "decline":
            return redirect(add_query(redirect_uri, {
                "error": "access_denied", **state,
                "error_description": "AADSTS65004: User declined to consent to access the app."}))
        if action == "accept" and user_id and self.store.user(int(user_id)):
            code = "M.C5_" + secrets.token_urlsafe(48)
            now = self.store.now()
            self.store.execute(
                "INSERT INTO auth_codes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (code, client["client_id"], int(user_id), redirect_uri, params.get("scope"),
                 params.get("nonce"), params.get("code_challenge"),
                 params.get("code_challenge_method") or ("plain" if params.get(
                     "code_challenge") else None),
                 now, now + float(self.store.setting("auth_code_lifetime_seconds"))))
            return redirect(add_query(redirect_uri, {"code": code, **state}))
        return self._sign_in_form(req, params, tenant)

    def _sign_in_form(self, req: Request, params: dict[str, str], tenant: str) -> Response:
        users = self.store.query("SELECT id, user_name FROM users ORDER BY id")
        hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                         for k, v in params.items() if k not in ("action", "user_id"))
        options = "".join(f'<option value="{u["id"]}">{escape(u["user_name"])}</option>'
                          for u in users)
        inner = (f"<p>The app <b>{escape(params.get('client_id', ''))}</b> asks to manage your "
                 "Microsoft Advertising accounts.</p>"
                 f'<form method="post" action="/{escape(tenant)}/oauth2/v2.0/authorize">{hidden}'
                 f'<label>Sign in as <select name="user_id">{options}</select></label>'
                 '<button name="action" value="accept">Accept</button>'
                 '<button name="action" value="decline">Cancel</button></form>')
        return html_response("Sign in to Microsoft Advertising (emulator)", inner)

    def devicelogin(self, req: Request) -> Response:
        if req.method == "POST":
            form = req.form()
            try:
                user_id = form.get("user_id")
                result = self.decide_device_code(form.get("user_code", ""),
                                                 int(user_id) if user_id else None,
                                                 form.get("action") != "decline")
            except (StoreError, ValueError) as exc:
                return html_response("Enter code", f"<p>{escape(str(exc))}</p>", 400)
            word = "signed in" if result["status"] == "approved" else "declined the sign-in"
            return html_response("Enter code", f"<p>You have {word}. You can close this "
                                 "window and return to the application.</p>")
        users = self.store.query("SELECT id, user_name FROM users ORDER BY id")
        options = "".join(f'<option value="{u["id"]}">{escape(u["user_name"])}</option>'
                          for u in users)
        inner = ('<form method="post" action="/devicelogin">'
                 '<label>Code <input name="user_code" autofocus></label>'
                 f'<label>Sign in as <select name="user_id">{options}</select></label>'
                 '<button name="action" value="accept">Next</button>'
                 '<button name="action" value="decline">Cancel</button></form>')
        return html_response("Enter code", inner)


def _redirect_ok(uri: str, registered: list[str]) -> bool:
    if not uri:
        return False
    if uri in registered:
        return True
    p = urlsplit(uri)
    if p.scheme != "http" or p.hostname not in ("localhost", "127.0.0.1", "::1"):
        return False
    # Like Microsoft: for a loopback redirect URI the port is not compared.
    for r in registered:
        q = urlsplit(r)
        if (q.scheme, q.hostname, q.path or "/") == (p.scheme, p.hostname, p.path or "/"):
            return True
    return False
