"""``msads db migrate|status`` and ``msads warehouse start|status|stop``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.msads_capi import migrations, warehouse
from include.msads_capi.cli.common import info, print_json, print_table
from include.msads_capi.settings import load

if TYPE_CHECKING:
    import argparse

    from include.msads_capi.cli.common import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="warehouse schema: migrate, status")
    dbs = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = dbs.add_parser("migrate", help="apply pending migrations (safe to run again, or twice "
                                       "at once)")
    p.set_defaults(handler=_migrate)
    p = dbs.add_parser("status", help="list applied and pending migrations")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_status)

    wh = sub.add_parser("warehouse", help="the embedded warehouse: start, status, stop")
    whs = wh.add_subparsers(dest="action", metavar="ACTION", required=True)
    whs.add_parser("start", help="start the embedded PostgreSQL (or say which server is used)"
                   ).set_defaults(handler=_wh_start)
    whs.add_parser("status", help="say which warehouse commands use and whether it runs"
                   ).set_defaults(handler=_wh_status)
    whs.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(handler=_wh_stop)
    whs.add_parser("url", help="print the warehouse URL (for psql)").set_defaults(handler=_wh_url)


def _migrate(args: argparse.Namespace, ctx: Context) -> int:
    applied = migrations.migrate(ctx.warehouse)
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    if not applied:
        print("nothing to migrate: the warehouse is up to date")
    return 0


def _status(args: argparse.Namespace, ctx: Context) -> int:
    states = migrations.status(ctx.warehouse)
    rows = [{"version": s.label, "state": "applied" if s.applied_at else "pending",
             "applied_at": s.applied_at} for s in states]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["version", "state", "applied_at"], empty="no migrations found")
        left = sum(1 for s in states if s.applied_at is None)
        info(f"{left} pending: run msads db migrate" if left else "up to date")
    return 0


def _configured_server() -> bool:
    return bool(load().warehouse_url
                or warehouse.env_connection_lookup(warehouse.WAREHOUSE_CONN_ID))


def _wh_start(args: argparse.Namespace, ctx: Context) -> int:
    _ = ctx.warehouse  # resolving starts the embedded server when it is the one in use
    return 0


def _wh_status(args: argparse.Namespace, ctx: Context) -> int:
    if _configured_server():
        _ = ctx.warehouse  # says which server is in use
    print(warehouse.EmbeddedWarehouse().status())
    return 0


def _wh_stop(args: argparse.Namespace, ctx: Context) -> int:
    embedded = warehouse.EmbeddedWarehouse()
    print("stopped the embedded PostgreSQL" if embedded.stop()
          else embedded.status().replace("embedded PostgreSQL: ", "embedded PostgreSQL was "))
    return 0


def _wh_url(args: argparse.Namespace, ctx: Context) -> int:
    print(ctx.warehouse.url)
    return 0
