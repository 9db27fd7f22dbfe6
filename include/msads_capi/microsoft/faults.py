"""What Microsoft's answers mean for us: retry, re-authenticate, give up on the account, or fix.

Classes (msads-api.md §3, §8):
- :class:`TransientError`: 117 CallRateExceeded (wait at least 60 s), 0 InternalError, 5612,
  2928, HTTP 5xx without a SOAP fault, timeouts and broken connections. Retry with backoff.
- :class:`TokenExpiredError`: 109 AuthenticationTokenExpired. Refresh once, then retry.
- :class:`AccountAuthError`: 105 InvalidCredentials, 106 UserIsNotAuthorized, ``invalid_grant``
  and other OAuth refusals. The account becomes ``auth_failed``; a person must reconnect.
- :class:`AccountNotFoundError`: the account id is unknown to Microsoft (1102, 1030).
- :class:`RequestError`: Microsoft refused the request as a whole: an HTTP error such as 400 or
  404, a fault that names no item (5601 more than 1,000 items, 303 a retired API version, 513
  too many ids, a message WCF could not read). Not the fault of the items in it: the uploader
  keeps them waiting and splits the request to find an item Microsoft refuses on its own.
Per-row data errors arrive as batch errors and are outcomes, not exceptions. A programming error
in our code (``AttributeError``, ``TypeError`` ...) is not classified: it is a bug, never retried.
"""

from __future__ import annotations

import socket
import ssl
import urllib.error
from dataclasses import dataclass
from xml.sax import SAXParseException

from include.msads_capi.errors import MsadsError

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
# SOAP fault codes of a request the service could not read or route: refused, not transient.
REFUSED_FAULT_CODES = ("DeserializationFailed", "ActionNotSupported", "Client")
# Exceptions that mean our own code is wrong; retrying cannot help.
BUGS = (AttributeError, TypeError, NameError, KeyError, IndexError, AssertionError)


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


class MicrosoftError(MsadsError):
    """Microsoft refused or failed a call; ``errors`` and ``tracking_id`` say how."""

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


class TransientError(MicrosoftError):
    """Worth retrying later; ``retry_after`` is the least wait Microsoft asks for (seconds)."""

    retry_after: float = 0.0


class ThrottledError(TransientError):
    retry_after = 60.0


class TokenExpiredError(MicrosoftError):
    pass


class AccountAuthError(MicrosoftError):
    """Credentials or consent are bad: retrying cannot help; a person must reconnect."""


class AccountNotFoundError(MicrosoftError):
    pass


class RequestError(MicrosoftError):
    pass


def _as_list(value) -> list:
    if value is None or isinstance(value, str):
        return []
    return value if isinstance(value, list) else [value]


def _int(value, default: int = -1) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def _text(value) -> str:
    return "" if value is None else str(value)


def fault_errors(fault) -> tuple[list[ApiError], str | None]:
    """Errors and TrackingId from a suds fault's detail (AdApiFaultDetail or ApiFaultDetail).

    A fault with neither (WCF's own ``DeserializationFailed``, ``ActionNotSupported``) gives one
    error with code -1 named after its fault code, when that says the request was refused.
    """
    detail = getattr(fault, "detail", None)
    errors, tracking = [], None
    code = _text(getattr(fault, "faultcode", None)).rsplit(":", 1)[-1]
    if detail is None or not any(getattr(detail, n, None) is not None
                                 for n in ("AdApiFaultDetail", "ApiFaultDetail")):
        if code in REFUSED_FAULT_CODES:
            errors.append(ApiError(-1, code, _text(getattr(fault, "faultstring", None))))
        return errors, tracking
    ad = getattr(detail, "AdApiFaultDetail", None)
    if ad is not None:
        tracking = _text(getattr(ad, "TrackingId", None)) or tracking
        for e in _as_list(getattr(getattr(ad, "Errors", None), "AdApiError", None)):
            errors.append(ApiError(_int(e.Code), _text(e.ErrorCode), _text(e.Message)))
    api = getattr(detail, "ApiFaultDetail", None)
    if api is not None:
        tracking = _text(getattr(api, "TrackingId", None)) or tracking
        for e in _as_list(getattr(getattr(api, "OperationErrors", None), "OperationError", None)):
            errors.append(ApiError(_int(e.Code), _text(e.ErrorCode), _text(e.Message)))
        for e in _as_list(getattr(getattr(api, "BatchErrors", None), "BatchError", None)):
            errors.append(ApiError(_int(e.Code), _text(e.ErrorCode), _text(e.Message),
                                   _int(getattr(e, "Index", None), None)))
    return errors, tracking


def classify(exc: BaseException) -> MicrosoftError | None:
    """Turn whatever the SDK raised into one of our error classes (never leaks tokens).

    None for a bug in our own code (:data:`BUGS`): the caller lets it fail the task.
    """
    if isinstance(exc, MicrosoftError):
        return exc
    if isinstance(exc, BUGS):
        return None
    from suds import WebFault

    if isinstance(exc, WebFault):
        errors, tracking = fault_errors(exc.fault)
        codes = {e.code for e in errors}
        summary = "; ".join(str(e) for e in errors[:3]) or _text(
            getattr(exc.fault, "faultstring", "SOAP fault"))
        message = f"Microsoft Advertising answered {summary}" + (
            f" (TrackingId {tracking})" if tracking else "")
        errs = tuple(errors)
        if codes & TOKEN_EXPIRED_CODES:
            return TokenExpiredError(message, errs, tracking)
        if codes & AUTH_CODES:
            return AccountAuthError(message, errs, tracking)
        if codes & ACCOUNT_NOT_FOUND_CODES:
            return AccountNotFoundError(message, errs, tracking)
        if codes & THROTTLE_CODES:
            return ThrottledError(message, errs, tracking)
        if not errors or codes & TRANSIENT_CODES:
            return TransientError(message, errs, tracking)
        return RequestError(message, errs, tracking)
    # suds raises Exception((status, reason)) for an HTTP error without a SOAP body.
    if type(exc) is Exception and exc.args and isinstance(exc.args[0], tuple):
        status, reason = (list(exc.args[0]) + [None, None])[:2]
        message = f"Microsoft Advertising answered HTTP {status} {reason}"
        if _int(status) >= 500 or _int(status) in (408, 429):
            return TransientError(message, http_status=_int(status))
        return RequestError(message, http_status=_int(status))
    if isinstance(exc, socket.timeout | TimeoutError):
        return TransientError(f"Microsoft Advertising did not answer in time ({exc})")
    if isinstance(exc, urllib.error.URLError | ConnectionError | ssl.SSLError | OSError):
        return TransientError(f"cannot reach Microsoft Advertising ({exc})")
    if isinstance(exc, SAXParseException):
        return TransientError(f"Microsoft Advertising sent an unreadable answer ({exc})")
    return RequestError(f"unexpected error calling Microsoft Advertising: "
                        f"{type(exc).__name__}: {exc}")
