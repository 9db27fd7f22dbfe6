"""One pipeline run in its own process, as an Airflow worker would do it: ``RUN_ID [CHUNK]``.

Reads the warehouse from ``MSADS_WAREHOUSE_URL``, the Microsoft profile from
``AIRFLOW_CONN_MSADS_DEFAULT`` and the emulator's clock from ``MSADS_EMULATOR_ADMIN`` (the
drills move that clock instead of sleeping). Prints the run summary as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime


def main(argv: list[str]) -> int:
    from include.msads_capi.microsoft.client import AdsClient
    from include.msads_capi.microsoft.profile import profile_from_connection
    from include.msads_capi.microsoft.tokens import TokenProvider, TokenStore
    from include.msads_capi.pipeline.run import run_once
    from include.msads_capi.settings import PipelineConfig
    from include.msads_capi.warehouse import Warehouse
    from include.msads_emulator.client import AdminClient

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    run_id = argv[0]
    chunk = int(argv[1]) if len(argv) > 1 else 5000
    admin = AdminClient(os.environ["MSADS_EMULATOR_ADMIN"])

    def clock() -> datetime:
        return datetime.fromisoformat(admin.clock()["now"].replace("Z", "+00:00"))

    warehouse = Warehouse(os.environ["MSADS_WAREHOUSE_URL"], "MSADS_WAREHOUSE_URL")
    profile = profile_from_connection("msads_default",
                                      json.loads(os.environ["AIRFLOW_CONN_MSADS_DEFAULT"]))
    client = AdsClient(profile, TokenProvider(profile, TokenStore(warehouse)))
    summary = run_once(warehouse, lambda account: client, run_id,
                       PipelineConfig(chunk_size=chunk), clock=clock)
    print(json.dumps(summary, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
