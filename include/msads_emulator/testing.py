"""Helpers for tests that reach the emulator through Microsoft's REST SDK (``msads``) and msal.

Typical use (one emulator per test session, state reset between tests)::

    from include.msads_emulator import Emulator
    from include.msads_emulator.testing import campaign_client, msal_app, seed_tenant

    with Emulator() as emu:                      # free port, state in memory
        tenant = seed_tenant(emu)                # customer, account, user, tokens, a goal
        cm = campaign_client(emu, tenant)        # the SDK's CampaignManagementServiceApi
        answer = cm.ApplyOfflineConversions({"OfflineConversions": [...]})
        answer.partial_errors                    # the SDK's own response model
        emu.admin.conversions()                  # what the emulator accepted
        assert_conformant(emu)                   # every answer parses strictly in the SDK

        app = msal_app(emu, tenant)              # msal ConfidentialClientApplication
        result = app.acquire_token_by_refresh_token(tenant.refresh_token, scopes=[ADS_SCOPE])

What is here:

* :class:`Tenant` and :func:`seed_tenant`: the ids and secrets of a ready-made tenant.
* :class:`RestClient`, :func:`campaign_client`, :func:`customer_client`: the SDK's generated
  API classes pointed at the emulator, with the headers a test can change (``headers``).
* :func:`strict_parse` and :func:`assert_conformant`: every response the emulator sent, read by
  the SDK's own models; a field they do not know, a wrong type or an unknown enum value fails.
* :func:`http_session`: a ``requests.Session`` that trusts the emulator's CA and ignores
  ``REQUESTS_CA_BUNDLE`` and proxy variables (``trust_env=False``); msal uses it.
* :func:`msal_app`: an msal application for the emulator's authority
  (``instance_discovery=False``, since the host is not Microsoft's).
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy imports stay out of module import
    from collections.abc import Callable

    import msal
    import requests
    from pydantic import BaseModel

    from include.msads_emulator.server import Emulator

ADS_SCOPE = "https://ads.microsoft.com/msads.manage"
CAMPAIGN = "CampaignManagementService"
CUSTOMER = "CustomerManagementService"


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


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _module(service: str) -> str:
    return "campaign" if service == CAMPAIGN else "customer"


def request_model(service: str, operation: str) -> type[Any]:
    """The SDK's request model of an operation, e.g. ``ApplyOfflineConversionsRequest``."""
    module = importlib.import_module(
        f"openapi_client.models.{_module(service)}.{_snake(operation)}_request")
    return getattr(module, f"{operation}Request")


def response_model(service: str, operation: str | None, status: int) -> type[Any]:
    """The SDK's model for an answer: the operation's response on 200, else ApplicationFault."""
    if status == 200 and operation:
        module = importlib.import_module(
            f"openapi_client.models.{_module(service)}.{_snake(operation)}_response")
        return getattr(module, f"{operation}Response")
    module = importlib.import_module(
        f"openapi_client.models.{_module(service)}.application_fault")
    return module.ApplicationFault


class RestClient:
    """One REST service of the emulator through the SDK's generated API class.

    ``headers`` holds what every call sends (``Authorization``, ``DeveloperToken``,
    ``CustomerId``, ``CustomerAccountId``); tests change or delete entries to see how the
    emulator answers. Operations are called by their Microsoft names with a request model or
    a dict of its JSON fields: ``cm.ApplyOfflineConversions({"OfflineConversions": [...]})``
    returns the SDK's response model and leaves the answer's headers in ``last_headers``.
    A fault raises the SDK's ``ApiException`` (``.status``, ``.data``: the parsed fault).
    """

    def __init__(self, emu: Emulator, service: str, tenant: Tenant | None = None, *,
                 access_token: str | None = None, account_id: int | None = None,
                 customer_id: int | None = None, developer_token: str | None = None,
                 timeout: float | None = None) -> None:
        from bingads.manifest import USER_AGENT
        from openapi_client.api_client import ApiClient
        from openapi_client.configuration import Configuration

        self.service = service
        self.timeout = timeout
        self.api_client = ApiClient(configuration=Configuration(host=emu.base_url))
        self.api_client.user_agent = USER_AGENT
        api = importlib.import_module(
            f"openapi_client.api.{_module(service)}_management_service_api")
        self.api = getattr(api, f"{_module(service).title()}ManagementServiceApi")(
            self.api_client)
        self.headers: dict[str, str] = {}
        self.last_headers: dict = {}
        self.use(tenant, access_token=access_token, account_id=account_id,
                 customer_id=customer_id, developer_token=developer_token)

    def use(self, tenant: Tenant | None = None, *, access_token: str | None = None,
            account_id: int | None = None, customer_id: int | None = None,
            developer_token: str | None = None) -> RestClient:
        """Send another tenant's (or these) credentials from now on."""
        token = access_token or (tenant.access_token if tenant else None)
        values = {
            "Authorization": f"Bearer {token}" if token else None,
            "DeveloperToken": developer_token or (tenant.developer_token if tenant else None),
            "CustomerId": customer_id if customer_id is not None else (
                tenant.customer_id if tenant else None),
            "CustomerAccountId": account_id if account_id is not None else (
                tenant.account_id if tenant else None),
        }
        if self.service == CUSTOMER:  # Customer Management reads no account headers
            values["CustomerAccountId"] = None
        self.headers = {k: str(v) for k, v in values.items() if v is not None}
        return self

    @property
    def tracking_id(self) -> str | None:
        return self.last_headers.get("TrackingId")

    def call(self, operation: str, request: BaseModel | dict | None = None) -> Any:
        model = request_model(self.service, operation)
        if request is None:
            request = model()
        elif isinstance(request, dict):
            request = model.from_dict(request)
        method = getattr(self.api, f"{_snake(operation)}_with_http_info")
        self.api_client.default_headers = {"User-Agent": self.api_client.user_agent,
                                           **self.headers}
        try:
            answer = method(request, _request_timeout=self.timeout)
        except Exception as exc:
            self.last_headers = dict(getattr(exc, "headers", None) or {})
            raise
        self.last_headers = dict(answer.headers or {})
        return answer.data

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name[:1].isupper():
            return lambda request=None: self.call(name, request)
        raise AttributeError(name)


