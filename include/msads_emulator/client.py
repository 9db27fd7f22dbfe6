"""A small Python client for the emulator's admin API (``/_emulator/...``), stdlib only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode


class AdminError(RuntimeError):
    """The admin API refused a request; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"emulator admin API answered {status}: {message}")
        self.status = status


class AdminClient:
    """Set up the emulator's world and read what it received.

    Times may be ISO 8601 text, epoch seconds, or ``{"ago": seconds}`` (relative to the
    emulator's clock). Every method returns the decoded JSON answer.
    """

    def __init__(self, admin_url: str, timeout: float = 30.0) -> None:
        self.url = admin_url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None,
             query: dict | None = None) -> Any:
        url = f"{self.url}/{path.lstrip('/')}"
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body or {}).encode() if method in ("POST", "PATCH") else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                message = exc.reason
            raise AdminError(exc.code, message) from None

    # -- general ----------------------------------------------------------------------------

    def health(self) -> dict:
        return self.call("GET", "health")

    def reset(self) -> dict:
        """Forget everything: people, tokens, goals, uploads, faults, settings and the clock."""
        return self.call("POST", "reset")

    def seed(self, **options) -> dict:
        """A ready tenant: customer, account, user with access, developer token, OAuth client,
        refresh and access token, and a day-old offline goal. Options: customer_name,
        account_name, currency, user_name, developer_token, client_id, client_secret,
        public_client, goal_name."""
        return self.call("POST", "seed", options)

    def clock(self) -> dict:
        return self.call("GET", "clock")

    def advance(self, seconds: float) -> dict:
        """Move the emulator's clock forward (tokens expire, goals age) without sleeping."""
        return self.call("POST", "clock", {"advance_seconds": seconds})

    def set_clock(self, *, offset_seconds: float | None = None, now: Any = None) -> dict:
        body = {"offset_seconds": offset_seconds} if offset_seconds is not None else {"now": now}
        return self.call("POST", "clock", body)

    def settings(self) -> dict:
        return self.call("GET", "settings")

    def update_settings(self, **changes) -> dict:
        return self.call("POST", "settings", changes)

    # -- people and accounts -----------------------------------------------------------------

    def create_customer(self, name: str | None = None, **fields) -> dict:
        return self.call("POST", "customers", {"name": name, **fields})

    def create_account(self, customer_id: int, name: str | None = None, **fields) -> dict:
        """fields: id, number, status (Active, Paused, Inactive, ...), currency."""
        return self.call("POST", "accounts", {"customer_id": customer_id, "name": name,
                                              **fields})

    def update_account(self, account_id: int, **changes) -> dict:
        return self.call("PATCH", f"accounts/{account_id}", changes)

    def create_user(self, user_name: str, *, access: list[dict] | None = None,
                    **fields) -> dict:
        """access: [{"customer_id": C}] (all its accounts) or
        [{"customer_id": C, "account_ids": [A, ...]}]."""
        return self.call("POST", "users", {"user_name": user_name, "access": access or [],
                                           **fields})

    def grant_access(self, user_id: int, customer_id: int,
                     account_ids: list[int] | None = None) -> dict:
        return self.call("POST", f"users/{user_id}/access",
                         {"customer_id": customer_id, "account_ids": account_ids})

    def create_developer_token(self, token: str | None = None) -> str:
        return self.call("POST", "developer-tokens", {"token": token})["token"]

    def create_client(self, client_id: str | None = None, client_secret: str | None = None, *,
                      public: bool = False, redirect_uris: list[str] | None = None) -> dict:
        return self.call("POST", "clients", {"client_id": client_id,
                                             "client_secret": client_secret, "public": public,
                                             "redirect_uris": redirect_uris})

    # -- tokens ------------------------------------------------------------------------------

    def issue_refresh_token(self, user_id: int, client_id: str, *, scope: str | None = None,
                            issued_at: Any = None) -> str:
        body: dict[str, Any] = {"user_id": user_id, "client_id": client_id}
        if scope:
            body["scope"] = scope
        if issued_at is not None:
            body["issued_at"] = issued_at
        return self.call("POST", "refresh-tokens", body)["refresh_token"]

    def issue_access_token(self, user_id: int, client_id: str | None = None, *,
                           lifetime_seconds: float | None = None) -> str:
        return self.call("POST", "access-tokens", {
            "user_id": user_id, "client_id": client_id,
            "lifetime_seconds": lifetime_seconds})["access_token"]

    def revoke_refresh_tokens(self, *, refresh_token: str | None = None,
                              user_id: int | None = None) -> int:
        return self.call("POST", "refresh-tokens/revoke", {
            "refresh_token": refresh_token, "user_id": user_id})["revoked"]

    def device_codes(self) -> list[dict]:
        return self.call("GET", "device-codes")

    def approve_device_code(self, user_code: str, user_id: int | None = None) -> dict:
        return self.call("POST", "device-codes/approve", {"user_code": user_code,
                                                          "user_id": user_id})

    def deny_device_code(self, user_code: str) -> dict:
        return self.call("POST", "device-codes/deny", {"user_code": user_code})

    # -- goals and clicks --------------------------------------------------------------------

    def create_goal(self, name: str, *, account_id: int | None = None,
                    customer_id: int | None = None, **fields) -> dict:
        """fields: scope, window_minutes, count_type, category, revenue_type, revenue_value,
        currency, status, enhanced_conversions (default true), externally_attributed,
        created_at (default a day ago; 5615 needs it under two hours)."""
        return self.call("POST", "goals", {"name": name, "account_id": account_id,
                                           "customer_id": customer_id, **fields})

    def update_goal(self, goal_id: int, **changes) -> dict:
        """Change a goal as a user would in the web UI. changes: status (Active, Paused),
        enhanced_conversions, externally_attributed (true/false), window_minutes,
        count_type (All, Unique)."""
        return self.call("PATCH", f"goals/{goal_id}", changes)

    def goals(self) -> list[dict]:
        return self.call("GET", "goals")

    def issue_click(self, account_id: int, *, click_time: Any = None,
                    click_id: str | None = None, hashed_email: str | None = None,
                    hashed_phone: str | None = None) -> str:
        """A click id (MSCLKID) the emulator will recognise, clicked at ``click_time``; the
        clicker's hashed email and phone (SHA-256 hex of the normalised value, as the pipeline
        sends them) let a conversion sent with only those hashes match it."""
        return self.call("POST", "clicks", {"account_id": account_id, "click_time": click_time,
                                            "click_id": click_id, "hashed_email": hashed_email,
                                            "hashed_phone": hashed_phone})["click_id"]

    def issue_clicks(self, account_id: int, count: int | None = None, *,
                     click_time: Any = None,
                     identities: list[dict[str, str | None]] | None = None) -> list[str]:
        """``count`` anonymous clicks, or one click per identity (a dict with
        ``hashed_email`` and/or ``hashed_phone``)."""
        body: dict[str, Any] = {"account_id": account_id, "click_time": click_time}
        if identities is not None:
            body["identities"] = identities
        else:
            body["count"] = count
        return [r["click_id"] for r in self.call("POST", "clicks", body)]

    # -- what arrived ------------------------------------------------------------------------

    def conversions(self, **filters) -> list[dict]:
        """Accepted conversions (filters: account_id, goal_id, request_id, click_id). Each has
        ``counted`` and ``not_counted_reason`` (None when counted; otherwise Microsoft's name
        for why, e.g. NoMatchingClickFound, OutsideGoalLookbackWindow)."""
        return self.call("GET", "conversions", query=filters)

    def duplicates(self, **filters) -> list[dict]:
        """Conversions accepted but ignored as duplicates of an earlier one."""
        return self.call("GET", "duplicates", query=filters)

    def adjustments(self, **filters) -> list[dict]:
        return self.call("GET", "adjustments", query=filters)

    def rejections(self, **filters) -> list[dict]:
        """Items answered with a BatchError (filters: operation, code, request_id)."""
        return self.call("GET", "rejections", query=filters)

    def requests(self, *, service: str | None = None, operation: str | None = None,
                 since_id: int | None = None, bodies: bool = True) -> list[dict]:
        """Every request received (REST and OAuth), with headers and bodies by default."""
        return self.call("GET", "requests", query={
            "service": service, "operation": operation, "since_id": since_id,
            "bodies": "true" if bodies else "false"})

    # -- faults -------------------------------------------------------------------------------

    def add_fault(self, kind: str, **spec) -> dict:
        """Inject a fault. kind: throttle (117), internal_error (0), adapi_error (code=...),
        operation_error (code=...), batch_error (code=...; the items holding body_contains,
        in PartialErrors or, with as_fault=True, in an ApiFaultDetail), http_error
        (http_status, an HTML page, not JSON), deserialization (100 NullRequest: a body that
        cannot be read), delay (delay_seconds). spec: operation, account_id, body_contains
        (only requests whose raw body contains this text), count (calls; default 1),
        for_seconds or until (emulator time), after_calls (let that many matching calls
        through first), http_status (400..599 for a fault; by default 401 for sign-in
        codes, 500 for code 0, else 400), error_code, message."""
        return self.call("POST", "faults", {"kind": kind, **spec})

    def faults(self) -> list[dict]:
        return self.call("GET", "faults")

    def clear_faults(self) -> dict:
        return self.call("DELETE", "faults")
