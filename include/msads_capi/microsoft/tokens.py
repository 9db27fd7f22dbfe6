"""Access tokens from msal, with the rotating refresh token kept encrypted in the warehouse.

Microsoft may hand back a new refresh token on every refresh and the old one can stop working,
so the newest one is written to ``msads.oauth_tokens`` (Fernet-encrypted) before it is used. A
refresh happens with that row locked ``FOR UPDATE``: a second worker waits, then finds the new
access token already there and uses it instead of refreshing again, so no token is ever lost.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from include.msads_capi import crypto
from include.msads_capi.microsoft.faults import AccountAuthError, TransientError
from include.msads_capi.microsoft.profile import PRODUCTION_AUTHORITY_HOST, Profile
from include.msads_capi.warehouse import Warehouse, transaction

if TYPE_CHECKING:
    import msal
    import psycopg

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)  # refresh an access token this long before it expires
REFRESH_TOKEN_LIFETIME = timedelta(days=90)  # Microsoft's inactivity limit for refresh tokens
EXPIRY_WARNING = timedelta(days=14)


def utcnow() -> datetime:
    return datetime.now(UTC)


def fingerprint(secret: str | None) -> str | None:
    return hashlib.sha256(secret.encode()).hexdigest()[:32] if secret else None


@dataclass(frozen=True)
class TokenStatus:
    conn_id: str
    stored: bool
    profile: str | None
    refreshed_at: datetime | None
    refresh_token_issued_at: datetime | None
    last_error: str | None

    @property
    def expires_at(self) -> datetime | None:
        issued = self.refresh_token_issued_at
        return issued + REFRESH_TOKEN_LIFETIME if issued else None

    def warning(self, now: datetime | None = None) -> str | None:
        """A warning when the refresh token would expire unused within 14 days."""
        now = now or utcnow()
        if self.expires_at and self.expires_at - now <= EXPIRY_WARNING:
            days = max(0, (self.expires_at - now).days)
            return (f"the refresh token of {self.conn_id} expires in {days} day(s) unless it is "
                    f"used; run any goal refresh or upload, or sign in again with msads auth "
                    f"login --conn-id {self.conn_id}")
        return None


def msal_app(profile: Profile) -> msal.ClientApplication:
    """msal's client application for the profile (confidential when it has a client secret)."""
    import msal
    import requests

    session = requests.Session()
    if profile.ca_file:
        # REQUESTS_CA_BUNDLE would override a session's own `verify`; the emulator's CA must win.
        session.trust_env = False
        session.verify = profile.ca_file
    kwargs = {"authority": profile.authority, "http_client": session}
    if profile.sign_in_host != PRODUCTION_AUTHORITY_HOST:
        kwargs["instance_discovery"] = False  # not Microsoft's cloud: don't ask it about hosts
    if profile.client_secret:
        return msal.ConfidentialClientApplication(profile.client_id,
                                                  client_credential=profile.client_secret,
                                                  **kwargs)
    return msal.PublicClientApplication(profile.client_id, **kwargs)


def oauth_error(profile: Profile, result: dict) -> Exception:
    """An msal error dict as our exception: a refused grant needs a person, others may pass."""
    error = result.get("error") or "unknown_error"
    first_line = (result.get("error_description") or "").splitlines()[0:1]
    description = first_line[0] if first_line else ""
    message = (f"Microsoft sign-in for connection {profile.conn_id} failed: {error}"
               + (f" ({description})" if description else ""))
    if error in ("invalid_grant", "invalid_client", "unauthorized_client", "interaction_required",
                 "consent_required", "invalid_scope"):
        return AccountAuthError(message + f"; reconnect with: msads auth login --conn-id "
                                          f"{profile.conn_id}")
    return TransientError(message)


class TokenStore:
    """The ``msads.oauth_tokens`` table."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def save(self, conn_id: str, refresh_token: str, *, profile: str | None = None,
             access_token: str | None = None, expires_in: int | None = None,
             seed: str | None = None, now: datetime | None = None) -> None:
        """Store a refresh token obtained by signing in (``msads auth login``).

        ``seed`` is the refresh token the connection itself holds now (often a placeholder):
        remembering its fingerprint keeps it from replacing the token stored here.
        """
        now = now or utcnow()
        with transaction(self.warehouse) as conn:
            conn.execute(
                """INSERT INTO msads.oauth_tokens (conn_id, refresh_token_enc, seed_fingerprint,
                       access_token_enc, access_expires_at, refreshed_at,
                       refresh_token_issued_at, profile, last_error, updated_at)
                   VALUES (%(c)s, %(rt)s, %(seed)s, %(at)s, %(exp)s, %(now)s, %(now)s, %(p)s,
                           NULL, now())
                   ON CONFLICT (conn_id) DO UPDATE SET refresh_token_enc = EXCLUDED.refresh_token_enc,
                       seed_fingerprint = EXCLUDED.seed_fingerprint,
                       access_token_enc = EXCLUDED.access_token_enc,
                       access_expires_at = EXCLUDED.access_expires_at,
                       refreshed_at = EXCLUDED.refreshed_at,
                       refresh_token_issued_at = EXCLUDED.refresh_token_issued_at,
                       profile = COALESCE(EXCLUDED.profile, msads.oauth_tokens.profile),
                       last_error = NULL, updated_at = now()""",
                {"c": conn_id, "rt": crypto.encrypt(refresh_token),
                 "at": crypto.encrypt(access_token) if access_token else None,
                 "exp": now + timedelta(seconds=expires_in) if access_token and expires_in else None,
                 "now": now, "p": profile, "seed": fingerprint(seed)})

    def status(self, conn_id: str) -> TokenStatus:
        with transaction(self.warehouse) as conn:
            return token_status(conn, conn_id)


def token_status(conn: psycopg.Connection, conn_id: str) -> TokenStatus:
    """What the warehouse knows of a connection's tokens (never the tokens themselves)."""
    row = conn.execute(
        "SELECT refresh_token_enc IS NOT NULL, profile, refreshed_at, "
        "refresh_token_issued_at, last_error FROM msads.oauth_tokens WHERE conn_id = %s",
        (conn_id,)).fetchone()
    if row is None:
        return TokenStatus(conn_id, False, None, None, None, None)
    return TokenStatus(conn_id, *row)