def campaign_client(emu: Emulator, tenant: Tenant | None = None, **options) -> RestClient:
    """Campaign Management v13 (see :class:`RestClient`)."""
    return RestClient(emu, CAMPAIGN, tenant, **options)


def customer_client(emu: Emulator, tenant: Tenant | None = None, **options) -> RestClient:
    """Customer Management v13 (see :class:`RestClient`)."""
    return RestClient(emu, CUSTOMER, tenant, **options)


# -- strict parsing -----------------------------------------------------------------------------


_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _pruned(value: Any) -> Any:
    """JSON without nulls (the SDK's models omit unset fields and null list items), with
    date-times compared as instants (the SDK writes ``+00:00`` for ``Z``)."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value if v is not None]
    if isinstance(value, str) and _DATETIME.fullmatch(value):
        from datetime import UTC, datetime

        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).isoformat()
    return value


def _as_json(model: BaseModel) -> Any:
    """A model as the SDK would write it as JSON (enums and flags by name)."""
    from openapi_client.api_client import ApiClient

    return ApiClient().sanitize_for_serialization(model)


# Microsoft answers null at the index of every item an Add call refused ("For each list index
# where a conversion goal was not added, the corresponding element will be null",
# AddConversionGoals); the SDK declares the list's items non-null (List[StrictStr]) and cannot
# read such an answer (tests/emulator/test_goals.py shows it), so those nulls are not held
# against the emulator (and are missing from the model strict_parse returns).
NULL_ITEMS_THE_SDK_CANNOT_READ = {"AddConversionGoals": "ConversionGoalIds"}


def strict_parse(service: str, operation: str | None, status: int, body: str) -> Any:
    """Read one answer with the SDK's model and return it; raise AssertionError when the
    model cannot read it, or reads it differently from what was sent (a field it does not
    know is dropped, so a round trip shows it)."""
    model = response_model(service, operation, status)
    data = json.loads(body)
    nulls = NULL_ITEMS_THE_SDK_CANNOT_READ.get(operation or "") if status == 200 else None
    if nulls and isinstance(data.get(nulls), list):
        data = {**data, nulls: [v for v in data[nulls] if v is not None]}
    try:
        parsed = model.from_dict(data)
    except Exception as exc:  # pydantic's ValidationError, or an unknown Type discriminator
        raise AssertionError(f"{operation or 'fault'} HTTP {status}: the SDK's "
                             f"{model.__name__} cannot read the answer: {exc}") from exc
    again = _as_json(parsed)
    if _pruned(again) != _pruned(data):
        raise AssertionError(
            f"{operation or 'fault'} HTTP {status}: the SDK's {type(parsed).__name__} reads "
            f"{json.dumps(_pruned(again), sort_keys=True)[:600]}\n  from "
            f"{json.dumps(_pruned(data), sort_keys=True)[:600]}")
    return parsed


SERVICES = {"campaign": CAMPAIGN, "customer": CUSTOMER, "rest": CAMPAIGN}


def assert_conformant(emu: Emulator, since_id: int = 0) -> int:
    """Strictly parse every REST answer the emulator sent (after ``since_id``) with the SDK's
    models; an HTTP error page injected on purpose (``http_error``) is not a REST answer and
    is skipped. Returns how many answers were checked."""
    checked = 0
    for r in emu.admin.requests(since_id=since_id):
        service = SERVICES.get(r["service"])
        if service is None or r.get("status") is None or r.get("response") is None:
            continue
        if (r.get("outcome") or "").startswith("injected http_error"):
            continue
        strict_parse(service, r.get("operation"), int(r["status"]), r["response"])
        checked += 1
    return checked


def http_session(emu: Emulator) -> requests.Session:
    """A ``requests.Session`` that trusts the emulator's CA, whatever the environment says."""
    import requests

    session = requests.Session()
    session.verify = emu.ca_file
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override .verify
    return session


def msal_app(emu: Emulator, tenant: Tenant | None = None, *, client_id: str | None = None,
             client_secret: str | None = None, public: bool = False,
             **kwargs) -> msal.ClientApplication:
    """An msal application for the emulator's authority (confidential unless ``public``)."""
    import msal

    client_id = client_id or (tenant.client_id if tenant else None)
    common = {"authority": emu.authority, "http_client": http_session(emu),
              "instance_discovery": False, **kwargs}
    if public:
        return msal.PublicClientApplication(client_id, **common)
    secret = client_secret or (tenant.client_secret if tenant else None)
    return msal.ConfidentialClientApplication(client_id, client_credential=secret, **common)
