"""Microsoft Advertising's errors as the emulator answers them: codes, BatchErrors and faults.

A :class:`Fault` is what a REST call answers instead of its response: an ``ApplicationFault``
JSON body (``AdApiFaultDetail``, ``ApiFaultDetail``, or Customer Management's ``ApiFault``) on
an HTTP error status. The shapes are the SDK's own models (``openapi_client.models``), whose
names and fields follow Microsoft's reference pages for these data objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

# From Microsoft's operation error codes page unless marked "emulator's choice":
# https://learn.microsoft.com/en-us/advertising/guides/operation-error-codes?view=bingads-13
# (5600-5627 and 303 with Microsoft's descriptions word for word).
CODES: dict[int, tuple[str, str]] = {
    0: ("InternalError", "An internal error has occurred."),
    100: ("NullRequest", "The request message is null."),
    105: ("InvalidCredentials", "Authentication failed. Either supplied credentials are invalid "
          "or the account is inactive."),
    106: ("UserIsNotAuthorized", "The user does not represent a authorized developer."),
    109: ("AuthenticationTokenExpired", "Authentication token expired. Please renew it or "
          "obtain a new token."),
    116: ("RequestMissingHeaders", "Request is missing required headers."),
    117: ("CallRateExceeded", "You have exceeded the number of calls that you are allowed to "
          "make in a minute. Please reduce the number of calls that you make per minute."),
    120: ("UserLoginAccessDenied", "The credentials are not the user's primary login."),
    303: ("ApiVersionNoLongerSupported", "This version of the Bing Ads API is no longer "
          "supported. Please migrate to the latest version of the API. For more details, visit "
          "https://go.microsoft.com/fwlink/?linkid=862106."),
    1029: ("CampaignServiceCustomerIdHasToBeSpecified", "The CustomerId header element cannot "
           "be null or empty."),
    1030: ("CampaignServiceAccountIdHasToBeSpecified", "The CustomerAccountId header element "
           "cannot be null or empty."),
    1102: ("CampaignServiceInvalidAccountId", "The account ID is invalid."),
    2928: ("CampaignServiceCustomerDataBeingMigrated", "You cannot modify data for this "
           "customer while it is under migration."),
    5314: ("InvalidConversionGoalId", "The conversion goal ID is invalid."),
    5316: ("DuplicateConversionGoalName", "Duplicate conversion goal names are not allowed."),
    5317: ("ConversionGoalNameAlreadyExists", "A conversion goal with the same name already "
           "exists for the customer."),
    5318: ("ConversionGoalIdArrayExceedsLimit", "The list of conversion goal IDs exceeds the "
           "limit."),
    5319: ("ConversionGoalNameNotPassed", "The conversion goal name is required."),
    5320: ("InvalidConversionGoalName", "The conversion goal name is invalid or too long."),
    5321: ("ConversionGoalsNotPassed", "The list of conversion goals cannot be null or empty."),
    5322: ("ConversionGoalArrayExceedsLimit", "The list of conversion goals exceeds the limit."),
    5323: ("ConversionGoalIsNull", "The conversion goal cannot be null."),
    5324: ("ConversionGoalIdIsNotNull", "The conversion goal ID must be null when you add a "
           "conversion goal."),
    5329: ("ConversionGoalTypesNotPassed", "The conversion goal types are required."),
    5331: ("ConversionGoalTypeNotMatched", "The conversion goal type does not match the goal."),
    5332: ("InvalidConversionGoalRevenueType", "The conversion goal revenue type is invalid."),
    5333: ("InvalidConversionGoalRevenueValue", "The conversion goal revenue value is invalid."),
    5337: ("InvalidConversionGoalConversionWindow", "The conversion window must be between 1 "
           "and 129600 minutes."),
    5351: ("InvalidGoalCurrencyCode", "The goal currency code is invalid."),
    5355: ("GoalCurrencyCodeIsNull", "The currency code is required for this goal type."),
    # Emulator's choice: Microsoft requires GoalCategory on Add since June 2021 but publishes
    # no code for a missing or unsuitable one.
    5364: ("InvalidCategoryForGoalType", "The goal category is missing or not valid for an "
           "offline conversion goal."),
    5600: ("OfflineConversionsNullOrEmpty", "The list of offline conversions cannot be null or "
           "empty."),
    5601: ("OfflineConversionsLimitExceeded", "The list of offline conversions exceeds the "
           "limit."),
    5602: ("OfflineConversionIsNull", "The offline conversion cannot be null."),
    5603: ("OfflineConversionMicrosoftClickIdNullOrEmpty", "The Microsoft Click Id of offline "
           "conversion cannot be null or empty."),
    5604: ("OfflineConversionMicrosoftClickIdInvalid", "The Microsoft Click Id of the offline "
           "conversion is invalid."),
    5605: ("OfflineConversionNameNullOrEmpty", "The conversion name of offline conversion cannot "
           "be null or empty."),
    5606: ("OfflineConversionNameInvalid", "The conversion name do not match an existing offline "
           "conversion goal."),
    5607: ("OfflineConversionTimeInvalid", "The conversion time of offline conversion is "
           "invalid."),
    5608: ("OfflineConversionTimeNullOrEmpty", "The conversion time of offline conversion cannot "
           "be null or empty ."),
    5609: ("OfflineConversionTimeOutOfWindow", "The conversion time is out of the conversion "
           "window."),
    5610: ("OfflineConversionValueInvalid", "The conversion value of offline conversion is "
           "invalid."),
    5611: ("OfflineConversionCurrencyCodeInvalid", "The currency code of offline conversion is "
           "invalid."),
    5612: ("OfflineConversionsApplyFailed", "Failed to send offline conversions to internal "
           "server."),
    5613: ("OfflineConversionPilotNotEnabledForCustomer", "The customer is not enabled for the "
           "offline conversion feature."),
    5614: ("FutureConversionTimeCannotBeSet", "A future conversion time cannot be set."),
    5615: ("OfflineConversionNotAcceptedForGoal", "Offline conversions cannot be accepted for "
           "the conversion goal at this time. You must wait 2 hours after the goal was created "
           "before uploading offline conversions."),
    5616: ("ConversionTimeEarlierThanClickTime", "The conversion time must be later than the "
           "click time."),
    5617: ("ClickIdDateTimeOutsideGoalConversionWindow", "The date and time for the click ID is "
           "outside the conversion window for this goal."),
    5618: ("OfflineConversionInvalidAdjustmentType", "The offline conversion adjustment type is "
           "invalid."),
    5619: ("OfflineConversionAdjustmentTimeNullOrEmpty", "The offline conversion adjustment time "
           "is empty."),
    5620: ("OfflineConversionAdjustmentTimeEarlierThanConversionTime", "The offline conversion "
           "adjustment time is earlier than conversion time."),
    5621: ("OfflineConversionAdjustmentTimeInvalid", "The offline conversion adjustment time is "
           "invalid."),
    5622: ("OfflineConversionFutureAdjustmentTimeCannotBeSet", "The offline conversion "
           "adjustment time cannot be in the future."),
    5623: ("OfflineConversionAdjustmentTimeOutOfWindow", "The offline conversion adjustment time "
           "is out of the window."),
    5624: ("OfflineConversionAdjustmentValueNotExpected", "The offline conversion adjustment "
           "value is not expected."),
    5625: ("OfflineConversionAdjustmentValueRequired", "The offline conversion adjustment value "
           "is required."),
    5626: ("OfflineConversionCurrencyValueRequired", "The offline conversion currency value is "
           "required."),
    5627: ("OfflineConversionRestateRetractNotSupported", "The offline conversion restate or "
           "retract operation is not supported."),
}


# Statuses: Microsoft documents that REST faults carry an ApplicationFault body on 400, 401, 403
# and 500 (the SDK's response maps); which code goes with which status it does not say.
# Assumed: sign-in failures 401, InternalError 500, every other fault 400.
AUTH_FAULT_CODES = frozenset({105, 106, 108, 109, 120, 122, 123, 124, 125})


def _status_for(code: int | None) -> int:
    if code in AUTH_FAULT_CODES:
        return 401
    if code == 0:
        return 500
    return 400


def _omit_none(data: dict) -> dict:
    """JSON without the unset fields: the SDK's models omit them, and so do we."""
    return {k: v for k, v in data.items() if v is not None}