class TokenProvider:
    """Hands out a valid access token for one profile, refreshing through msal when needed."""

    def __init__(self, profile: Profile, store: TokenStore, *,
                 clock: Callable[[], datetime] = utcnow,
                 app_factory: Callable[[Profile], msal.ClientApplication] = msal_app) -> None:
        self.profile = profile
        self.store = store
        self.clock = clock
        self._app_factory = app_factory
        self._app: msal.ClientApplication | None = None
        self._token: str | None = None
        self._expires_at: datetime | None = None

    @property
    def app(self) -> msal.ClientApplication:
        if self._app is None:
            self._app = self._app_factory(self.profile)
        return self._app

    def access_token(self, *, reject: str | None = None) -> str:
        """A token valid for at least a few minutes; ``reject`` one Microsoft just refused."""
        now = self.clock()
        if (self._token and self._token != reject and self._expires_at
                and self._expires_at - now > REFRESH_MARGIN):
            return self._token
        self._token, self._expires_at = self._from_store_or_refresh(reject, now)
        return self._token

    def _from_store_or_refresh(self, reject: str | None, now: datetime) -> tuple[str, datetime]:
        conn_id, seed = self.profile.conn_id, self.profile.refresh_token
        with transaction(self.store.warehouse) as conn:
            conn.execute(
                "INSERT INTO msads.oauth_tokens (conn_id, refresh_token_enc, seed_fingerprint, "
                "refresh_token_issued_at) VALUES (%s, %s, %s, %s) ON CONFLICT (conn_id) DO NOTHING",
                (conn_id, crypto.encrypt(seed) if seed else None, fingerprint(seed),
                 now if seed else None))
            (rt_enc, seed_fp, at_enc, at_exp) = conn.execute(
                "SELECT refresh_token_enc, seed_fingerprint, access_token_enc, access_expires_at "
                "FROM msads.oauth_tokens WHERE conn_id = %s FOR UPDATE", (conn_id,)).fetchone()
            if seed and fingerprint(seed) != seed_fp:
                # Someone put a new refresh token into the connection: it wins over ours.
                rt_enc, at_enc, at_exp = crypto.encrypt(seed), None, None
                conn.execute("UPDATE msads.oauth_tokens SET refresh_token_enc = %s, "
                             "seed_fingerprint = %s, access_token_enc = NULL, "
                             "refresh_token_issued_at = %s WHERE conn_id = %s",
                             (rt_enc, fingerprint(seed), now, conn_id))
            if at_enc and at_exp and at_exp - now > REFRESH_MARGIN:
                cached = crypto.decrypt(at_enc)
                if cached != reject:
                    return cached, at_exp  # another worker refreshed while we waited
            if not rt_enc:
                raise AccountAuthError(
                    f"connection {conn_id} has no refresh token; sign in with: msads auth login "
                    f"--conn-id {conn_id}")
            try:
                result = self.app.acquire_token_by_refresh_token(crypto.decrypt(rt_enc),
                                                                 scopes=self.profile.scopes)
            except Exception as exc:  # requests/network trouble inside msal
                raise TransientError(f"Microsoft sign-in for connection {conn_id} could not be "
                                     f"reached ({type(exc).__name__})") from exc
            if "access_token" not in result:
                failure = oauth_error(self.profile, result)
            else:
                return self._store_refreshed(conn, result, now)
        if isinstance(failure, AccountAuthError):
            with transaction(self.store.warehouse) as conn:
                conn.execute("UPDATE msads.oauth_tokens SET last_error = %s, updated_at = now() "
                             "WHERE conn_id = %s", (str(failure), conn_id))
        raise failure

    def _store_refreshed(self, conn: psycopg.Connection, result: dict,
                         now: datetime) -> tuple[str, datetime]:
        conn_id = self.profile.conn_id
        expires = now + timedelta(seconds=int(result.get("expires_in") or 3600))
        new_rt = result.get("refresh_token")
        conn.execute(
            "UPDATE msads.oauth_tokens SET access_token_enc = %s, access_expires_at = %s, "
            "refreshed_at = %s, last_error = NULL, updated_at = now(), "
            "refresh_token_enc = COALESCE(%s, refresh_token_enc), "
            "refresh_token_issued_at = CASE WHEN %s THEN %s ELSE refresh_token_issued_at END "
            "WHERE conn_id = %s",
            (crypto.encrypt(result["access_token"]), expires, now,
             crypto.encrypt(new_rt) if new_rt else None, bool(new_rt), now, conn_id))
        log.info("refreshed the Microsoft access token of connection %s%s", conn_id,
                 " (refresh token rotated and stored)" if new_rt else "")
        return result["access_token"], expires
