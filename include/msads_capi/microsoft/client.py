"""The calls the pipeline makes to Microsoft Advertising, through the unmodified ``bingads`` SDK.

One :class:`AdsClient` per Microsoft profile. It keeps one SOAP ``ServiceClient`` per service,
account and thread (the SDK's clients are not thread-safe, and a shared suds cache makes clients
send each other's credentials: bingads-sdk.md §6). Tokens come from :class:`TokenProvider`
(msal); the SDK's own refresh is switched off. Transient failures are retried by
:class:`RetryPolicy`; a 109 refreshes the token once and tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from include.msads_capi.microsoft.faults import (
    ROW_TRANSIENT_CODES,
    ApiError,
    RequestError,
    TokenExpiredError,
    TransientError,
    classify,
)
from include.msads_capi.microsoft.profile import Profile
from include.msads_capi.microsoft.retry import RetryPolicy
from include.msads_capi.microsoft.tokens import TokenProvider

log = logging.getLogger(__name__)

MAX_CONVERSIONS_PER_CALL = 1000
GOAL_FIELDS = "GoalCategory IsEnhancedConversionsEnabled IsExternallyAttributed"
CONVERSION_FIELDS = ("ConversionCurrencyCode", "ConversionName", "ConversionTime",
                     "ConversionValue", "HashedEmailAddress", "HashedPhoneNumber",
                     "MicrosoftClickId")


@dataclass(frozen=True)
class RemoteAccount:
    account_id: int
    name: str | None
    number: str | None
    customer_id: int | None
    status: str | None


@dataclass(frozen=True)
class RemoteGoal:
    goal_id: int
    name: str
    status: str | None
    scope: str | None
    count_type: str | None
    window_minutes: int | None
    revenue_type: str | None
    revenue_value: Decimal | None
    revenue_currency: str | None
    category: str | None
    enhanced_conversions: bool | None = None   # IsEnhancedConversionsEnabled
    externally_attributed: bool | None = None  # IsExternallyAttributed


@dataclass(frozen=True)
class RowOutcome:
    """What Microsoft said about one conversion of a call, by its position in the call."""

    index: int
    accepted: bool
    code: int | None = None
    error_code: str | None = None
    message: str | None = None

    @property
    def transient(self) -> bool:
        return not self.accepted and self.code in ROW_TRANSIENT_CODES


@dataclass(frozen=True)
class UploadResult:
    outcomes: list[RowOutcome]
    tracking_id: str | None


class _TokenAuthentication:
    """bingads authentication that puts our current access token in the SOAP header."""

    def __init__(self) -> None:
        self.token: str | None = None

    def enrich_headers(self, headers: dict) -> None:
        headers["AuthenticationToken"] = self.token


def _quiet_suds() -> None:
    """Keep suds at WARNING or above, even when the worker logs at DEBUG.

    At DEBUG suds logs every SOAP envelope: the access token, the developer token and the
    hashed email and phone of every conversion would land in task logs.
    """
    logger = logging.getLogger("suds")
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)


def _text(value) -> str | None:
    return None if value is None or str(value) == "" else str(value)


def _as_list(value) -> list:
    if value is None or isinstance(value, str):
        return []
    return value if isinstance(value, list) else [value]


def _flag(value) -> bool | None:
    """An xs:boolean as suds gives it (bool, or text when the schema type is not known)."""
    if value is None or str(value) == "":
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1")


class AdsClient:
    """Microsoft Advertising for one profile: accounts, goals, uploads, adjustments."""

    def __init__(self, profile: Profile, tokens: TokenProvider, *,
                 retry: RetryPolicy | None = None, timeout: float = 60.0) -> None:
        self.profile = profile
        self.tokens = tokens
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._local = threading.local()

    # ------------------------------------------------------------------ plumbing

    def _service(self, service: str, account_id: int | None, customer_id: int | None):
        clients = self._local.__dict__.setdefault("clients", {})
        key = (service, account_id, customer_id)
        if key not in clients:
            from bingads import AuthorizationData, ServiceClient

            _quiet_suds()
            auth = _TokenAuthentication()
            data = AuthorizationData(account_id=account_id, customer_id=customer_id,
                                     developer_token=self.profile.developer_token,
                                     authentication=auth)
            options = {"timeout": self.timeout}
            location = self.profile.location(service)
            if location:
                options["location"] = location
            client = ServiceClient(service, 13, authorization_data=data,
                                   environment=self.profile.sdk_environment, **options)
            client.refresh_oauth_tokens_automatically = False  # msal owns refresh
            clients[key] = (client, auth)
        return clients[key]

    def _call(self, service: str, operation: str, *, account_id: int | None = None,
              customer_id: int | None = None, **kwargs):
        """One operation with retries; returns (response, TrackingId)."""
        client, auth = self._service(service, account_id, customer_id)

        def attempt():
            auth.token = self.tokens.access_token()
            try:
                return self._invoke(client, operation, kwargs)
            except Exception as exc:
                if not isinstance(classify(exc), TokenExpiredError):
                    raise
                log.info("%s: access token expired; refreshing once", operation)
                auth.token = self.tokens.access_token(reject=auth.token)
                try:
                    return self._invoke(client, operation, kwargs)
                except Exception as again:
                    error = classify(again)
                    if isinstance(error, TokenExpiredError):
                        raise TransientError(str(error), error.errors,
                                             error.tracking_id) from again
                    raise

        return self.retry.call(attempt, what=f"{operation} (account {account_id})")

    @staticmethod
    def _invoke(client, operation: str, kwargs: dict):
        response = getattr(client, operation)(**kwargs)
        try:
            tracking = client.get_response_header().get("TrackingId")
        except (AttributeError, TypeError):
            tracking = None
        return response, _text(tracking)

    # ------------------------------------------------------------------ calls

    def list_accounts(self) -> list[RemoteAccount]:
        """Every ad account the signed-in user can reach."""
        response, _ = self._call("CustomerManagementService", "GetUser", UserId=None)
        user_id = response.User.Id
        accounts, page = [], 0
        while True:
            found, _ = self._call(
                "CustomerManagementService", "SearchAccounts",
                Predicates={"Predicate": [{"Field": "UserId", "Operator": "Equals",
                                           "Value": str(user_id)}]},
                Ordering=None, PageInfo={"Index": page, "Size": 1000})
            batch = _as_list(getattr(found, "AdvertiserAccount", None))
            for a in batch:
                accounts.append(RemoteAccount(
                    account_id=int(a.Id), name=_text(getattr(a, "Name", None)),
                    number=_text(getattr(a, "Number", None)),
                    customer_id=int(a.ParentCustomerId) if getattr(a, "ParentCustomerId", None)
                    is not None else None,
                    status=_text(getattr(a, "AccountLifeCycleStatus", None))))
            if len(batch) < 1000:
                return accounts
            page += 1

    def get_offline_goals(self, account_id: int, customer_id: int) -> list[RemoteGoal]:
        """All offline conversion goals the account can use, with the fields we rely on."""
        response, _ = self._call(
            "CampaignManagementService", "GetConversionGoalsByIds", account_id=account_id,
            customer_id=customer_id, ConversionGoalIds=None,
            ConversionGoalTypes="OfflineConversion", ReturnAdditionalFields=GOAL_FIELDS)
        goals = []
        container = getattr(response, "ConversionGoals", None)
        for g in _as_list(getattr(container, "ConversionGoal", None)):
            if g is None:
                continue
            revenue = getattr(g, "Revenue", None)
            value = getattr(revenue, "Value", None) if revenue is not None else None
            goals.append(RemoteGoal(
                goal_id=int(g.Id), name=str(g.Name), status=_text(getattr(g, "Status", None)),
                scope=_text(getattr(g, "Scope", None)),
                count_type=_text(getattr(g, "CountType", None)),
                window_minutes=int(g.ConversionWindowInMinutes)
                if getattr(g, "ConversionWindowInMinutes", None) is not None else None,
                revenue_type=_text(getattr(revenue, "Type", None)) if revenue else None,
                revenue_value=Decimal(str(value)) if value is not None else None,
                revenue_currency=_text(getattr(revenue, "CurrencyCode", None)) if revenue else None,
                category=_text(getattr(g, "GoalCategory", None)),
                enhanced_conversions=_flag(getattr(g, "IsEnhancedConversionsEnabled", None)),
                externally_attributed=_flag(getattr(g, "IsExternallyAttributed", None))))
        return goals

    def add_offline_goal(self, account_id: int, customer_id: int, *, name: str,
                         window_minutes: int = 43200, count_type: str = "All",
                         revenue_type: str = "VariableValue", revenue_value: float | None = 0,
                         currency: str | None = None, scope: str = "Account",
                         category: str = "Purchase") -> int:
        """Create an offline conversion goal; returns its id."""
        client, _ = self._service("CampaignManagementService", account_id, customer_id)
        goal = client.factory.create("OfflineConversionGoal")
        revenue = client.factory.create("ConversionGoalRevenue")
        for obj in (goal, revenue):  # unset enums would go out as empty elements (rejected)
            for key, _value in obj:
                obj[key] = None
        revenue.Type = revenue_type
        revenue.Value = revenue_value if revenue_type != "NoValue" else None
        revenue.CurrencyCode = currency
        goal.Name = name
        goal.ConversionWindowInMinutes = window_minutes
        goal.CountType = count_type
        goal.Scope = scope
        goal.Status = "Active"
        goal.GoalCategory = category
        goal.Revenue = revenue
        goal.IsExternallyAttributed = False
        response, tracking = self._call(
            "CampaignManagementService", "AddConversionGoals", account_id=account_id,
            customer_id=customer_id, ConversionGoals={"ConversionGoal": [goal]})
        errors = _as_list(getattr(getattr(response, "PartialErrors", None), "BatchError", None))
        if errors:
            e = errors[0]
            raise RequestError(f"Microsoft refused the goal {name!r}: {e.Code} {e.ErrorCode}: "
                               f"{e.Message}", tracking_id=tracking)
        ids = _as_list(getattr(getattr(response, "ConversionGoalIds", None), "long", None))
        if not ids or ids[0] is None:
            raise RequestError(f"Microsoft returned no id for the goal {name!r}",
                               tracking_id=tracking)
        return int(ids[0])

    def upload(self, account_id: int, customer_id: int,
               conversions: Sequence[dict]) -> UploadResult:
        """Apply up to 1,000 offline conversions; one outcome per input row, in order."""
        return self._apply("ApplyOfflineConversions", "OfflineConversions", "OfflineConversion",
                           account_id, customer_id, conversions)

    def adjust(self, account_id: int, customer_id: int,
               adjustments: Sequence[dict]) -> UploadResult:
        """Apply up to 1,000 offline conversion adjustments (Restate or Retract)."""
        return self._apply("ApplyOfflineConversionAdjustments", "OfflineConversionAdjustments",
                           "OfflineConversionAdjustment", account_id, customer_id, adjustments)

    def _apply(self, operation: str, arg: str, item: str, account_id: int, customer_id: int,
               rows: Sequence[dict]) -> UploadResult:
        if not rows:
            return UploadResult([], None)
        if len(rows) > MAX_CONVERSIONS_PER_CALL:
            raise ValueError(f"{operation} takes at most {MAX_CONVERSIONS_PER_CALL} items a call")
        payload = [{k: v for k, v in row.items() if v is not None} for row in rows]
        response, tracking = self._call("CampaignManagementService", operation,
                                        account_id=account_id, customer_id=customer_id,
                                        **{arg: {item: payload}})
        rejected: dict[int, RowOutcome] = {}
        for e in _as_list(getattr(response, "BatchError", None)):
            index = getattr(e, "Index", None)
            if index is None or not 0 <= int(index) < len(rows):
                # An error that names no row is about the whole call: refused, not the rows'
                # fault (the uploader keeps them waiting and finds out which one it was).
                error = ApiError(int(e.Code), _text(e.ErrorCode) or "", _text(e.Message) or "")
                raise RequestError(f"Microsoft Advertising answered {error} for the whole "
                                   f"request (TrackingId {tracking})", (error,), tracking)
            rejected.setdefault(int(index), RowOutcome(int(index), False, int(e.Code),
                                                       _text(e.ErrorCode), _text(e.Message)))
        return UploadResult([rejected.get(i, RowOutcome(i, True)) for i in range(len(rows))],
                            tracking)
