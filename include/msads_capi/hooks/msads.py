"""MicrosoftAdsHook: a Microsoft Advertising profile (Airflow connection) as an API client."""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseHook

from include.msads_capi import warehouse as wh
from include.msads_capi.hooks.connections import airflow_warehouse
from include.msads_capi.microsoft.client import AdsClient
from include.msads_capi.microsoft.profile import Profile, profile_from_connection
from include.msads_capi.microsoft.retry import RetryPolicy
from include.msads_capi.microsoft.tokens import TokenProvider, TokenStore


class MicrosoftAdsHook(BaseHook):
    """Calls Microsoft Advertising for one connection (one Microsoft profile).

    The connection (type ``msads``) holds: ``login`` the OAuth client id, ``password`` the client
    secret, and in ``extra`` (JSON): ``developer_token``, ``tenant`` (default ``common``),
    ``environment`` (``production``, ``sandbox`` or the emulator's URL), ``authority_host`` and
    ``ca_file`` (emulator only), and ``refresh_token`` (the first one; later ones are rotated
    into the warehouse, encrypted). Tokens come from msal; the SDK never refreshes on its own.

    :param msads_conn_id: the Airflow connection id, ``msads_default`` by default.
    :param retry: the retry policy for transient failures (tests pass one that does not sleep).
    """

    conn_name_attr = "msads_conn_id"
    default_conn_name = "msads_default"
    conn_type = "msads"
    hook_name = "Microsoft Advertising"

    def __init__(self, msads_conn_id: str = default_conn_name, *,
                 retry: RetryPolicy | None = None) -> None:
        super().__init__()
        self.msads_conn_id = msads_conn_id
        self._retry = retry

    @cached_property
    def profile(self) -> Profile:
        conn = self.get_connection(self.msads_conn_id)
        return profile_from_connection(self.msads_conn_id, {
            "login": conn.login, "password": conn.password, "extra": conn.extra_dejson})

    @cached_property
    def warehouse(self) -> wh.Warehouse:
        return airflow_warehouse()

    @cached_property
    def client(self) -> AdsClient:
        tokens = TokenProvider(self.profile, TokenStore(self.warehouse))
        return AdsClient(self.profile, tokens, retry=self._retry)

    def get_conn(self) -> AdsClient:
        return self.client

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's Test button: can we sign in and list the profile's accounts?"""
        try:
            accounts = self.client.list_accounts()
        except Exception as exc:  # shown to the person testing; holds no secret
            return False, str(exc)
        return True, f"signed in; the profile reaches {len(accounts)} account(s)"
