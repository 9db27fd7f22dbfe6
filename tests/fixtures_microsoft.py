"""Emulator fixtures shared by every test that reaches Microsoft through the real SDK and msal."""

from __future__ import annotations

import json

import pytest

from include.msads_capi.microsoft.client import AdsClient
from include.msads_capi.microsoft.profile import Profile, profile_from_connection
from include.msads_capi.microsoft.retry import RetryPolicy
from include.msads_capi.microsoft.tokens import TokenProvider, TokenStore
from include.msads_emulator import Emulator
from include.msads_emulator.testing import Tenant, assert_conformant, seed_tenant


@pytest.fixture(scope="session")
def emu():
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def tenant(emu) -> Tenant:
    """A fresh tenant in the session's emulator. Afterwards, every REST answer the emulator
    sent during the test is read strictly by the SDK's models: a mismatch fails the test."""
    emu.admin.reset()
    yield seed_tenant(emu)
    assert_conformant(emu)


def connection(emu, tenant: Tenant, **extra) -> dict:
    """The msads connection for a tenant, in Airflow's JSON form."""
    return {"conn_type": "msads", "login": tenant.client_id, "password": tenant.client_secret,
            "extra": {"developer_token": tenant.developer_token, "environment": emu.base_url,
                      "ca_file": emu.ca_file, "refresh_token": tenant.refresh_token, **extra}}


@pytest.fixture
def msads_conn(emu, tenant, monkeypatch) -> dict:
    conn = connection(emu, tenant)
    monkeypatch.setenv("AIRFLOW_CONN_MSADS_DEFAULT", json.dumps(conn))
    return conn


@pytest.fixture
def profile(msads_conn) -> Profile:
    return profile_from_connection("msads_default", msads_conn)


class EmulatorSleep:
    """A RetryPolicy sleep that moves the emulator's clock instead of waiting."""

    def __init__(self, emu) -> None:
        self.emu, self.waits = emu, []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.emu.admin.advance(seconds)


@pytest.fixture
def sleeper(emu) -> EmulatorSleep:
    return EmulatorSleep(emu)


@pytest.fixture
def make_client(warehouse, sleeper):
    def make(profile: Profile) -> AdsClient:
        tokens = TokenProvider(profile, TokenStore(warehouse))
        return AdsClient(profile, tokens, retry=RetryPolicy(sleep=sleeper, rand=lambda: 0.0))

    return make


@pytest.fixture
def client(make_client, profile) -> AdsClient:
    return make_client(profile)
