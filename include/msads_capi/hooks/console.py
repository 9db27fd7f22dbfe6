"""The Microsoft CAPI page inside Airflow: who the user is and what they may do, from Airflow.

The user comes from Airflow's own credential, as its API reads it: a ``Bearer`` header, else
the ``_token`` cookie the UI's browser sends (``airflow.api_fastapi.core_api.security``, not a
public API: the pinned Airflow version is tested by ``tests/ui``). Reading needs the view
permission on plugins; changing anything needs the permission to edit connections and variables
(the Op and Admin roles of the simple auth manager, or their equivalents in another auth
manager), because the page changes what the pipeline sends, as those do.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from include.msads_capi import crypto
from include.msads_capi.console.app import Console, Viewer, create_app
from include.msads_capi.hooks.connections import airflow_warehouse

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

    from include.msads_capi import warehouse as wh

URL_PREFIX = "/msads-capi"


async def airflow_viewer(request: Request) -> Viewer:
    """The signed-in Airflow user, or 401 (no credential) / 403 (not permitted)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import resolve_user_from_token
    from fastapi import HTTPException

    header = request.headers.get("authorization", "")
    token = (header[7:].strip() if header.lower().startswith("bearer ")
             else request.cookies.get(COOKIE_NAME_JWT_TOKEN))
    user = await resolve_user_from_token(token)
    manager = get_auth_manager()
    if not manager.is_authorized_view(access_view=AccessView.PLUGINS, user=user):
        raise HTTPException(403, "viewing the Microsoft CAPI page needs access to plugin views")
    can_edit = (manager.is_authorized_connection(method="PUT", user=user)
                and manager.is_authorized_variable(method="PUT", user=user))
    return Viewer(user.get_name(), can_edit, str(user.get_id()))


_warehouse: list[wh.Warehouse] = []


def _page_warehouse() -> wh.Warehouse:
    """The warehouse as the tasks see it (``warehouse_default``), resolved once."""
    if not _warehouse:
        _warehouse.append(airflow_warehouse())
    return _warehouse[0]


def page_app() -> FastAPI:
    secret = hashlib.sha256(b"msads-console\0" + crypto.key_material().encode()).digest()
    return create_app(Console(airflow_viewer, _page_warehouse, secret))
