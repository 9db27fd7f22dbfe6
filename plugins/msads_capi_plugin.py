"""The "Microsoft CAPI" page in the Airflow UI's menu (Admin > Microsoft CAPI).

A FastAPI app mounted on the api-server at /msads-capi, shown inside the UI by an external view.
Everything it does lives in include/msads_capi/console (the page) and hooks/console (Airflow
login and permissions). Restart the api-server after changing them.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.msads_capi.hooks.console import URL_PREFIX, page_app


class MsadsCapiPlugin(AirflowPlugin):
    name = "msads_capi"
    fastapi_apps = [{"app": page_app(), "url_prefix": URL_PREFIX, "name": "Microsoft CAPI"}]
    external_views = [{"name": "Microsoft CAPI", "href": f"{URL_PREFIX}/",
                       "destination": "nav", "category": "admin", "url_route": "msads-capi"}]
