"""Time the emulator: start-up, and a 1,000-item ApplyOfflineConversions (server and SDK).

    python bench/emulator.py               # 5 calls of each kind
    python bench/emulator.py --runs 1      # a quick run

"Emulator only" posts a ready-made JSON body (built by the SDK beforehand) with plain urllib;
"through the SDK" is what a caller waits for with the REST SDK (msads): build the SDK's models,
serialise, send, parse. The last line is the ratio of the two medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.msads_emulator import Emulator  # noqa: E402
from include.msads_emulator.testing import campaign_client, seed_tenant  # noqa: E402

ITEMS = 1000
APPLY = "/CampaignManagement/v13/OfflineConversions/Apply"


def rows(tenant, clicks: list[str], now: datetime, run: int) -> list[dict]:
    email = "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"
    return [{"ConversionName": tenant.goal_name, "MicrosoftClickId": click,
             "ConversionTime": now - timedelta(minutes=run, seconds=i),
             "ConversionValue": 19.99, "ConversionCurrencyCode": "EUR",
             "HashedEmailAddress": email} for i, click in enumerate(clicks)]


def request(tenant, batch: list[dict]):
    from openapi_client.models.campaign.apply_offline_conversions_request import (
        ApplyOfflineConversionsRequest,
    )
    from openapi_client.models.campaign.offline_conversion import OfflineConversion

    return ApplyOfflineConversionsRequest(
        OfflineConversions=[OfflineConversion(**row) for row in batch])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="calls of each kind (default 5)")
    args = parser.parse_args()
    started = perf_counter()
    emu = Emulator().start()
    startup = perf_counter() - started
    try:
        tenant = seed_tenant(emu)
        clicks = emu.admin.issue_clicks(tenant.account_id, ITEMS, click_time={"ago": 7200})
        cm = campaign_client(emu, tenant)
        now = datetime.fromtimestamp(emu.admin.clock()["epoch"], UTC) - timedelta(minutes=30)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        server, size = [], 0  # the emulator alone: a body the SDK made, posted raw
        for run in range(args.runs):
            body = json.dumps(cm.api_client.sanitize_for_serialization(
                request(tenant, rows(tenant, clicks, now, run)))).encode()
            size = len(body)
            raw = urllib.request.Request(emu.base_url + APPLY, data=body, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  **cm.headers})
            t = perf_counter()
            with opener.open(raw) as answer:
                answered = json.loads(answer.read())
            server.append(perf_counter() - t)
            assert not answered["PartialErrors"], answered["PartialErrors"][:2]

        sdk = []  # what a caller waits for: build the models, serialise, send, parse
        for run in range(args.runs, 2 * args.runs):
            batch = rows(tenant, clicks, now, run)
            t = perf_counter()
            result = cm.ApplyOfflineConversions(request(tenant, batch))
            sdk.append(perf_counter() - t)
            assert not result.partial_errors
        accepted = len(emu.admin.conversions())
    finally:
        emu.stop()
    print(f"emulator start-up (CA, TLS, SQLite, listening): {startup * 1000:.0f} ms")
    print(f"{ITEMS}-item ApplyOfflineConversions, emulator only ({size:,} bytes of JSON): "
          f"median {statistics.median(server) * 1000:.0f} ms, max {max(server) * 1000:.0f} ms")
    print(f"{ITEMS}-item ApplyOfflineConversions through the REST SDK (build + serialise + "
          f"send + parse): median {statistics.median(sdk) * 1000:.0f} ms, "
          f"max {max(sdk) * 1000:.0f} ms")
    print(f"conversions accepted: {accepted:,} of {2 * args.runs * ITEMS:,}")
    print(f"SDK call / emulator alone: {statistics.median(sdk) / statistics.median(server):.2f}")


if __name__ == "__main__":
    main()
