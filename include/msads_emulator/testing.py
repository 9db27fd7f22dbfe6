"""Helpers for tests that reach the emulator through the real bingads SDK and msal.

Typical use (one emulator per test module, state reset between tests)::

    from include.msads_emulator import Emulator
    from include.msads_emulator.testing import campaign_client, msal_app, seed_tenant

    with Emulator() as emu:                      # free port, state in memory
        tenant = seed_tenant(emu)                # customer, account, user, tokens, a goal
        svc = campaign_client(emu, tenant)       # bingads ServiceClient, location=emulator
        errors = svc.ApplyOfflineConversions(OfflineConversions={"OfflineConversion": [...]})
        emu.admin.conversions()                  # what the emulator accepted

        app = msal_app(emu, tenant)              # msal ConfidentialClientApplication
        result = app.acquire_token_by_refresh_token(tenant.refresh_token, scopes=[ADS_SCOPE])

What is here:

* :class:`Tenant` and :func:`seed_tenant`: the ids and secrets of a ready-made tenant.
* :func:`service_client`, :func:`campaign_client`, :func:`customer_client`: bingads
  ``ServiceClient`` objects pointed at the emulator with ``location=``; the SDK's own token
  refresh is off unless an ``authentication`` that can refresh is given.
* :func:`use_tenant`: re-point an existing client (building one costs about half a second).
* :func:`http_session`: a ``requests.Session`` that trusts the emulator's CA and ignores
  ``REQUESTS_CA_BUNDLE`` and proxy variables (``trust_env=False``); msal uses it.
* :func:`msal_app`: an msal application for the emulator's authority
  (``instance_discovery=False``, since the host is not Microsoft's).
* :class:`MsalRefreshingGrant`: a bingads ``OAuthDesktopMobileAuthCodeGrant`` whose refresh goes
  through msal to the emulator, so the SDK's "109, refresh, retry once" path can be exercised.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from bingads.authorization import OAuthDesktopMobileAuthCodeGrant

if TYPE_CHECKING:  # heavy imports stay out of module import
    import requests

    from include.msads_emulator.server import Emulator

ADS_SCOPE = "https://ads.microsoft.com/msads.manage"


@dataclass(frozen=True)
class Tenant:
    """What :func:`seed_tenant` (the admin API's ``seed``) made."""

    customer_id: int
    account_id: int
    account_number: str
    user_id: int
    user_name: str
    developer_token: str
    client_id: str
    client_secret: str | None
    refresh_token: str
    access_token: str
    goal_id: int
    goal_name: str


def seed_tenant(emu: Emulator, **options) -> Tenant:
    """Create a tenant (see ``AdminClient.seed`` for the options) and return its details."""
    data = emu.admin.seed(**options)
    return Tenant(**{f.name: data[f.name] for f in fields(Tenant)})


def authorization_data(tenant: Tenant | None = None, *, access_token: str | None = None,
                       account_id: int | None = None, customer_id: int | None = None,
                       developer_token: str | None = None, authentication: Any = None):
    """bingads ``AuthorizationData`` for the tenant; every part can be overridden."""
    from bingads.authorization import (
        AuthorizationData,
        OAuthDesktopMobileAuthCodeGrant,
        OAuthTokens,
    )

    if authentication is None:
        token = access_token or (tenant.access_token if tenant else None)
        authentication = OAuthDesktopMobileAuthCodeGrant(
            tenant.client_id if tenant else "emulator-client",
            oauth_tokens=OAuthTokens(access_token=token))
    return AuthorizationData(
        account_id=account_id if account_id is not None else (tenant and tenant.account_id),
        customer_id=customer_id if customer_id is not None else (tenant and tenant.customer_id),
        developer_token=developer_token or (tenant and tenant.developer_token),
        authentication=authentication)


def use_tenant(svc, tenant: Tenant | None = None, **overrides):
    """Point an existing ``ServiceClient`` at another tenant or token, in place.

    Building a ``ServiceClient`` costs about half a second (it parses the WSDL), so tests keep
    one per module and switch what it sends: the SDK rebuilds the SOAP headers on every call.
    ``overrides`` are :func:`authorization_data`'s keywords.
    """
    fresh = authorization_data(tenant, **overrides)
    current = svc.authorization_data
    current.account_id = fresh.account_id
    current.customer_id = fresh.customer_id
    current.developer_token = fresh.developer_token
    current.authentication = fresh.authentication
    svc.refresh_oauth_tokens_automatically = isinstance(fresh.authentication,
                                                        MsalRefreshingGrant)
    return svc


def service_client(emu: Emulator, service: str, tenant: Tenant | None = None, *,
                   refresh_automatically: bool | None = None, **options):
    """A bingads ``ServiceClient`` for ``service`` talking to the emulator.

    ``options`` are :func:`authorization_data`'s keywords (access_token, account_id, ...) and
    suds options (``timeout=``...). The SDK's own refresh stays off unless the authentication
    is a :class:`MsalRefreshingGrant` (or ``refresh_automatically=True``).
    """
    from bingads import ServiceClient

    auth_keys = {"access_token", "account_id", "customer_id", "developer_token",
                 "authentication"}
    auth = {k: options.pop(k) for k in list(options) if k in auth_keys}
    location = {"CampaignManagementService": emu.campaign_url,
                "CustomerManagementService": emu.customer_url}[service]
    svc = ServiceClient(service, 13, authorization_data=authorization_data(tenant, **auth),
                        environment="production", location=location, **options)
    if refresh_automatically is None:
        refresh_automatically = isinstance(auth.get("authentication"), MsalRefreshingGrant)
    svc.refresh_oauth_tokens_automatically = refresh_automatically
    return svc


def campaign_client(emu: Emulator, tenant: Tenant | None = None, **options):
    """Campaign Management v13 ``ServiceClient`` (see :func:`service_client`)."""
    return service_client(emu, "CampaignManagementService", tenant, **options)


def customer_client(emu: Emulator, tenant: Tenant | None = None, **options):
    """Customer Management v13 ``ServiceClient`` (see :func:`service_client`)."""
    return service_client(emu, "CustomerManagementService", tenant, **options)


def http_session(emu: Emulator) -> requests.Session:
    """A ``requests.Session`` that trusts the emulator's CA, whatever the environment says."""
    import requests

    session = requests.Session()
    session.verify = emu.ca_file
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override .verify
    return session


def msal_app(emu: Emulator, tenant: Tenant | None = None, *, client_id: str | None = None,
             client_secret: str | None = None, public: bool = False, **kwargs):
    """An msal application for the emulator's authority (confidential unless ``public``)."""
    import msal

    client_id = client_id or (tenant.client_id if tenant else None)
    common = {"authority": emu.authority, "http_client": http_session(emu),
              "instance_discovery": False, **kwargs}
    if public:
        return msal.PublicClientApplication(client_id, **common)
    secret = client_secret or (tenant.client_secret if tenant else None)
    return msal.ConfidentialClientApplication(client_id, client_credential=secret, **common)


class MsalRefreshingGrant(OAuthDesktopMobileAuthCodeGrant):
    """bingads OAuth whose refresh asks msal (and so the emulator), never Microsoft.

    ``MsalRefreshingGrant(app, refresh_token, access_token=...)``; after each refresh
    ``.oauth_tokens`` holds the rotated tokens and ``refreshes`` counts them.
    """

    def __init__(self, app, refresh_token: str, access_token: str | None = None) -> None:
        from bingads.authorization import OAuthTokens

        super().__init__(app.client_id, oauth_tokens=OAuthTokens(
            access_token=access_token, refresh_token=refresh_token))
        self._app = app
        self.refreshes = 0

    def request_oauth_tokens_by_refresh_token(self, refresh_token):
        from bingads.authorization import OAuthTokens

        result = self._app.acquire_token_by_refresh_token(refresh_token, scopes=[ADS_SCOPE])
        if "access_token" not in result:
            raise RuntimeError(f"refresh failed: {result.get('error')}: "
                               f"{result.get('error_description')}")
        self.refreshes += 1
        self._oauth_tokens = OAuthTokens(result["access_token"], int(result["expires_in"]),
                                         result.get("refresh_token", refresh_token), result)
        return self._oauth_tokens
