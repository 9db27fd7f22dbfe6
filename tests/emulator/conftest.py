"""Emulator tests: the session's emulator and per-test tenant come from tests/fixtures_microsoft.py."""

from __future__ import annotations

import logging

import pytest

from include.msads_emulator.testing import (
    campaign_client,
    customer_client,
    use_tenant,
)

# suds logs the whole schema at ERROR level before raising TypeNotFound; the exception says
# enough.
logging.getLogger("suds").setLevel(logging.CRITICAL)


@pytest.fixture
def admin(emu):
    return emu.admin


@pytest.fixture(scope="session")
def _campaign(emu):
    return campaign_client(emu)


@pytest.fixture(scope="session")
def _customer(emu):
    return customer_client(emu)


@pytest.fixture
def cm(_campaign, tenant):
    """The Campaign Management ServiceClient, sending the test's tenant credentials."""
    return use_tenant(_campaign, tenant)


@pytest.fixture
def cust(_customer, tenant):
    """The Customer Management ServiceClient, sending the test's tenant credentials."""
    return use_tenant(_customer, tenant)
