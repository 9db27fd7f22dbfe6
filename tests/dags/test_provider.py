"""The `msads` connection type is registered with Airflow, with a labelled form."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.airflow


def test_msads_connection_type_has_a_labelled_form():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    assert "msads-capi" in pm.providers
    behaviour = pm.field_behaviours["msads"]
    assert behaviour["relabeling"] == {"login": "OAuth client id",
                                       "password": "OAuth client secret"}
    assert "host" in behaviour["hidden_fields"]


def test_hook_reads_a_json_env_connection(monkeypatch):
    from include.msads_capi.hooks.msads import MicrosoftAdsHook

    monkeypatch.setenv("AIRFLOW_CONN_MSADS_EU", json.dumps({
        "conn_type": "msads", "login": "client-1", "password": "s3cret",
        "extra": {"developer_token": "DEV", "environment": "sandbox"}}))
    profile = MicrosoftAdsHook("msads_eu").profile
    assert (profile.client_id, profile.client_secret, profile.developer_token) == (
        "client-1", "s3cret", "DEV")
    assert profile.scopes == ["https://si.ads.microsoft.com/msads.manage"]
    assert profile.host("CampaignManagementService") == (
        "https://campaign.api.sandbox.bingads.microsoft.com")  # Microsoft's sandbox
