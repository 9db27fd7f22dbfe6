"""A Microsoft Advertising profile: the credentials and endpoints one Airflow connection holds.

Connection shape (Airflow JSON form, ``conn_type`` ``msads``)::

    {"conn_type": "msads",
     "login": "<OAuth client id>", "password": "<client secret>",
     "extra": {"developer_token": "...", "tenant": "common",
               "environment": "production" | "sandbox" | "http://127.0.0.1:8765",
               "ca_file": "/path/ca.pem",                     # only for the emulator
               "authority_host": "https://...",               # rarely: another sign-in host
               "refresh_token": "<first refresh token>",      # or use `msads auth login`
               "redirect_uri": "http://localhost:8400/"}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from include.msads_capi.errors import MsadsError

PRODUCTION_AUTHORITY_HOST = "https://login.microsoftonline.com"
SCOPES = {"production": "https://ads.microsoft.com/msads.manage",
          "sandbox": "https://si.ads.microsoft.com/msads.manage"}
# Microsoft's REST hosts (the SDK's ServiceClient.endpoints; "Web service addresses" page).
HOSTS = {
    "production": {"CampaignManagementService": "https://campaign.api.bingads.microsoft.com",
                   "CustomerManagementService": "https://clientcenter.api.bingads.microsoft.com"},
    "sandbox": {"CampaignManagementService": "https://campaign.api.sandbox.bingads.microsoft.com",
                "CustomerManagementService":
                    "https://clientcenter.api.sandbox.bingads.microsoft.com"},
}


@dataclass(frozen=True)
class Profile:
    conn_id: str
    client_id: str
    client_secret: str | None
    developer_token: str
    tenant: str = "common"
    environment: str = "production"
    authority_host: str | None = None
    ca_file: str | None = None
    refresh_token: str | None = None
    redirect_uri: str = "http://localhost:8400/"

    @property
    def is_emulator(self) -> bool:
        return self.environment.startswith(("http://", "https://"))

    @property
    def sdk_environment(self) -> str:
        return "sandbox" if self.environment == "sandbox" else "production"

    @property
    def sign_in_host(self) -> str:
        """Microsoft's sign-in host; for the emulator, its own URL over https."""
        if self.authority_host:
            return self.authority_host.rstrip("/")
        if self.is_emulator:
            return "https://" + self.environment.split("://", 1)[1].rstrip("/")
        return PRODUCTION_AUTHORITY_HOST

    @property
    def authority(self) -> str:
        return f"{self.sign_in_host}/{self.tenant}"

    @property
    def scopes(self) -> list[str]:
        return [SCOPES["sandbox" if self.environment == "sandbox" else "production"]]

    def host(self, service: str) -> str:
        """The REST host for ``service``: Microsoft's, or the emulator's URL."""
        if self.is_emulator:
            return self.environment.rstrip("/")
        return HOSTS[self.sdk_environment][service]


def profile_from_connection(conn_id: str, conn: dict) -> Profile:
    """A Profile from an Airflow connection in JSON form (dict); clear errors for gaps."""
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra.strip() else {}
        except json.JSONDecodeError as exc:
            raise MsadsError(f"connection {conn_id}: extra is not valid JSON ({exc.msg})") from exc
    client_id = conn.get("login") or extra.get("client_id")
    developer_token = extra.get("developer_token")
    missing = [name for name, value in (("client id (login)", client_id),
                                        ("developer_token (extra)", developer_token)) if not value]
    if missing:
        raise MsadsError(f"connection {conn_id} has no {' and no '.join(missing)}; set it in "
                         "Admin > Connections or in AIRFLOW_CONN_" + conn_id.upper())
    environment = (extra.get("environment") or "production").strip()
    if environment not in ("production", "sandbox") and not environment.startswith(
            ("http://", "https://")):
        raise MsadsError(f"connection {conn_id}: environment {environment!r} is not valid; use "
                         "production, sandbox, or the emulator's URL")
    return Profile(
        conn_id=conn_id, client_id=str(client_id),
        client_secret=conn.get("password") or extra.get("client_secret") or None,
        developer_token=str(developer_token), tenant=extra.get("tenant") or "common",
        environment=environment, authority_host=extra.get("authority_host") or None,
        ca_file=extra.get("ca_file") or None, refresh_token=extra.get("refresh_token") or None,
        redirect_uri=extra.get("redirect_uri") or "http://localhost:8400/")


def connection_from_value(value: str) -> dict:
    """Airflow's env-var forms (JSON, or ``msads://login:password@/?key=value``) as a dict."""
    value = value.strip()
    if value.startswith("{"):
        return json.loads(value)
    parts = urlsplit(value)
    extra = {}
    for pair in filter(None, parts.query.split("&")):
        key, _, val = pair.partition("=")
        extra[unquote(key)] = unquote(val)
    return {"conn_type": parts.scheme, "login": unquote(parts.username or ""),
            "password": unquote(parts.password or ""), "extra": extra}
