"""Airflow provider registration: makes ``msads`` a connection type with a labelled form."""

from __future__ import annotations

from include.msads_capi import __version__


def get_provider_info() -> dict:
    text = {"type": ["string", "null"]}
    return {
        "package-name": "msads-capi",  # must equal the installed distribution's name
        "name": "Microsoft Advertising CAPI (msads-capi)",
        "description": "Offline conversions to Microsoft Advertising from a warehouse.",
        "versions": [__version__],
        "connection-types": [{
            "connection-type": "msads",
            "hook-class-name": "include.msads_capi.hooks.msads.MicrosoftAdsHook",
            "hook-name": "Microsoft Advertising",
            "ui-field-behaviour": {
                "hidden-fields": ["host", "schema", "port"],
                "relabeling": {"login": "OAuth client id", "password": "OAuth client secret"},
                "placeholders": {"login": "00000000-0000-0000-0000-000000000000"},
            },
            "conn-fields": {
                "developer_token": {"label": "Developer token", "sensitive": True,
                                    "schema": text},
                "tenant": {"label": "Tenant", "schema": {**text, "default": "common"}},
                "environment": {
                    "label": "Environment",
                    "description": "production, sandbox, or the emulator's URL",
                    "schema": {**text, "default": "production"}},
                "refresh_token": {
                    "label": "Refresh token",
                    "description": "the first one (msads auth login fills it); rotated tokens "
                                   "are kept encrypted in the warehouse",
                    "sensitive": True, "schema": text},
                "authority_host": {"label": "Sign-in host (emulator only)", "schema": text},
                "ca_file": {"label": "CA file (emulator only)", "schema": text},
            },
        }],
    }