@dataclass
class BatchError:
    """One item's error in PartialErrors (or a fault's BatchErrors), at its zero-based Index."""

    index: int
    code: int
    error_code: str
    message: str
    field_path: str | None = None
    details: str | None = None

    def as_json(self) -> dict:
        return _omit_none({"Code": self.code, "Details": self.details,
                           "ErrorCode": self.error_code, "FieldPath": self.field_path,
                           "Index": self.index, "Message": self.message,
                           "Type": "BatchError"})

    def as_dict(self) -> dict:
        return {"index": self.index, "code": self.code, "error_code": self.error_code,
                "message": self.message}


@dataclass
class ErrorItem:
    code: int | None
    error_code: str
    message: str
    detail: str | None = None


@dataclass
class Fault(Exception):
    """A fault to answer with instead of the operation's response.

    ``kind``: ``adapi`` (AdApiFaultDetail: sign-in, throttling, internal errors), ``api``
    (ApiFaultDetail: OperationErrors and BatchErrors), ``customer_api`` (Customer Management's
    ApiFault, whose errors have no ErrorCode).
    """

    kind: str
    errors: list[ErrorItem] = field(default_factory=list)
    batch_errors: list[BatchError] = field(default_factory=list)
    http_status: int | None = None  # None: by the first error's code (_status_for)

    def __str__(self) -> str:
        return ", ".join(f"{e.code} {e.error_code}".strip() for e in self.errors) or self.kind

    @property
    def status(self) -> int:
        if self.http_status:
            return self.http_status
        first = self.errors[0].code if self.errors else (
            self.batch_errors[0].code if self.batch_errors else None)
        return _status_for(first)

    def as_json(self, tracking_id: str) -> dict:
        if self.kind == "adapi":
            return {"TrackingId": tracking_id, "Type": "AdApiFaultDetail",
                    "Errors": [_omit_none({"Code": e.code, "Detail": e.detail,
                                           "ErrorCode": e.error_code, "Message": e.message})
                               for e in self.errors]}
        if self.kind == "customer_api":
            return {"TrackingId": tracking_id, "Type": "ApiFault",
                    "OperationErrors": [_omit_none({"Code": e.code, "Details": e.detail,
                                                    "Message": e.message})
                                        for e in self.errors]}
        return {"TrackingId": tracking_id, "Type": "ApiFaultDetail",
                "BatchErrors": [b.as_json() for b in self.batch_errors],
                "OperationErrors": [_omit_none({"Code": e.code, "Details": e.detail,
                                                "ErrorCode": e.error_code,
                                                "Message": e.message})
                                    for e in self.errors]}


