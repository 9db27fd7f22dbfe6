"""``msads why``, ``run``, ``replay``, ``reconcile`` and ``report``: the pipeline from a
terminal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from include.msads_capi.cli.common import info, print_json
from include.msads_capi.times import parse_time

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from include.msads_capi.cli.common import Context
    from include.msads_capi.microsoft.client import AdsClient
    from include.msads_capi.settings import PipelineConfig
    from include.msads_capi.spaces import Account


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("why", help="why an event was (or was not) sent: the troubleshooting "
                                   "checklist answered from the data")
    p.add_argument("event_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_why)

    p = sub.add_parser("run", help="run the upload pipeline once now (what the DAG does every "
                                   "minute)")
    p.add_argument("--chunk-size", type=int, help="events per chunk (default 5000)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run)

    p = sub.add_parser("replay", help="send again events that were not sent (never an uploaded "
                                      "one); dry run unless --go")
    p.add_argument("--space")
    p.add_argument("--event", action="append", default=[], help="event name (repeatable)")
    p.add_argument("--start", help="event_time from, ISO 8601 with a time zone (Z or "
                                    "+01:00; a time without one is refused)")
    p.add_argument("--end", help="event_time until (exclusive), like --start")
    p.add_argument("--outcome", action="append", default=[],
                   help="outcome to resend (repeatable; default not_mapped, goal_missing, "
                        "account_inactive, failed; 'rejected' is every rejected:*, 'refused' "
                        "the rejections earlier versions recorded for whole refused requests)")
    p.add_argument("--go", action="store_true", help="really resend (default: dry run)")
    p.set_defaults(handler=_replay)

    p = sub.add_parser("reconcile", help="ask Microsoft's offline conversion reports what "
                                         "became of each upload (what msads_reconcile does)")
    p.add_argument("--days", type=int, default=7,
                   help="conversions uploaded in the last N days (default 7)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_reconcile)

    p = sub.add_parser("report", help="per account and goal: accepted, counted, attributed, "
                                      "match rate by identifier, why not attributed")
    p.add_argument("--since", default="7d", help="uploaded in the last 90m, 24h, 7d, ... "
                                                 "(default 7d)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_report)


def _why(args: argparse.Namespace, ctx: Context) -> int:
    from include.msads_capi.explain import explain, render

    with ctx.transaction() as conn:
        x = explain(conn, args.event_id)
    if args.json:
        print_json(x.as_dict())
    else:
        print(render(x))
    return 0


def _client_for(ctx: Context) -> Callable[[Account], AdsClient]:
    clients: dict[str, AdsClient] = {}

    def client_for(account: Account) -> AdsClient:
        if account.conn_id not in clients:
            clients[account.conn_id] = ctx.client(account.conn_id)
        return clients[account.conn_id]

    return client_for


def _stages(ctx: Context, run_id: str, config: PipelineConfig, *,
            claim_work: bool = True) -> dict:
    from include.msads_capi.cli.common import connection_client
    from include.msads_capi.pipeline.parallel import PartWorkers
    from include.msads_capi.pipeline.run import run_once

    with PartWorkers(connection_client, config.upload_processes - 1) as workers:
        return run_once(ctx.warehouse, _client_for(ctx), run_id, config, claim_work=claim_work,
                        workers=workers)


def _run(args: argparse.Namespace, ctx: Context) -> int:
    from include.msads_capi import migrations
    from include.msads_capi.settings import pipeline_config

    migrations.require_current(ctx.warehouse)
    run_id = f"cli__{datetime.now(UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
    summary = _stages(ctx, run_id, pipeline_config(chunk_size=args.chunk_size))
    if args.json:
        print_json(summary)
    else:
        print(f"run {run_id}: " + ", ".join(f"{k} {v}" for k, v in summary["outcomes"].items())
              if summary["outcomes"] else f"run {run_id}: nothing new")
        info(f"pending {summary['pending']}, deferred {summary['deferred']}")
    return 0


def _replay(args: argparse.Namespace, ctx: Context) -> int:
    from include.msads_capi import migrations
    from include.msads_capi.outcomes import REPLAY_DEFAULT
    from include.msads_capi.pipeline.replay import ReplayRequest, reopen
    from include.msads_capi.settings import pipeline_config

    start, end = parse_time(args.start, "--start"), parse_time(args.end, "--end")
    migrations.require_current(ctx.warehouse)
    req = ReplayRequest(space=args.space, event_names=args.event, start=start, end=end,
                        outcomes=args.outcome or list(REPLAY_DEFAULT), dry_run=not args.go)
    run_id = f"replay__{datetime.now(UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
    report = reopen(ctx.warehouse, req, run_id, datetime.now(UTC))
    if req.dry_run:
        print(f"dry run: {report['events']} event(s) would be planned again "
              f"({report['rows_by_outcome']}); {report['mapped_now']} of them now have an "
              "enabled mapping with CAPI on. Add --go to resend.")
        return 0
    summary = _stages(ctx, run_id, pipeline_config(), claim_work=False)
    print(f"replayed {report['events']} event(s): " + ", ".join(
        f"{k} {v}" for k, v in summary["outcomes"].items()))
    return 0


def _reconcile(args: argparse.Namespace, ctx: Context) -> int:
    from include.msads_capi import migrations
    from include.msads_capi import spaces as cfg
    from include.msads_capi.errors import MsadsError
    from include.msads_capi.reconcile import reconcile_account

    if not 1 <= args.days <= 90:
        raise MsadsError("--days must be between 1 and 90 (Microsoft keeps 90 days)")
    migrations.require_current(ctx.warehouse)
    with ctx.transaction() as conn:
        accounts = [a for a in cfg.list_accounts(conn) if a.status == "active"]
    client_for, now = _client_for(ctx), datetime.now(UTC)
    results = [reconcile_account(ctx.warehouse, client_for(a), a, now, args.days).as_dict()
               for a in accounts]
    if args.json:
        print_json(results)
    else:
        for r in results:
            print(f"account {r['account_id']}: {r['uploaded']} uploaded, {r['reported']} "
                  f"reported, {r['attributed']} attributed, {r['waiting']} not reported yet, "
                  f"{r['not_reported']} not reported")
        if not results:
            info("no active linked accounts")
    return 0


def _report(args: argparse.Namespace, ctx: Context) -> int:
    from include.msads_capi.reconcile import render_report, report
    from include.msads_capi.times import parse_span

    since = datetime.now(UTC) - parse_span(args.since, "--since")
    with ctx.transaction() as conn:
        rows = report(conn, since)
    if args.json:
        print_json(rows)
    else:
        print(render_report(rows, since))
    return 0
