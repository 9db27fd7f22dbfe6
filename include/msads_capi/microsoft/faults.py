"""What Microsoft's answers mean for us: retry, re-authenticate, give up on the account, or fix.

Classes (msads-api.md §3, §8):
- :class:`TransientError`: 117 CallRateExceeded (wait at least 60 s), 0 InternalError, 5612,
  2928, HTTP 5xx (and 408, 429) without a fault body, timeouts and broken connections. Retry
  with backoff.
- :class:`TokenExpiredError`: 109 AuthenticationTokenExpired. Refresh once, then retry.
- :class:`AccountAuthError`: 105 InvalidCredentials, 106 UserIsNotAuthorized, ``invalid_grant``
  and other OAuth refusals. The account becomes ``auth_failed``; a person must reconnect.
- :class:`AccountNotFoundError`: the account id is unknown to Microsoft (1102, 1030).
- :class:`RequestError`: Microsoft refused the request as a whole: an HTTP error such as 400 or
  404, a fault that names no item (5601 more than 1,000 items, 303 a retired API version, 513
  too many ids, 100 a request body the service could not read). Not the fault of the items in
  it: the uploader keeps them waiting and splits the request to find an item Microsoft refuses
  on its own.

Over REST a fault is an HTTP 400, 401, 403 or 500 whose JSON body is an ``ApplicationFault``
(``AdApiFaultDetail``, ``ApiFaultDetail``, or Customer Management's ``ApiFault``); the SDK
raises ``openapi_client.exceptions.ApiException`` with the parsed body as ``data`` (and the text
as ``body``). The error codes are the ones the SOAP API used.
Per-row data errors arrive as batch errors and are outcomes, not exceptions. A programming error
in our code (``AttributeError``, ``TypeError`` ...) is not classified: it is a bug, never retried.
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from include.msads_capi.errors import BUGS, MsadsError, Unavailable

if TYPE_CHECKING:
    from collections.abc import Mapping

THROTTLE_CODES = {117}
TRANSIENT_CODES = {0, 5612, 2928}
TOKEN_EXPIRED_CODES = {109}
AUTH_CODES = {105, 106, 108, 120, 122, 123, 124, 125}
# 513 is CampaignServiceEntityIdsArrayExceedsLimit and 514 "ids are null or empty": requests
# Microsoft refuses, not unknown accounts (operation error codes page).
ACCOUNT_NOT_FOUND_CODES = {1102, 1030}
# A batch error with one of these codes is retried for its row: 0 InternalError, 5612 "failed to
# send offline conversions to internal server".
ROW_TRANSIENT_CODES = {0, 5612}


@dataclass(frozen=True)
class ApiError:
    """One error Microsoft reported: numeric code, symbolic code, message, batch index."""

    code: int
    error_code: str
    message: str
    index: int | None = None

    def __str__(self) -> str:
        where = f" at index {self.index}" if self.index is not None else ""
        code = f"{self.code} " if self.code >= 0 else ""
        return f"{code}{self.error_code}{where}: {self.message}"


class MicrosoftError(Exception):
    """Microsoft refused or failed a call; ``errors`` and ``tracking_id`` say how. Each kind
    below is also one of errors.py's: a person can fix it, or it may pass."""

    def __init__(self, message: str, errors: tuple[ApiError, ...] = (),
                 tracking_id: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.errors = errors
        self.tracking_id = tracking_id
        self.http_status = http_status

    @property
    def first(self) -> ApiError | None:
        return self.errors[0] if self.errors else None

    @property
    def signature(self) -> str:
        """What kind of refusal this is, the same for every request refused the same way:
        ``HTTP 404`` or ``303 ApiVersionNoLongerSupported``."""
        first = self.first
        if first is not None:
            return f"{first.code} {first.error_code}".strip() if first.code >= 0 else (
                first.error_code or type(self).__name__)
        if self.http_status:
            return f"HTTP {self.http_status}"
        return type(self).__name__


class TransientError(MicrosoftError, Unavailable):
    """Worth retrying later; ``retry_after`` is the least wait Microsoft asks for (seconds)."""

    retry_after: float = 0.0


class ThrottledError(TransientError):
    retry_after = 60.0


class TokenExpiredError(MicrosoftError):
    pass


class AccountAuthError(MicrosoftError, MsadsError):
    """Credentials or consent are bad: retrying cannot help; a person must reconnect."""


class AccountNotFoundError(MicrosoftError, MsadsError):
    pass


class RequestError(MicrosoftError, MsadsError):
    pass


def _int(value: object, default: int | None = -1) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _as_dict(data: object, body: str | None) -> dict:
    """The fault body as a dict: the JSON text as sent, else the SDK's parsed model, else {}.

    The text comes first: the SDK parses every fault with ``openapi_client.models.
    ApplicationFault``, which is the Ad Insight service's class. It knows no
    ``AdApiFaultDetail`` and returns an empty fault for one (a 105 on Campaign Management, say),
    so its ``data`` can lose the codes."""
    if body:
        try:
            parsed = json.loads(body)
        except (TypeError, ValueError):
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    if data is not None and hasattr(data, "to_dict"):
        try:
            return data.to_dict()
        except Exception:  # noqa: BLE001 - a model that cannot dump itself: nothing to read
            return {}
    return {}


def fault_errors(data: object, body: str | None = None) -> tuple[list[ApiError], str | None]:
    """Errors and TrackingId of a REST fault body (AdApiFaultDetail, ApiFaultDetail or
    ApiFault), given as the SDK's parsed model or as JSON text."""
    fault = _as_dict(data, body)
    errors = [*api_errors(fault.get("Errors")), *api_errors(fault.get("OperationErrors")),
              *api_errors(fault.get("BatchErrors"))]
    tracking = _text(fault.get("TrackingId")) or None
    return errors, tracking


def api_errors(items: list | None) -> list[ApiError]:
    """AdApiErrors, OperationErrors or BatchErrors as JSON (a BatchError keeps its Index)."""
    return [ApiError(_int(e.get("Code")), _text(e.get("ErrorCode")), _text(e.get("Message")),
                     _int(e.get("Index"), None))
            for e in items or [] if isinstance(e, dict)]


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    try:
        return _text(headers.get(name)) or None if headers else None
    except AttributeError:
        return None


# One flat table of checks in the order they must run (codes before statuses); split up, the
# order would no longer show.
def classify(exc: BaseException) -> MicrosoftError | None:  # noqa: C901
    """Turn whatever the SDK raised into one of our error classes (never leaks tokens).

    None for a bug in our own code (:data:`BUGS`): the caller lets it fail the task.
    """
    if isinstance(exc, MicrosoftError):
        return exc
    if isinstance(exc, BUGS):
        return None
    import urllib3.exceptions
    from openapi_client.exceptions import ApiException

    if isinstance(exc, ApiException):
        status = _int(exc.status, 0)
        if status == 0:  # the SDK's own wrapper around a TLS failure: no answer came
            return TransientError(f"cannot reach Microsoft Advertising ({exc.reason})")
        errors, tracking = fault_errors(exc.data, exc.body)
        tracking = tracking or _header(exc.headers, "TrackingId")
        codes = {e.code for e in errors}
        summary = "; ".join(str(e) for e in errors[:3]) or f"HTTP {status} {exc.reason or ''}"
        message = f"Microsoft Advertising answered {summary.strip()}" + (
            f" (TrackingId {tracking})" if tracking else "")
        errs = tuple(errors)
        if codes & TOKEN_EXPIRED_CODES:
            return TokenExpiredError(message, errs, tracking, status)
        if codes & AUTH_CODES:
            return AccountAuthError(message, errs, tracking, status)
        if codes & ACCOUNT_NOT_FOUND_CODES:
            return AccountNotFoundError(message, errs, tracking, status)
        if codes & THROTTLE_CODES:
            return ThrottledError(message, errs, tracking, status)
        if codes & TRANSIENT_CODES:
            return TransientError(message, errs, tracking, status)
        if not errors and (status >= 500 or status in (408, 429)):
            return TransientError(message, http_status=status)
        return RequestError(message, errs, tracking, status)
    if isinstance(exc, urllib3.exceptions.TimeoutError | socket.timeout | TimeoutError):
        return TransientError(f"Microsoft Advertising did not answer in time ({exc})")
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | ssl.SSLError | OSError):
        return TransientError(f"cannot reach Microsoft Advertising ({exc})")
    if isinstance(exc, ValueError) and type(exc).__module__.startswith("json"):
        return TransientError(f"Microsoft Advertising sent an unreadable answer ({exc})")
    return RequestError(f"unexpected error calling Microsoft Advertising: "
                        f"{type(exc).__name__}: {exc}")
