"""The admin JSON API under ``/_emulator/``: set up the world, inject faults, read what arrived."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from include.msads_emulator.campaign import (
    ATTRIBUTION_MODELS,
    COUNT_TYPES,
    GOAL_STATUSES,
    MAX_WINDOW_MINUTES,
    OFFLINE_GOAL_CATEGORIES,
    REVENUE_TYPES,
)
from include.msads_emulator.currencies import CONVERSION_GOAL_REVENUE_CURRENCIES
from include.msads_emulator.errors import CODES
from include.msads_emulator.oauth import OAuth
from include.msads_emulator.offline import HEX64
from include.msads_emulator.store import Store, StoreError
from include.msads_emulator.timeutil import DAY, iso, parse_admin_time
from include.msads_emulator.web import Request, Response, json_response

PREFIX = "/_emulator"
FAULT_KINDS = ("throttle", "internal_error", "adapi_error", "operation_error", "batch_error",
               "http_error", "deserialization", "delay")
FAULT_SPEC = ("kind", "operation", "account_id", "body_contains", "count", "for_seconds", "until",
              "after_calls", "http_status", "delay_seconds", "code", "error_code", "message",
              "as_fault")
DEFAULT_SCOPE = "https://ads.microsoft.com/msads.manage offline_access openid profile"


def _identity(body: Any) -> tuple[str | None, str | None]:
    """A clicker's (hashed_email, hashed_phone): each SHA-256 as 64 hexadecimal digits, or
    absent."""
    if not isinstance(body, dict):
        raise StoreError("an identity is an object with hashed_email and/or hashed_phone")
    found = []
    for key in ("hashed_email", "hashed_phone"):
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or not HEX64.fullmatch(value)):
            raise StoreError(f"{key} must be a SHA-256 as 64 hexadecimal digits")
        found.append(value)
    return found[0], found[1]


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StoreError(f"{what} must be a whole number, not {value!r}") from None


def _window(value: Any) -> int:
    window = _int(value, "window_minutes")
    if not 1 <= window <= MAX_WINDOW_MINUTES:
        raise StoreError(f"window_minutes must be 1..{MAX_WINDOW_MINUTES}")
    return window


GOAL_CHANGES = ("status", "enhanced_conversions", "externally_attributed", "window_minutes",
                "count_type")


def _times(row: dict, *keys: str) -> dict:
    return {**row, **{k: iso(row[k]) for k in keys if k in row}}


class Admin:
    """Routes ``/_emulator/...`` requests to the store; answers JSON."""

    def __init__(self, store: Store, oauth: OAuth, urls: Callable[[], dict]) -> None:
        self.store = store
        self.oauth = oauth
        self.urls = urls
        r = self._route
        self.routes: list[tuple[str, re.Pattern, Callable]] = [
            r("GET", "health", self.health),
            r("POST", "reset", self.reset),
            r("GET", "clock", self.get_clock),
            r("POST", "clock", self.set_clock),
            r("GET", "settings", lambda req: self.store.settings()),
            r("POST", "settings", lambda req: self.store.update_settings(req.json())),
            r("POST", "seed", self.seed),
            r("GET", "customers", lambda req: self.store.query("SELECT * FROM customers")),
            r("POST", "customers", self.create_customer),
            r("GET", "accounts", lambda req: self.store.query("SELECT * FROM accounts")),
            r("POST", "accounts", self.create_account),
            r("PATCH", r"accounts/(\d+)", self.update_account),
            r("GET", "users", self.list_users),
            r("POST", "users", self.create_user),
            r("POST", r"users/(\d+)/access", self.grant_access),
            r("POST", "developer-tokens", self.create_developer_token),
            r("GET", "clients", self.list_clients),
            r("POST", "clients", self.create_client),
            r("POST", "refresh-tokens", self.issue_refresh_token),
            r("POST", "refresh-tokens/revoke", self.revoke_refresh_tokens),
            r("POST", "access-tokens", self.issue_access_token),
            r("GET", "goals", self.list_goals),
            r("POST", "goals", self.create_goal),
            r("PATCH", r"goals/(\d+)", self.update_goal),
            r("POST", "clicks", self.issue_clicks),
            r("GET", "conversions", self.list_conversions),
            r("GET", "duplicates", self.list_duplicates),
            r("GET", "adjustments", self.list_adjustments),
            r("GET", "rejections", self.list_rejections),
            r("GET", "requests", self.list_requests),
            r("GET", "faults", lambda req: self.store.query("SELECT * FROM faults ORDER BY id")),
            r("POST", "faults", self.add_fault),
            r("DELETE", "faults", self.clear_faults),
            r("DELETE", r"faults/(\d+)", self.delete_fault),
            r("GET", "device-codes", self.list_device_codes),
            r("POST", "device-codes/approve", lambda req: self._decide(req, True)),
            r("POST", "device-codes/deny", lambda req: self._decide(req, False)),
        ]

    @staticmethod
    def _route(method: str, pattern: str, fn: Callable) -> tuple[str, re.Pattern, Callable]:
        return method, re.compile(f"{PREFIX}/{pattern}/?"), fn

    def handle(self, req: Request) -> Response:
        allowed = []
        for method, pattern, fn in self.routes:
            m = pattern.fullmatch(req.path)
            if not m:
                continue
            if method != req.method:
                allowed.append(method)
                continue
            try:
                result = fn(req, *m.groups())
            except StoreError as exc:
                return json_response({"error": str(exc)}, exc.status)
            except (ValueError, KeyError, TypeError) as exc:
                return json_response({"error": f"bad request: {exc}"}, 400)
            return json_response(result)
        if allowed:
            return json_response({"error": f"{req.method} is not allowed here; use "
                                  f"{', '.join(sorted(set(allowed)))}"}, 405)
        return json_response({"error": f"no admin endpoint {req.path}; see docs/emulator.md"},
                             404)

    # -- general ----------------------------------------------------------------------------

    def health(self, req: Request) -> dict:
        return {"ok": True, **self.urls(), "clock": self.store.clock()}

    def reset(self, req: Request) -> dict:
        self.store.reset()
        return {"ok": True}

    def get_clock(self, req: Request) -> dict:
        return self.store.clock()

    def set_clock(self, req: Request) -> dict:
        body = req.json()
        if "offset_seconds" in body:
            self.store.set_offset(float(body["offset_seconds"]))
        elif "advance_seconds" in body:
            self.store.set_offset(self.store.offset + float(body["advance_seconds"]))
        elif "now" in body:
            target = parse_admin_time(body["now"], self.store.now())
            self.store.set_offset(self.store.offset + target - self.store.now())
        else:
            raise StoreError("give offset_seconds, advance_seconds or now")
        return self.store.clock()

    def seed(self, req: Request) -> dict:
        """A ready-to-use tenant: customer, account, user, developer token, client, tokens, goal."""
        body = req.json()
        s = self.store
        customer = s.create_customer(body.get("customer_name", "Contoso (emulator)"))
        account = s.create_account(customer["id"], body.get("account_name", "Contoso Web"),
                                   currency=body.get("currency", "USD"))
        users = s.query("SELECT COUNT(*) AS n FROM users")[0]["n"]
        user = s.create_user(body.get("user_name", f"advertiser{users + 1}@contoso.example"),
                             first_name="Alex", last_name="Advertiser",
                             access=[{"customer_id": customer["id"]}])
        developer_token = s.create_developer_token(body.get("developer_token"))["token"]
        client = s.create_client(body.get("client_id"), body.get("client_secret"),
                                 public=bool(body.get("public_client", False)))
        refresh = s.issue_refresh_token(user["id"], client["client_id"], DEFAULT_SCOPE)
        access = s.issue_access_token(user["id"], client["client_id"])
        goal = self._insert_goal({"account_id": account["id"],
                                  "name": body.get("goal_name", "Offline purchase")})
        return {"customer_id": customer["id"], "account_id": account["id"],
                "account_number": account["number"], "user_id": user["id"],
                "user_name": user["user_name"], "developer_token": developer_token,
                "client_id": client["client_id"], "client_secret": client["client_secret"],
                "refresh_token": refresh["refresh_token"],
                "access_token": access["access_token"], "goal_id": goal["id"],
                "goal_name": goal["name"]}

    # -- people and accounts -------------------------------------------------------------------

    def create_customer(self, req: Request) -> dict:
        body = req.json()
        return self.store.create_customer(body.get("name"), body.get("id"))

    def create_account(self, req: Request) -> dict:
        body = req.json()
        return self.store.create_account(
            _int(body.get("customer_id"), "customer_id"), body.get("name"), id=body.get("id"),
            number=body.get("number"), status=body.get("status", "Active"),
            currency=body.get("currency", "USD"))

    def update_account(self, req: Request, aid: str) -> dict:
        return self.store.update_account(int(aid), req.json())

    def list_users(self, req: Request) -> list[dict]:
        return [self.store.user(r["id"]) for r in self.store.query("SELECT id FROM users")]

    def create_user(self, req: Request) -> dict:
        body = req.json()
        if not body.get("user_name"):
            raise StoreError("user_name is required (an email-like sign-in name)")
        return self.store.create_user(
            body["user_name"], email=body.get("email"),
            first_name=body.get("first_name", "Test"), last_name=body.get("last_name", "User"),
            customer_id=body.get("customer_id"), id=body.get("id"),
            access=body.get("access") or [])

    def grant_access(self, req: Request, uid: str) -> dict:
        body = req.json()
        return self.store.grant_access(int(uid), _int(body.get("customer_id"), "customer_id"),
                                       body.get("account_ids"))

    def create_developer_token(self, req: Request) -> dict:
        return self.store.create_developer_token(req.json().get("token"))

    def list_clients(self, req: Request) -> list[dict]:
        return [self.store.client(r["client_id"])
                for r in self.store.query("SELECT client_id FROM clients")]

    def create_client(self, req: Request) -> dict:
        body = req.json()
        return self.store.create_client(
            body.get("client_id"), body.get("client_secret"),
            public=bool(body.get("public", False)), name=body.get("name"),
            redirect_uris=body.get("redirect_uris") or ["http://localhost"])

    # -- tokens -------------------------------------------------------------------------------

    def issue_refresh_token(self, req: Request) -> dict:
        body = req.json()
        now = self.store.now()
        issued = parse_admin_time(body["issued_at"], now) if "issued_at" in body else None
        return self.store.issue_refresh_token(
            _int(body.get("user_id"), "user_id"), body.get("client_id"),
            body.get("scope", DEFAULT_SCOPE), issued_at=issued)

    def revoke_refresh_tokens(self, req: Request) -> dict:
        body = req.json()
        user_id = body.get("user_id")
        n = self.store.revoke_refresh_tokens(
            token=body.get("refresh_token"),
            user_id=_int(user_id, "user_id") if user_id is not None else None)
        return {"revoked": n}

    def issue_access_token(self, req: Request) -> dict:
        body = req.json()
        user_id = _int(body.get("user_id"), "user_id")
        if self.store.user(user_id) is None:
            raise StoreError(f"user {user_id} does not exist", 404)
        life = body.get("lifetime_seconds")
        return self.store.issue_access_token(user_id, body.get("client_id"),
                                             lifetime=float(life) if life is not None else None)

    def list_device_codes(self, req: Request) -> list[dict]:
        rows = self.store.query("SELECT user_code, client_id, scope, issued_at, expires_at, "
                                "status, user_id FROM device_codes ORDER BY issued_at")
        return [_times(r, "issued_at", "expires_at") for r in rows]

    def _decide(self, req: Request, approve: bool) -> dict:
        body = req.json()
        user_id = body.get("user_id")
        return self.oauth.decide_device_code(
            body.get("user_code", ""), _int(user_id, "user_id") if user_id is not None else None,
            approve)

    # -- goals and clicks ----------------------------------------------------------------------

    def _insert_goal(self, body: dict) -> dict:
        s = self.store
        account = None
        if body.get("account_id") is not None:
            account = s.account(_int(body["account_id"], "account_id"))
            if account is None:
                raise StoreError(f"account {body['account_id']} does not exist", 404)
        customer_id = account["customer_id"] if account else body.get("customer_id")
        if customer_id is None or s.customer(int(customer_id)) is None:
            raise StoreError("give account_id (an account goal) or customer_id (a customer "
                             "goal) of an existing account or customer")
        scope = body.get("scope") or ("Account" if account else "Customer")
        if scope not in ("Account", "Customer") or (scope == "Account" and not account):
            raise StoreError("scope must be Account (with account_id) or Customer")
        name = body.get("name") or "Offline purchase"
        if s.goal_name_taken(int(customer_id), name):
            raise StoreError(f"a goal named {name!r} exists already for customer "
                             f"{customer_id} (names are unique per customer)", 409)
        window = _window(body.get("window_minutes", 43200))
        checks = {"count_type": COUNT_TYPES, "revenue_type": REVENUE_TYPES,
                  "category": OFFLINE_GOAL_CATEGORIES, "status": GOAL_STATUSES,
                  "attribution_model": ATTRIBUTION_MODELS}
        for key, allowed in checks.items():
            if key in body and body[key] is not None and body[key] not in allowed:
                raise StoreError(f"{key} must be one of {', '.join(sorted(allowed))}")
        currency = body.get("currency") or (account["currency"] if account else "USD")
        if currency not in CONVERSION_GOAL_REVENUE_CURRENCIES:
            raise StoreError(f"currency {currency!r} is not on Microsoft's list of conversion "
                             "goal revenue currencies")
        now = s.now()
        # Admin goals stand for goals that already exist: a day old unless told otherwise.
        created = parse_admin_time(body.get("created_at", {"ago": DAY}), now)
        return s.insert_goal({
            "id": body.get("id"), "customer_id": int(customer_id),
            "account_id": account["id"] if scope == "Account" else None, "name": name,
            "scope": scope, "status": body.get("status", "Active"), "window_minutes": window,
            "count_type": body.get("count_type", "All"),
            "category": body.get("category", "Purchase"),
            "revenue_type": body.get("revenue_type", "VariableValue"),
            "revenue_value": body.get("revenue_value", 1.0), "currency": currency,
            "attribution_model": body.get("attribution_model"),
            "exclude_from_bidding": int(bool(body.get("exclude_from_bidding", False))),
            "externally_attributed": int(bool(body.get("externally_attributed", False))),
            "enhanced_conversions": int(bool(body.get("enhanced_conversions", True))),
            "view_through_window_minutes": body.get("view_through_window_minutes"),
            "created_at": created, "created_by": "admin"})

    def create_goal(self, req: Request) -> dict:
        return _times(self._insert_goal(req.json()), "created_at")

    def update_goal(self, req: Request, gid: str) -> dict:
        """Change what a user can change in the web UI: status, enhanced conversions,
        external attribution, window, count type."""
        body = req.json()
        bad = sorted(set(body) - set(GOAL_CHANGES))
        if bad:
            raise StoreError(f"cannot change {', '.join(bad)}; only "
                             f"{', '.join(GOAL_CHANGES)}")
        changes: dict[str, Any] = {}
        for key, value in body.items():
            if key == "status":
                if value not in GOAL_STATUSES:
                    raise StoreError(f"status must be one of {', '.join(GOAL_STATUSES)}")
            elif key == "count_type":
                if value not in COUNT_TYPES:
                    raise StoreError(f"count_type must be one of {', '.join(COUNT_TYPES)}")
            elif key == "window_minutes":
                value = _window(value)
            elif not isinstance(value, bool):
                raise StoreError(f"{key} must be true or false")
            changes[key] = int(value) if isinstance(value, bool) else value
        return _times(self.store.update_goal(int(gid), changes), "created_at")

    def list_goals(self, req: Request) -> list[dict]:
        return [_times(g, "created_at") for g in self.store.query("SELECT * FROM goals")]

    def issue_clicks(self, req: Request) -> dict | list[dict]:
        """One click (with ``click_id``, ``hashed_email``, ``hashed_phone`` optional), ``count``
        anonymous clicks, or one click per entry of ``identities`` (each with
        ``hashed_email`` and/or ``hashed_phone``)."""
        body = req.json()
        account_id = _int(body.get("account_id"), "account_id")
        when = parse_admin_time(body.get("click_time"), self.store.now())
        count, identities = body.get("count"), body.get("identities")
        if identities is not None:
            if not isinstance(identities, list) or count is not None:
                raise StoreError("identities must be a list (and not given with count)")
            with self.store.transaction():
                return [self.store.issue_click(account_id, when, None, *_identity(i))
                        for i in identities]
        if count is None:
            return self.store.issue_click(account_id, when, body.get("click_id"),
                                          *_identity(body))
        return [self.store.issue_click(account_id, when) for _ in range(_int(count, "count"))]

    # -- what arrived ---------------------------------------------------------------------------

    def _filtered(self, table: str, req: Request, times: tuple[str, ...]) -> list[dict]:
        where, params = [], []
        for key in ("account_id", "goal_id", "request_id", "click_id", "operation", "code",
                    "original_id"):
            if key in req.query:
                where.append(f"{key} = ?")
                params.append(req.query[key])
        sql = f"SELECT * FROM {table}" + (f" WHERE {' AND '.join(where)}" if where else "")
        try:
            rows = self.store.query(sql + " ORDER BY id", params)
        except Exception as exc:  # a filter this table does not have
            raise StoreError(f"cannot filter {table} that way: {exc}") from None
        return [_times(r, *times) for r in rows]

    def list_conversions(self, req: Request) -> list[dict]:
        rows = self._filtered("conversions", req, ("conversion_time", "received_at",
                                                   "retracted_at"))
        for r in rows:
            r["counted"] = bool(r["counted"])
            r.pop("dedup_key", None)
            r.pop("identity", None)
            r.pop("dedup_number", None)
        return rows

    def list_duplicates(self, req: Request) -> list[dict]:
        rows = self._filtered("duplicates", req, ("conversion_time", "received_at"))
        for r in rows:
            r.pop("dedup_key", None)
        return rows

    def list_adjustments(self, req: Request) -> list[dict]:
        """Each adjustment with ``applied``: whether it changed its original (it has one, no
        ``not_applied_reason`` and no ``duplicate_of``)."""
        rows = self._filtered("adjustments", req, ("conversion_time", "adjustment_time",
                                                   "received_at"))
        for r in rows:
            r["applied"] = r["original_id"] is not None and r["duplicate_of"] is None \
                and r["not_applied_reason"] is None
        return rows

    def list_rejections(self, req: Request) -> list[dict]:
        rows = self._filtered("rejections", req, ("received_at",))
        for r in rows:
            r["item"] = json.loads(r["item"]) if r["item"] else None
        return rows

    def list_requests(self, req: Request) -> list[dict]:
        where, params = [], []
        for key in ("service", "operation"):
            if key in req.query:
                where.append(f"{key} = ?")
                params.append(req.query[key])
        if "since_id" in req.query:
            where.append("id > ?")
            params.append(int(req.query["since_id"]))
        bodies = req.query.get("bodies", "true").lower() not in ("0", "false", "no")
        cols = ("id, received_at, real_time, service, operation, method, path, headers, "
                "COALESCE(b.body, r.body) AS body, status, response, account_id, customer_id, "
                "tracking_id, outcome") if bodies else (
            "id, received_at, real_time, service, operation, method, path, headers, status, "
            "account_id, customer_id, tracking_id, outcome")
        rows = self.store.query(f"SELECT {cols} FROM requests r LEFT JOIN request_bodies b "
                                "ON b.request_id = r.id"
                                + (f" WHERE {' AND '.join(where)}" if where else "")
                                + " ORDER BY id", params)
        for r in rows:
            r["headers"] = json.loads(r["headers"])
            r["received_at"] = iso(r["received_at"])
        return rows

    # -- faults ---------------------------------------------------------------------------------

    # One check per fault option, each with its own message; nothing else happens here.
    def add_fault(self, req: Request) -> dict:  # noqa: C901
        body: dict[str, Any] = req.json()
        kind = body.get("kind")
        if kind not in FAULT_KINDS:
            raise StoreError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        unknown = sorted(set(body) - set(FAULT_SPEC))
        if unknown:
            raise StoreError(f"unknown fault option(s) {', '.join(unknown)}; known: "
                             f"{', '.join(FAULT_SPEC)}")
        now = self.store.now()
        until = None
        if body.get("for_seconds") is not None:
            until = now + float(body["for_seconds"])
        elif body.get("until") is not None:
            until = parse_admin_time(body["until"], now)
        count = body.get("count")
        if count is None and until is None:
            count = 1  # one call unless told otherwise
        if count is not None and _int(count, "count") < 1:
            raise StoreError("count must be at least 1")
        code = body.get("code")
        if kind == "throttle":
            code = 117
        elif kind == "internal_error":
            code = 0
        elif kind in ("adapi_error", "operation_error", "batch_error"):
            code = _int(code, "code")
        after_calls = _int(body.get("after_calls", 0), "after_calls")
        if after_calls < 0:
            raise StoreError("after_calls must be 0 or more")
        if kind == "delay" and body.get("delay_seconds") is None:
            raise StoreError("a delay needs delay_seconds")
        http_status = body.get("http_status")
        if http_status is not None and not 100 <= int(http_status) <= 599:
            raise StoreError("http_status must be an HTTP status code")
        if http_status is not None and kind not in ("http_error", "delay") \
                and int(http_status) < 400:
            # The SDK reads a 2xx answer as the operation's response, never as a fault.
            raise StoreError(f"http_status of a {kind} fault must be 400..599: REST faults "
                             f"come with an error status")
        if kind == "http_error" and http_status is None:
            http_status = 500
        body_contains = body.get("body_contains")
        if body_contains is not None and (not isinstance(body_contains, str)
                                          or not body_contains):
            raise StoreError("body_contains must be non-empty text")
        known = CODES.get(code) if code is not None else None
        fault = self.store.add_fault({
            "kind": kind, "operation": body.get("operation"),
            "account_id": body.get("account_id"), "remaining": count, "until": until,
            "http_status": http_status, "delay_seconds": body.get("delay_seconds"),
            "code": code, "error_code": body.get("error_code") or (known[0] if known else None),
            "message": body.get("message") or (known[1] if known else None),
            "body_contains": body_contains, "skip": after_calls,
            "as_fault": int(bool(body.get("as_fault", False))), "created_at": now})
        return _times(fault, "until", "created_at")

    def clear_faults(self, req: Request) -> dict:
        n = self.store.query("SELECT COUNT(*) AS n FROM faults")[0]["n"]
        self.store.execute("DELETE FROM faults")
        return {"deleted": n}

    def delete_fault(self, req: Request, fid: str) -> dict:
        self.store.execute("DELETE FROM faults WHERE id = ?", (int(fid),))
        return {"deleted": int(fid)}
