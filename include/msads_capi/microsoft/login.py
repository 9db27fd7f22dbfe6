"""Getting the first refresh token: device code (headless servers) or auth code (localhost).

Device code: the command prints a code and a URL; you sign in from any browser; the command
polls until Microsoft says yes. It needs an app registration that allows public client flows.

Authorization code: for a confidential (web) app registration with a client secret and a
``http://localhost:PORT/`` redirect URI. The command prints the sign-in URL, listens on that
port for Microsoft's redirect, and redeems the code with the client secret.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from include.msads_capi.errors import MsadsError
from include.msads_capi.microsoft.profile import Profile
from include.msads_capi.microsoft.tokens import msal_app, oauth_error


def _checked(profile: Profile, result: dict) -> dict:
    if "refresh_token" not in result:
        if "access_token" in result:
            raise MsadsError("Microsoft returned no refresh token; the app registration must "
                             "allow offline_access")
        raise oauth_error(profile, result)
    return result


def device_code(profile: Profile, say: Callable[[str], None]) -> dict:
    """Sign in with the device code flow; returns msal's token result."""
    import msal

    public = msal_app(Profile(**{**profile.__dict__, "client_secret": None}))
    assert isinstance(public, msal.PublicClientApplication)
    flow = public.initiate_device_flow(scopes=profile.scopes)
    if "user_code" not in flow:
        raise oauth_error(profile, flow)
    say(flow.get("message") or f"Open {flow['verification_uri']} and enter {flow['user_code']}")
    return _checked(profile, public.acquire_token_by_device_flow(flow))


class _RedirectCatcher(http.server.BaseHTTPRequestHandler):
    params: dict | None = None

    def do_GET(self):  # noqa: N802 - the name http.server expects
        type(self).params = dict(parse_qsl(urlsplit(self.path).query))
        ok = "code" in type(self).params
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"Signed in; you can close this tab and go back to the terminal.\n"
                         if ok else b"Sign-in did not return a code; see the terminal.\n")

    def log_message(self, *args):  # the query holds the one-time code: keep it out of logs
        pass


def auth_code(profile: Profile, say: Callable[[str], None], *, timeout: float = 300,
              on_url: Callable[[str], None] | None = None) -> dict:
    """Sign in with the authorization code flow and a localhost redirect."""
    if not profile.client_secret:
        raise MsadsError(f"connection {profile.conn_id} has no client secret; the auth code flow "
                         "is for web app registrations: use --flow device instead")
    redirect = urlsplit(profile.redirect_uri)
    if redirect.hostname not in ("localhost", "127.0.0.1") or not redirect.port:
        raise MsadsError(f"redirect_uri {profile.redirect_uri!r} must be http://localhost:PORT/ "
                         "and registered in the app registration")
    handler = type("Catcher", (_RedirectCatcher,), {"params": None})
    try:
        server = http.server.HTTPServer((redirect.hostname, redirect.port), handler)
    except OSError as exc:
        raise MsadsError(f"cannot listen on {profile.redirect_uri} ({exc.strerror}); is another "
                         "sign-in still waiting? Stop it, or set redirect_uri in the connection "
                         "to a free localhost port registered for the app") from exc
    app = msal_app(profile)
    flow = app.initiate_auth_code_flow(scopes=profile.scopes, redirect_uri=profile.redirect_uri,
                                       response_mode="query")
    server.timeout = 1
    say(f"Open this URL in a browser and sign in:\n{flow['auth_uri']}")
    if on_url:
        threading.Thread(target=on_url, args=(flow["auth_uri"],), daemon=True).start()
    waited = 0.0
    try:
        while handler.params is None and waited < timeout:
            server.handle_request()
            waited += server.timeout
    finally:
        server.server_close()
    if handler.params is None:
        raise MsadsError(f"no sign-in arrived at {profile.redirect_uri} within {timeout:.0f} s; "
                         "run the command again")
    return _checked(profile, app.acquire_token_by_auth_code_flow(flow, handler.params))


def who(result: dict) -> str | None:
    """The signed-in person as msal saw them (for ``msads auth status``)."""
    claims = result.get("id_token_claims") or {}
    return claims.get("preferred_username") or claims.get("email") or claims.get("name")
