"""The emulator's state in SQLite: people, accounts, tokens, goals, clicks, uploads and faults."""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import string
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from include.msads_emulator.offline import StoredNumbers, dedup_key, dedup_number
from include.msads_emulator.timeutil import DAY, iso

if TYPE_CHECKING:
    from types import TracebackType

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, number TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, name TEXT NOT NULL,
    number TEXT NOT NULL, status TEXT NOT NULL, currency TEXT NOT NULL,
    time_zone TEXT);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, user_name TEXT NOT NULL UNIQUE, email TEXT, first_name TEXT,
    last_name TEXT, customer_id INTEGER, oid TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS user_access (
    user_id INTEGER NOT NULL, customer_id INTEGER NOT NULL, account_id INTEGER);
CREATE TABLE IF NOT EXISTS developer_tokens (
    token TEXT PRIMARY KEY, active INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY, client_secret TEXT, name TEXT, redirect_uris TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token TEXT PRIMARY KEY, user_id INTEGER NOT NULL, client_id TEXT NOT NULL,
    scope TEXT NOT NULL, issued_at REAL NOT NULL, expires_at REAL NOT NULL, parent TEXT,
    used_at REAL, superseded_at REAL, revoked_at REAL);
CREATE TABLE IF NOT EXISTS access_tokens (
    token TEXT PRIMARY KEY, user_id INTEGER NOT NULL, client_id TEXT, scope TEXT NOT NULL,
    issued_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS auth_codes (
    code TEXT PRIMARY KEY, client_id TEXT NOT NULL, user_id INTEGER NOT NULL,
    redirect_uri TEXT, scope TEXT, nonce TEXT, code_challenge TEXT, code_challenge_method TEXT,
    issued_at REAL NOT NULL, expires_at REAL NOT NULL, redeemed_at REAL);
CREATE TABLE IF NOT EXISTS device_codes (
    device_code TEXT PRIMARY KEY, user_code TEXT NOT NULL UNIQUE, client_id TEXT NOT NULL,
    scope TEXT, issued_at REAL NOT NULL, expires_at REAL NOT NULL, status TEXT NOT NULL,
    user_id INTEGER);
CREATE TABLE IF NOT EXISTS goals (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, account_id INTEGER,
    name TEXT NOT NULL, scope TEXT NOT NULL, status TEXT NOT NULL,
    window_minutes INTEGER NOT NULL, count_type TEXT NOT NULL, category TEXT,
    revenue_type TEXT NOT NULL, revenue_value REAL, currency TEXT,
    attribution_model TEXT, exclude_from_bidding INTEGER NOT NULL,
    externally_attributed INTEGER NOT NULL, enhanced_conversions INTEGER NOT NULL,
    view_through_window_minutes INTEGER, created_at REAL NOT NULL, created_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clicks (
    click_id TEXT PRIMARY KEY, account_id INTEGER NOT NULL, click_time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS conversions (
    id INTEGER PRIMARY KEY, request_id INTEGER, item_index INTEGER, account_id INTEGER,
    customer_id INTEGER, goal_id INTEGER, conversion_name TEXT, conversion_time REAL,
    click_id TEXT, hashed_email TEXT, hashed_phone TEXT, value REAL, currency TEXT,
    external_attribution_credit REAL, external_attribution_model TEXT, identity TEXT,
    dedup_key TEXT NOT NULL, counted INTEGER NOT NULL, not_counted_reason TEXT,
    received_at REAL NOT NULL, restated_value REAL, restated_currency TEXT,
    retracted_at REAL, dedup_number INTEGER);
CREATE TABLE IF NOT EXISTS duplicates (
    id INTEGER PRIMARY KEY, request_id INTEGER, item_index INTEGER, original_id INTEGER,
    account_id INTEGER, goal_id INTEGER, conversion_name TEXT, conversion_time REAL,
    click_id TEXT, hashed_email TEXT, hashed_phone TEXT, value REAL, currency TEXT,
    dedup_key TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS adjustments (
    id INTEGER PRIMARY KEY, request_id INTEGER, item_index INTEGER, account_id INTEGER,
    goal_id INTEGER, conversion_name TEXT, conversion_time REAL, click_id TEXT,
    hashed_email TEXT, hashed_phone TEXT, adjustment_type TEXT, adjustment_time REAL,
    adjustment_value REAL, currency TEXT, original_id INTEGER, received_at REAL NOT NULL,
    duplicate_of INTEGER, not_applied_reason TEXT);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY, request_id INTEGER, operation TEXT, item_index INTEGER,
    code INTEGER, error_code TEXT, message TEXT, item TEXT, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS report_files (
    token TEXT PRIMARY KEY, account_id INTEGER NOT NULL, day REAL NOT NULL,
    issued_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT NULL, real_time REAL NOT NULL,
    service TEXT NOT NULL, operation TEXT, method TEXT NOT NULL, path TEXT NOT NULL,
    headers TEXT NOT NULL, body TEXT, status INTEGER, response TEXT, account_id TEXT,
    customer_id TEXT, tracking_id TEXT, outcome TEXT);
CREATE TABLE IF NOT EXISTS request_bodies (
    request_id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, operation TEXT, account_id INTEGER,
    remaining INTEGER, until REAL, http_status INTEGER, delay_seconds REAL, code INTEGER,
    error_code TEXT, message TEXT, body_contains TEXT, skip INTEGER NOT NULL DEFAULT 0,
    as_fault INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS requests_service ON requests (service, operation);
"""

# Columns added since the first release, so that an older state file keeps working.
ADDED_COLUMNS = (("conversions", "identity", "TEXT"),
                 ("conversions", "not_counted_reason", "TEXT"),
                 ("faults", "body_contains", "TEXT"),
                 ("faults", "skip", "INTEGER NOT NULL DEFAULT 0"),
                 ("faults", "as_fault", "INTEGER NOT NULL DEFAULT 0"),
                 ("adjustments", "duplicate_of", "INTEGER"),
                 ("adjustments", "not_applied_reason", "TEXT"),
                 ("clicks", "hashed_email", "TEXT"),
                 ("clicks", "hashed_phone", "TEXT"))
# What an added column holds for rows stored before it: an adjustment without an original
# was never applied (offline.ORIGINAL_NOT_FOUND); the others were.
BACKFILLS = {("adjustments", "not_applied_reason"):
             "UPDATE adjustments SET not_applied_reason = 'AdjustmentOriginalNotFound' "
             "WHERE original_id IS NULL"}
INDEXES = """
CREATE INDEX IF NOT EXISTS adjustments_original ON adjustments (original_id);
CREATE INDEX IF NOT EXISTS clicks_email ON clicks (account_id, hashed_email);
CREATE INDEX IF NOT EXISTS clicks_phone ON clicks (account_id, hashed_phone);
"""

# What ``PRAGMA user_version`` says a state file has been upgraded to: 1, dedup keys in the
# order ``offline.dedup_key`` makes them (goal|identity|time; before: goal|time|identity, with
# an index on conversions (goal_id, identity) that the key's index now serves); 2, no index
# conversions_account on conversions (account_id): keeping it up to date cost every upload
# more than its readers gained (campaign.py's reports read an account's conversions by a
# scan, and which of its goals have conversions through the dedup key index); 3, the UNIQUE
# index is on conversions (dedup_number), the key as a number (offline.dedup_number), not on
# the key (the table is made anew without the key's index, which SQLite cannot drop); 4, no
# index of dedup numbers but of the conversions without one (conversions_unnumbered): the
# numbers are held in memory (``offline.StoredNumbers``).
VERSION = 4
# The conversions table's columns, in order (as of VERSION 3).
CONVERSION_COLUMNS = (
    "id, request_id, item_index, account_id, customer_id, goal_id, conversion_name, "
    "conversion_time, click_id, hashed_email, hashed_phone, value, currency, "
    "external_attribution_credit, external_attribution_model, identity, dedup_key, counted, "
    "not_counted_reason, received_at, restated_value, restated_currency, retracted_at")

# What the rules read of a click (offline.Context): Store.clicks gives these alone.
CLICK_COLUMNS = "click_id, account_id, click_time"

# Where generated ids start: numbers the size of Microsoft's, and easy to tell apart.
ID_BASES = {"customers": 151000000, "accounts": 181000000, "users": 191000000, "goals": 4100000}

DEFAULT_SETTINGS: dict[str, Any] = {
    # Microsoft: "access tokens expire e.g. after one hour".
    "access_token_lifetime_seconds": 3600,
    # Microsoft: refresh tokens live 90 days (rolling: each new one gets 90 days).
    "refresh_token_lifetime_seconds": 90 * DAY,
    # What happens when a refresh token that was already redeemed is sent again:
    #  "microsoft"            - it still works until it expires (what the identity platform does)
    #  "until-successor-used" - it works until the token issued from it has been redeemed
    #  "single-use"           - it never works again
    "refresh_token_reuse": "until-successor-used",
    "auth_code_lifetime_seconds": 600,
    "device_code_lifetime_seconds": 900,
    "device_code_interval_seconds": 5,
    # The user the authorize page signs in without asking (None: show the form).
    "auto_approve_user_id": None,
    # Largest ConversionValue / AdjustmentValue accepted (Microsoft publishes none).
    "max_conversion_value": 1_000_000_000,
    # Seconds before an upload shows in the offline conversion reports and their files
    # (Microsoft: "It can take up to six hours to view conversion data"; 0: at once).
    "report_lag_seconds": 0,
}

ACCOUNT_STATUSES = ("Draft", "Active", "Inactive", "Pause", "Pending", "Suspended")


class StoreError(Exception):
    """Bad input to the admin API; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _token(prefix: str, nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def new_user_code() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(9))


class Store:
    """All state behind one lock; ``state`` is a SQLite file path or ``:memory:``."""

    def __init__(self, state: str = ":memory:") -> None:
        self.path = state
        self.lock = threading.RLock()
        self.db = sqlite3.connect(state, check_same_thread=False, isolation_level=None,
                                  factory=_Connection)
        self.db.row_factory = sqlite3.Row
        if state != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._upgrade()
        self.db.numbers.load(self.db)
        self._settings = self._load_settings()
        # A stable tenant id per state file, as Microsoft's "tid" in tokens.
        self.tenant_id = self._settings.get("tenant_id") or str(uuid.uuid4())
        if "tenant_id" not in self._settings:
            self._put_setting("tenant_id", self.tenant_id)

    # -- plumbing ------------------------------------------------------------------------

    def _upgrade(self) -> None:
        for table, column, kind in ADDED_COLUMNS:
            have = {r["name"] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                if (table, column) in BACKFILLS:
                    self.db.execute(BACKFILLS[table, column])
        self.db.executescript(INDEXES)
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version < VERSION:
            with self.transaction() as db:  # all or nothing, once
                if version < 1:
                    _reorder_dedup_keys(db)
                    db.execute("DROP INDEX IF EXISTS conversions_identity")
                db.execute("DROP INDEX IF EXISTS conversions_account")
                if version < 3:
                    _number_dedup_keys(db)
                db.execute(f"PRAGMA user_version = {VERSION}")
        # (an emulator of version 3 that opened the file since made the UNIQUE index again)
        self.db.execute("DROP INDEX IF EXISTS conversions_number")
        self.db.execute("CREATE INDEX IF NOT EXISTS conversions_unnumbered "
                        "ON conversions (dedup_number) WHERE dedup_number IS NULL")

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def query(self, sql: str, params: Sequence | dict = ()) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.db.execute(sql, params).fetchall()]

    def one(self, sql: str, params: Sequence | dict = ()) -> dict | None:
        with self.lock:
            row = self.db.execute(sql, params).fetchone()
            return dict(row) if row else None

    def execute(self, sql: str, params: Sequence | dict = ()) -> int:
        with self.lock:
            return self.db.execute(sql, params).lastrowid

    def transaction(self) -> _Transaction:
        return _Transaction(self)

    def _next_id(self, table: str) -> int:
        row = self.db.execute(f"SELECT MAX(id) FROM {table}").fetchone()
        return max(row[0] or 0, ID_BASES[table]) + 1

    # -- clock and settings ----------------------------------------------------------------

    def _load_settings(self) -> dict[str, Any]:
        rows = self.db.execute("SELECT key, value FROM settings").fetchall()
        return {r["key"]: json.loads(r["value"]) for r in rows}

    def _put_setting(self, key: str, value: Any) -> None:
        with self.lock:
            self.db.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) "
                            "DO UPDATE SET value = excluded.value", (key, json.dumps(value)))
            self._settings[key] = value

    def setting(self, key: str) -> Any:
        return self._settings.get(key, DEFAULT_SETTINGS.get(key))

    def settings(self) -> dict[str, Any]:
        return {k: self.setting(k) for k in DEFAULT_SETTINGS}

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(changes) - set(DEFAULT_SETTINGS))
        if unknown:
            raise StoreError(f"unknown setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(DEFAULT_SETTINGS)}")
        reuse = changes.get("refresh_token_reuse")
        if reuse is not None and reuse not in ("microsoft", "until-successor-used",
                                                 "single-use"):
            raise StoreError("refresh_token_reuse must be microsoft, until-successor-used or "
                             "single-use")
        lag = changes.get("report_lag_seconds", 0)
        if isinstance(lag, bool) or not isinstance(lag, int | float) or not 0 <= lag < math.inf:
            raise StoreError("report_lag_seconds must be a number of seconds, 0 or more")
        for key, value in changes.items():
            self._put_setting(key, value)
        return self.settings()

    @property
    def offset(self) -> float:
        return float(self._settings.get("clock_offset_seconds", 0.0))

    def now(self) -> float:
        """Emulator time: the real clock moved by the offset tests set."""
        return time.time() + self.offset

    def set_offset(self, seconds: float) -> None:
        self._put_setting("clock_offset_seconds", float(seconds))

    def clock(self) -> dict[str, Any]:
        now = self.now()
        return {"now": iso(round(now, 3)), "epoch": now, "offset_seconds": self.offset}

    # -- reset -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything except the tenant id (request ids keep counting up, so a slow
        request that finishes after a reset never overwrites a newer request's log entry)."""
        with self.lock:
            tables = [r[0] for r in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'")]
            self.db.execute("BEGIN")
            for t in tables:
                self.db.execute(f"DELETE FROM {t}")
            self.db.execute("COMMIT")
            self.db.numbers.clear()
            # Compact what the deleted rows left: new rows then go to pages next to each other,
            # not all over the freed ones (a 1,000-item upload after a reset that freed a
            # million conversions: 75,060 -> 87,510 conversions/s)
            self.db.execute("VACUUM")
            self._settings = {}
            self._put_setting("tenant_id", self.tenant_id)

    # -- customers, accounts, users ----------------------------------------------------------

    def create_customer(self, name: str | None = None, id: int | None = None) -> dict:
        with self.lock:
            cid = int(id) if id else self._next_id("customers")
            if self.one("SELECT id FROM customers WHERE id = ?", (cid,)):
                raise StoreError(f"customer {cid} exists already", 409)
            number = f"C{cid % 10**7:07d}"
            self.db.execute("INSERT INTO customers (id, name, number) VALUES (?, ?, ?)",
                            (cid, name or f"Customer {cid}", number))
            return self.customer(cid)

    def customer(self, cid: int) -> dict | None:
        return self.one("SELECT * FROM customers WHERE id = ?", (cid,))

    def create_account(self, customer_id: int, name: str | None = None, *,
                       id: int | None = None, number: str | None = None,
                       status: str = "Active", currency: str = "USD",
                       time_zone: str | None = None) -> dict:
        status = normalise_account_status(status)
        with self.lock:
            if not self.customer(customer_id):
                raise StoreError(f"customer {customer_id} does not exist; create it first", 404)
            aid = int(id) if id else self._next_id("accounts")
            if self.account(aid):
                raise StoreError(f"account {aid} exists already", 409)
            number = number or f"F{aid % 10**7:07d}"
            self.db.execute(
                "INSERT INTO accounts (id, customer_id, name, number, status, currency, "
                "time_zone) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (aid, customer_id, name or f"Account {aid}", number, status,
                 (currency or "USD").upper(), time_zone))
            return self.account(aid)

    def account(self, aid: int) -> dict | None:
        return self.one("SELECT * FROM accounts WHERE id = ?", (aid,))

    def update_account(self, aid: int, changes: dict) -> dict:
        if not self.account(aid):
            raise StoreError(f"account {aid} does not exist", 404)
        allowed = {"name", "status", "currency", "number"}
        bad = set(changes) - allowed
        if bad:
            raise StoreError(f"cannot change {', '.join(sorted(bad))}; only "
                             f"{', '.join(sorted(allowed))}")
        if "status" in changes:
            changes = {**changes, "status": normalise_account_status(changes["status"])}
        for key, value in changes.items():
            self.execute(f"UPDATE accounts SET {key} = ? WHERE id = ?", (value, aid))
        return self.account(aid)

    def create_user(self, user_name: str, *, email: str | None = None,
                    first_name: str = "Test", last_name: str = "User",
                    customer_id: int | None = None, id: int | None = None,
                    access: Iterable[dict] = ()) -> dict:
        with self.lock:
            if self.one("SELECT id FROM users WHERE user_name = ?", (user_name,)):
                raise StoreError(f"user {user_name!r} exists already", 409)
            uid = int(id) if id else self._next_id("users")
            self.db.execute(
                "INSERT INTO users (id, user_name, email, first_name, last_name, customer_id, "
                "oid, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'Active')",
                (uid, user_name, email or user_name, first_name, last_name, customer_id,
                 str(uuid.uuid4())))
            for grant in access:
                self.grant_access(uid, int(grant["customer_id"]), grant.get("account_ids"))
            return self.user(uid)

    def user(self, uid: int) -> dict | None:
        user = self.one("SELECT * FROM users WHERE id = ?", (uid,))
        if user:
            user["access"] = self.query(
                "SELECT customer_id, account_id FROM user_access WHERE user_id = ? "
                "ORDER BY customer_id, account_id", (uid,))
        return user

    def grant_access(self, user_id: int, customer_id: int,
                     account_ids: Iterable[int] | None = None) -> dict:
        """Give a user a role on a customer: all its accounts, or only ``account_ids``."""
        if not self.one("SELECT id FROM users WHERE id = ?", (user_id,)):
            raise StoreError(f"user {user_id} does not exist", 404)
        if not self.customer(customer_id):
            raise StoreError(f"customer {customer_id} does not exist", 404)
        with self.lock:
            if account_ids is None:
                self.db.execute("INSERT INTO user_access VALUES (?, ?, NULL)",
                                (user_id, customer_id))
            else:
                for aid in account_ids:
                    self.db.execute("INSERT INTO user_access VALUES (?, ?, ?)",
                                    (user_id, customer_id, int(aid)))
            if not self.one("SELECT customer_id FROM users WHERE id = ? "
                            "AND customer_id IS NOT NULL", (user_id,)):
                self.db.execute("UPDATE users SET customer_id = ? WHERE id = ?",
                                (customer_id, user_id))
        return self.user(user_id)

    def can_access_customer(self, user_id: int, customer_id: int) -> bool:
        return bool(self.one("SELECT 1 FROM user_access WHERE user_id = ? AND customer_id = ?",
                             (user_id, customer_id)))

    def can_access_account(self, user_id: int, account: dict) -> bool:
        return bool(self.one(
            "SELECT 1 FROM user_access WHERE user_id = ? AND customer_id = ? "
            "AND (account_id IS NULL OR account_id = ?)",
            (user_id, account["customer_id"], account["id"])))

    def accessible_accounts(self, user_id: int) -> list[dict]:
        return self.query(
            "SELECT DISTINCT a.* FROM accounts a JOIN user_access u "
            "ON u.customer_id = a.customer_id AND (u.account_id IS NULL OR u.account_id = a.id) "
            "WHERE u.user_id = ? ORDER BY a.id", (user_id,))

    # -- developer tokens and OAuth clients ---------------------------------------------------

    def create_developer_token(self, token: str | None = None) -> dict:
        token = token or secrets.token_hex(8).upper()
        self.execute("INSERT OR REPLACE INTO developer_tokens VALUES (?, 1, ?)",
                     (token, self.now()))
        return {"token": token}

    def developer_token_ok(self, token: str | None) -> bool:
        return bool(token) and bool(self.one(
            "SELECT 1 FROM developer_tokens WHERE token = ? AND active = 1", (token,)))

    def create_client(self, client_id: str | None = None, client_secret: str | None = None, *,
                      public: bool = False, name: str | None = None,
                      redirect_uris: Sequence[str] = ("http://localhost",)) -> dict:
        client_id = client_id or str(uuid.uuid4())
        if not public and client_secret is None:
            client_secret = _token("emu~", 24)
        if public:
            client_secret = None
        self.execute("INSERT OR REPLACE INTO clients VALUES (?, ?, ?, ?)",
                     (client_id, client_secret, name or "msads-capi test app",
                      json.dumps(list(redirect_uris))))
        return self.client(client_id)

    def client(self, client_id: str | None) -> dict | None:
        if not client_id:
            return None
        row = self.one("SELECT * FROM clients WHERE client_id = ?", (client_id,))
        if row:
            row["redirect_uris"] = json.loads(row["redirect_uris"])
            row["public"] = row["client_secret"] is None
        return row

    # -- tokens -----------------------------------------------------------------------------

    def issue_access_token(self, user_id: int, client_id: str | None,
                           scope: str = "https://ads.microsoft.com/msads.manage",
                           lifetime: float | None = None) -> dict:
        now = self.now()
        life = float(lifetime if lifetime is not None
                     else self.setting("access_token_lifetime_seconds"))
        token = _token("EwA", 48)
        self.execute("INSERT INTO access_tokens VALUES (?, ?, ?, ?, ?, ?)",
                     (token, user_id, client_id, scope, now, now + life))
        return {"access_token": token, "expires_in": int(life), "expires_at": iso(now + life)}

    def access_token(self, token: str | None) -> dict | None:
        if not token:
            return None
        return self.one("SELECT * FROM access_tokens WHERE token = ?", (token,))

    def issue_refresh_token(self, user_id: int, client_id: str, scope: str, *,
                            parent: str | None = None, issued_at: float | None = None) -> dict:
        if not self.one("SELECT id FROM users WHERE id = ?", (user_id,)):
            raise StoreError(f"user {user_id} does not exist", 404)
        if not self.client(client_id):
            raise StoreError(f"OAuth client {client_id!r} does not exist; create it first", 404)
        issued = self.now() if issued_at is None else issued_at
        token = _token("M.C5", 96)
        expires = issued + float(self.setting("refresh_token_lifetime_seconds"))
        self.execute(
            "INSERT INTO refresh_tokens (token, user_id, client_id, scope, issued_at, expires_at,"
            " parent) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (token, user_id, client_id, scope, issued, expires, parent))
        return {"refresh_token": token, "issued_at": iso(issued), "expires_at": iso(expires)}

    def refresh_token(self, token: str | None) -> dict | None:
        if not token:
            return None
        return self.one("SELECT * FROM refresh_tokens WHERE token = ?", (token,))

    def revoke_refresh_tokens(self, *, token: str | None = None,
                              user_id: int | None = None) -> int:
        now = self.now()
        with self.lock:
            if token:
                cur = self.db.execute("UPDATE refresh_tokens SET revoked_at = ? WHERE token = ? "
                                      "AND revoked_at IS NULL", (now, token))
            elif user_id is not None:
                cur = self.db.execute("UPDATE refresh_tokens SET revoked_at = ? "
                                      "WHERE user_id = ? AND revoked_at IS NULL", (now, user_id))
            else:
                raise StoreError("say which refresh tokens to revoke: refresh_token or user_id")
            return cur.rowcount

    # -- goals and clicks -------------------------------------------------------------------

    def insert_goal(self, goal: dict) -> dict:
        with self.lock:
            gid = goal.get("id") or self._next_id("goals")
            cols = ["id", "customer_id", "account_id", "name", "scope", "status",
                    "window_minutes", "count_type", "category", "revenue_type", "revenue_value",
                    "currency", "attribution_model", "exclude_from_bidding",
                    "externally_attributed", "enhanced_conversions",
                    "view_through_window_minutes", "created_at", "created_by"]
            row = {**goal, "id": gid}
            self.db.execute(f"INSERT INTO goals ({', '.join(cols)}) VALUES "
                            f"({', '.join('?' * len(cols))})", [row.get(c) for c in cols])
            return self.goal(gid)

    def goal(self, gid: int) -> dict | None:
        return self.one("SELECT * FROM goals WHERE id = ?", (gid,))

    def update_goal(self, gid: int, changes: dict) -> dict:
        """Change columns of a goal (the caller has checked names and values)."""
        with self.lock:
            if not self.goal(gid):
                raise StoreError(f"goal {gid} does not exist", 404)
            for key, value in changes.items():
                self.db.execute(f"UPDATE goals SET {key} = ? WHERE id = ?", (value, gid))
            return self.goal(gid)

    def goals_for_account(self, account: dict) -> list[dict]:
        """Goals an account sees: its own, and the customer-scoped ones of its customer."""
        return self.query(
            "SELECT * FROM goals WHERE (scope = 'Account' AND account_id = ?) OR "
            "(scope = 'Customer' AND customer_id = ?) ORDER BY id",
            (account["id"], account["customer_id"]))

    def goal_name_taken(self, customer_id: int, name: str) -> bool:
        return bool(self.one("SELECT 1 FROM goals WHERE customer_id = ? AND name = ?",
                             (customer_id, name)))

    def issue_click(self, account_id: int, click_time: float, click_id: str | None = None,
                    hashed_email: str | None = None, hashed_phone: str | None = None) -> dict:
        """A click the emulator will recognise; the hashes (stored in lower case) say who
        clicked, for conversions sent without a click id."""
        if not self.account(account_id):
            raise StoreError(f"account {account_id} does not exist", 404)
        click_id = click_id or uuid.uuid4().hex
        email = hashed_email.lower() if hashed_email else None
        phone = hashed_phone.lower() if hashed_phone else None
        self.execute("INSERT OR REPLACE INTO clicks (click_id, account_id, click_time, "
                     "hashed_email, hashed_phone) VALUES (?, ?, ?, ?, ?)",
                     (click_id, account_id, click_time, email, phone))
        return {"click_id": click_id, "account_id": account_id, "click_time": iso(click_time),
                "hashed_email": email, "hashed_phone": phone}

    def clicks_by_hash(self, account_id: int, emails: Iterable[str],
                       phones: Iterable[str]) -> list[dict]:
        """The account's clicks whose hashed email or phone is one of these (lower case), each
        with ``click_id``, ``account_id``, ``click_time``, ``hashed_email`` and
        ``hashed_phone``."""
        found: dict[str, dict] = {}
        for column, hashes in (("hashed_email", emails), ("hashed_phone", phones)):
            wanted = sorted({h for h in hashes if h})
            for i in range(0, len(wanted), 500):
                chunk = wanted[i:i + 500]
                for click_id, account, when, email, phone in self._tuples(
                        f"SELECT {CLICK_COLUMNS}, hashed_email, hashed_phone FROM clicks "
                        f"WHERE account_id = ? AND {column} IN ({', '.join('?' * len(chunk))})",
                        [account_id, *chunk]):
                    found[click_id] = {"click_id": click_id, "account_id": account,
                                       "click_time": when, "hashed_email": email,
                                       "hashed_phone": phone}
        return list(found.values())

    def clicks(self, click_ids: Iterable[str]) -> dict[str, dict]:
        """The clicks with these ids (as stored), each with ``click_id``, ``account_id`` and
        ``click_time``, by id."""
        ids = sorted({c for c in click_ids if c})
        found: dict[str, dict] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for click_id, account, when in self._tuples(
                    f"SELECT {CLICK_COLUMNS} FROM clicks WHERE click_id IN "
                    f"({', '.join('?' * len(chunk))})", chunk):
                found[click_id] = {"click_id": click_id, "account_id": account,
                                   "click_time": when}
        return found

    def _tuples(self, sql: str, params: Sequence) -> list[tuple]:
        """Rows as plain tuples: many rows are read faster so than as sqlite3.Row."""
        with self.lock:
            cursor = self.db.cursor()
            cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()

    # -- offline conversion report files ---------------------------------------------------

    def issue_report_file(self, account_id: int, day: float, expires_at: float) -> str:
        """A new unguessable token for one account's file of one UTC day (``day``: its
        start), valid until ``expires_at``; each report call issues new ones, as a
        pre-signed link is made per request."""
        token = secrets.token_urlsafe(24)
        self.execute("INSERT INTO report_files (token, account_id, day, issued_at, expires_at) "
                     "VALUES (?, ?, ?, ?, ?)", (token, account_id, day, self.now(), expires_at))
        return token

    def report_file(self, token: str) -> dict | None:
        return self.one("SELECT * FROM report_files WHERE token = ?", (token,))

    # -- faults -----------------------------------------------------------------------------

    def add_fault(self, fault: dict) -> dict:
        cols = ["kind", "operation", "account_id", "remaining", "until", "http_status",
                "delay_seconds", "code", "error_code", "message", "body_contains", "skip",
                "as_fault", "created_at"]
        fid = self.execute(f"INSERT INTO faults ({', '.join(cols)}) VALUES "
                           f"({', '.join('?' * len(cols))})", [fault.get(c) for c in cols])
        return self.one("SELECT * FROM faults WHERE id = ?", (fid,))

    def take_faults(self, operation: str | None, account_id: str | None, body: str = "", *,
                    oauth: bool = False) -> list[dict]:
        """The faults that apply to this call, oldest first; each use counts down.

        Identity-platform calls (``oauth``) only get faults that name their operation
        (``token``, ``devicecode``, ``authorize``), so a plain throttle never hits sign-in. A
        fault with ``body_contains`` only hits requests whose raw body contains that text; one
        with ``skip`` lets that many matching calls through first.
        """
        now = self.now()
        taken = []
        with self.lock:
            for f in self.query("SELECT * FROM faults ORDER BY id"):
                if oauth and not f["operation"]:
                    continue
                if f["operation"] and (f["operation"] or "").lower() != (operation or "").lower():
                    continue
                if f["account_id"] and str(f["account_id"]) != str(account_id or ""):
                    continue
                if f["body_contains"] and f["body_contains"] not in body:
                    continue
                if f["until"] is not None and now >= f["until"]:
                    continue
                if f["remaining"] is not None and f["remaining"] <= 0:
                    continue
                if f["skip"]:
                    self.db.execute("UPDATE faults SET skip = skip - 1 WHERE id = ?", (f["id"],))
                    continue
                self.db.execute("UPDATE faults SET hits = hits + 1, remaining = CASE WHEN "
                                "remaining IS NULL THEN NULL ELSE remaining - 1 END "
                                "WHERE id = ?", (f["id"],))
                taken.append(f)
        return taken

    # -- request log --------------------------------------------------------------------------

    def log_request(self, entry: dict) -> int:
        """Log a request as received. Its body goes to ``request_bodies``, so that
        ``finish_request`` rewrites a small row, not the body as well (the admin API's ``GET
        requests`` reads it back as ``body``; rows an older version wrote keep theirs in
        ``requests.body``)."""
        cols = ["received_at", "real_time", "service", "operation", "method", "path", "headers",
                "status", "response", "account_id", "customer_id", "tracking_id", "outcome"]
        row = {**entry, "headers": json.dumps(entry.get("headers") or {})}
        with self.transaction() as db:
            rid = db.execute(f"INSERT INTO requests ({', '.join(cols)}) VALUES "
                             f"({', '.join('?' * len(cols))})", [row.get(c) for c in cols]
                             ).lastrowid
            if entry.get("body") is not None:
                db.execute("INSERT INTO request_bodies (request_id, body) VALUES (?, ?)",
                           (rid, entry["body"]))
        return rid

    def finish_request(self, rid: int, **fields) -> None:
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.execute(f"UPDATE requests SET {sets} WHERE id = ?", [*fields.values(), rid])


DIGITS = frozenset(string.digits)


def _reorder_dedup_keys(db: sqlite3.Connection) -> None:
    """Rewrite stored dedup keys of the first shape, goal|time|identity, as
    ``offline.dedup_key`` makes them, so that a resent conversion and an adjustment still find
    the stored one. Keys of that shape have an ISO time (a digit first) after the first ``|``;
    keys of the new shape an identity (``click:`` or ``hash:``); neither goal ids nor times
    hold a ``|``, while an identity may. A key of the new shape is left as it is."""
    for table in ("conversions", "duplicates"):
        changes = []
        for rid, key in db.execute(f"SELECT id, dedup_key FROM {table}"):
            parts = key.split("|", 2)
            if len(parts) == 3 and parts[1][:1] in DIGITS:
                goal_id, when_iso, identity = parts
                changes.append((dedup_key(goal_id, identity, when_iso), rid))
        db.executemany(f"UPDATE {table} SET dedup_key = ? WHERE id = ?", changes)


def _number_dedup_keys(db: sqlite3.Connection) -> None:
    """Make the conversions table anew with ``dedup_number`` and without the UNIQUE index on
    ``dedup_key``, and number the stored keys in the order stored (a key whose number an
    earlier one has gets none, as ``offline.record_conversions`` stores it). A table made so
    already (a new state file) is left as it is."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(conversions)")}
    if "dedup_number" in columns:
        return
    db.execute("DROP TABLE IF EXISTS conversions_numbered")
    db.execute(SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS conversions ("):
                      SCHEMA.index("CREATE TABLE IF NOT EXISTS duplicates")]
               .replace("conversions (", "conversions_numbered (", 1))
    db.execute(f"INSERT INTO conversions_numbered ({CONVERSION_COLUMNS}) "
               f"SELECT {CONVERSION_COLUMNS} FROM conversions")
    taken: set[int] = set()
    numbers = []
    for rid, key in db.execute("SELECT id, dedup_key FROM conversions_numbered ORDER BY id"):
        number = dedup_number(key)
        if number not in taken:
            taken.add(number)
            numbers.append((number, rid))
    db.executemany("UPDATE conversions_numbered SET dedup_number = ? WHERE id = ?", numbers)
    db.execute("DROP TABLE conversions")
    db.execute("ALTER TABLE conversions_numbered RENAME TO conversions")


class _Connection(sqlite3.Connection):
    """The store's connection, with the dedup numbers of its conversions (``numbers``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.numbers = StoredNumbers()


class _Transaction:
    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> _Connection:
        self.store.lock.acquire()
        self.store.db.execute("BEGIN")
        return self.store.db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        db = self.store.db
        try:
            if exc_type:
                db.execute("ROLLBACK")
            else:
                db.execute("COMMIT")
                db.numbers.commit()
        finally:
            db.numbers.rollback()  # all but what was committed (nothing is left after one)
            self.store.lock.release()


def normalise_account_status(status: str) -> str:
    """Account status as the Customer Management wire value (``Paused`` is sent as ``Pause``)."""
    value = (status or "Active").strip()
    if value.lower() in ("paused", "pause"):
        return "Pause"
    for known in ACCOUNT_STATUSES:
        if known.lower() == value.lower():
            return known
    raise StoreError(f"account status {status!r} is not one of {', '.join(ACCOUNT_STATUSES)} "
                     "(Paused is accepted for Pause)")
