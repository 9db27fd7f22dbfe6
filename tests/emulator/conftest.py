"""Emulator tests: the session's emulator and per-test tenant come from tests/fixtures_microsoft.py."""

from __future__ import annotations

import pytest

from include.msads_emulator.testing import campaign_client, customer_client


@pytest.fixture
def admin(emu):
    return emu.admin


@pytest.fixture
def cm(emu, tenant):
    """Campaign Management through the SDK, sending the test's tenant credentials."""
    return campaign_client(emu, tenant)


@pytest.fixture
def cust(emu, tenant):
    """Customer Management through the SDK, sending the test's tenant credentials."""
    return customer_client(emu, tenant)
