"""Time the emulator: start-up, and a 1,000-item ApplyOfflineConversions (server and SDK)."""

from __future__ import annotations

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
RUNS = 5


def rows(tenant, clicks: list[str], now: datetime, run: int) -> list[dict]:
    email = "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"
    return [{"ConversionName": tenant.goal_name, "MicrosoftClickId": click,
             "ConversionTime": (now - timedelta(minutes=run, seconds=i)).isoformat(),
             "ConversionValue": 19.99, "ConversionCurrencyCode": "EUR",
             "HashedEmailAddress": email} for i, click in enumerate(clicks)]


def main() -> None:
    started = perf_counter()
    emu = Emulator().start()
    startup = perf_counter() - started
    try:
        tenant = seed_tenant(emu)
        clicks = emu.admin.issue_clicks(tenant.account_id, ITEMS, click_time={"ago": 7200})
        svc = campaign_client(emu, tenant)
        now = datetime.fromtimestamp(emu.admin.clock()["epoch"], UTC) - timedelta(minutes=30)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        server = []  # the emulator alone: a prepared envelope posted raw
        for run in range(RUNS):
            svc.set_options(location=emu.campaign_url, nosend=True)
            prepared = svc.ApplyOfflineConversions(
                OfflineConversions={"OfflineConversion": rows(tenant, clicks, now, run)})
            request = urllib.request.Request(
                emu.campaign_url, data=prepared.envelope, method="POST",
                headers={"Content-Type": "text/xml; charset=utf-8",
                         "SOAPAction": '"ApplyOfflineConversions"'})
            t = perf_counter()
            with opener.open(request) as answer:
                body = answer.read()
            server.append(perf_counter() - t)
            assert b"<BatchError>" not in body, body[:500]
        svc.set_options(location=emu.campaign_url, nosend=False)

        sdk = []  # what a caller waits for: build, serialize, send, parse
        for run in range(RUNS, 2 * RUNS):
            batch = rows(tenant, clicks, now, run)
            t = perf_counter()
            result = svc.ApplyOfflineConversions(OfflineConversions={"OfflineConversion": batch})
            sdk.append(perf_counter() - t)
            assert not getattr(result, "BatchError", None)
        accepted = len(emu.admin.conversions())
    finally:
        emu.stop()
    print(f"emulator start-up (CA, TLS, SQLite, listening): {startup * 1000:.0f} ms")
    print(f"{ITEMS}-item ApplyOfflineConversions, emulator only ({len(prepared.envelope)} "
          f"bytes): median {statistics.median(server) * 1000:.0f} ms, "
          f"max {max(server) * 1000:.0f} ms")
    print(f"{ITEMS}-item ApplyOfflineConversions through bingads (suds serialize + send + "
          f"parse): median {statistics.median(sdk) * 1000:.0f} ms, "
          f"max {max(sdk) * 1000:.0f} ms")
    print(f"conversions accepted: {accepted}")


if __name__ == "__main__":
    main()