def batch_error(index: int, code: int, field_path: str | None = None) -> BatchError:
    error_code, message = CODES[code]
    return BatchError(index=index, code=code, error_code=error_code, message=message,
                      field_path=field_path)


def adapi_fault(code: int | None, error_code: str, message: str,
                http_status: int | None = None) -> Fault:
    return Fault("adapi", [ErrorItem(code, error_code, message)], http_status=http_status)


def operation_fault(code: int, error_code: str, message: str,
                    batch_errors: Iterable[BatchError] = (),
                    http_status: int | None = None) -> Fault:
    return Fault("api", [ErrorItem(code, error_code, message)],
                 batch_errors=list(batch_errors), http_status=http_status)


def adapi(code: int, http_status: int | None = None) -> Fault:
    error_code, message = CODES[code]
    return adapi_fault(code, error_code, message, http_status)


def operation(code: int) -> Fault:
    error_code, message = CODES[code]
    return operation_fault(code, error_code, message)


def unreadable(message: str, http_status: int | None = None) -> Fault:
    """A request whose JSON cannot be read into the operation's request object: a value of the
    wrong type, an unknown enum value, a body that is not JSON. Assumed: ASP.NET cannot bind
    such a body, so the service sees no request at all and answers 100 NullRequest ("The
    request message is null", operation error codes page), with what could not be read as
    the error's Detail."""
    error_code, text = CODES[100]
    return Fault("adapi", [ErrorItem(100, error_code, text, message)],
                 http_status=http_status or 400)


def not_found(method: str, path: str, implemented: list[str]) -> Fault:
    """A route the service does not have: an unknown path, or a known path with another method
    than its own (POST). Assumed: 404 for both (not 405) with an AdApiFaultDetail (Microsoft
    documents neither status nor body); the Detail lists what the emulator implements."""
    return Fault("adapi", [ErrorItem(None, "NotFound",
                                     f"No operation is served at {method} {path}.",
                                     "The emulator implements: " + ", ".join(implemented))],
                 http_status=404)
