"""``msads auth login|status`` and ``msads goal add|list``: the Microsoft side of the setup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from include.msads_capi import spaces as cfg
from include.msads_capi.cli.common import info, print_json, print_table
from include.msads_capi.errors import MsadsError
from include.msads_capi.goals import records as goal_store

if TYPE_CHECKING:
    import argparse

    from include.msads_capi.cli.common import Context

_TWO_HOURS = timedelta(hours=2)
GOAL_COLS = ["goal_id", "name", "status", "count_type", "window_minutes", "revenue_type",
             "enhanced_conversions", "externally_attributed", "created_at", "state"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    auth = sub.add_parser("auth", help="connect a Microsoft profile: login, status")
    a = auth.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = a.add_parser("login", help="sign in with Microsoft and store the refresh token")
    p.add_argument("--conn-id", default="msads_default", help="the Airflow connection")
    p.add_argument("--flow", choices=["device", "code"],
                   help="device code (headless; default without a client secret) or "
                        "authorization code with a localhost redirect (default with a secret)")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for sign-in")
    p.set_defaults(handler=_login)
    p = a.add_parser("status", help="who is connected, when the token last refreshed")
    p.add_argument("--conn-id", default="msads_default")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_status)

    goal = sub.add_parser("goal", help="offline conversion goals: add, list")
    g = goal.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = g.add_parser("add", help="create an offline conversion goal in Microsoft Advertising")
    p.add_argument("--account", required=True, help="linked ad account id")
    p.add_argument("--name", required=True, help="goal name, unique per customer")
    p.add_argument("--window-days", type=int, default=30,
                   help="conversion window in days, 1 to 90 (default 30)")
    p.add_argument("--count-type", choices=["All", "Unique"], default="All")
    p.add_argument("--revenue-type", choices=["VariableValue", "FixedValue", "NoValue"],
                   default="VariableValue")
    p.add_argument("--revenue-value", type=float, default=0.0,
                   help="the value, or the default when an event has none")
    p.add_argument("--currency", help="ISO 4217 (default: the Space's currency)")
    p.add_argument("--scope", choices=["Account", "Customer"], default="Account")
    p.add_argument("--category", default="Purchase", help="goal category, e.g. Purchase, Lead")
    p.set_defaults(handler=_goal_add)
    p = g.add_parser("list", help="the account's goals as last fetched")
    p.add_argument("--account", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_goal_list)


def _login(args: argparse.Namespace, ctx: Context) -> int:
    import requests

    from include.msads_capi import migrations
    from include.msads_capi.microsoft import login
    from include.msads_capi.microsoft.tokens import TokenStore

    profile = ctx.profile(args.conn_id)
    migrations.require_current(ctx.warehouse)
    flow = args.flow or ("code" if profile.client_secret else "device")
    try:
        if flow == "device":
            result = login.device_code(profile, info)
        else:
            result = login.auth_code(profile, info, timeout=args.timeout)
    except requests.exceptions.ConnectionError as exc:
        raise MsadsError(f"cannot reach Microsoft sign-in at {profile.authority} "
                         f"({type(exc).__name__}); check the connection's environment and "
                         "the network") from exc
    who = login.who(result)
    TokenStore(ctx.warehouse).save(
        profile.conn_id, result["refresh_token"], profile=who,
        access_token=result.get("access_token"), expires_in=result.get("expires_in"),
        seed=profile.refresh_token)
    with ctx.transaction() as conn:
        revived = conn.execute(
            "UPDATE msads.accounts SET status = 'active', status_reason = NULL, "
            "status_changed_at = now(), updated_at = now() "
            "WHERE conn_id = %s AND status = 'auth_failed' RETURNING account_id",
            (profile.conn_id,)).fetchall()
    print(f"signed in as {who or 'unknown user'}; the refresh token of {profile.conn_id} is "
          "stored, encrypted, in the warehouse")
    if revived:
        print(f"account(s) {', '.join(str(r[0]) for r in revived)} are active again")
    return 0


def _status(args: argparse.Namespace, ctx: Context) -> int:
    from include.msads_capi.microsoft.tokens import TokenStore

    status = TokenStore(ctx.warehouse).status(args.conn_id)
    with ctx.transaction() as conn:
        accounts = [a for a in cfg.list_accounts(conn) if a.conn_id == args.conn_id]
    warning = status.warning()
    if args.json:
        print_json({"conn_id": args.conn_id, "connected": status.stored,
                    "profile": status.profile, "refreshed_at": status.refreshed_at,
                    "refresh_token_expires_at": status.expires_at,
                    "last_error": status.last_error, "warning": warning,
                    "accounts": [{"account_id": a.account_id, "status": a.status,
                                  "reason": a.status_reason} for a in accounts]})
        return 0
    if not status.stored:
        print(f"{args.conn_id}: not connected; sign in with msads auth login --conn-id "
              f"{args.conn_id}")
        return 0
    print(f"{args.conn_id}: connected as {status.profile or 'unknown user'}")
    print(f"  token last refreshed: {_when(status.refreshed_at)}")
    print(f"  refresh token expires if unused: {_when(status.expires_at)}")
    if status.last_error:
        print(f"  last error: {status.last_error}")
    for a in accounts:
        print(f"  account {a.account_id}: {a.status}"
              + (f" ({a.status_reason})" if a.status_reason else ""))
    if warning:
        info(f"warning: {warning}")
    return 0


def _when(value: datetime | None) -> str:
    if value is None:
        return "never"
    days = round((value - datetime.now(UTC)).total_seconds() / 86400)
    when = "today" if days == 0 else f"in {days} days" if days > 0 else f"{-days} days ago"
    return f"{value:%Y-%m-%d %H:%M UTC} ({when})"


def _goal_add(args: argparse.Namespace, ctx: Context) -> int:
    if not 1 <= args.window_days <= 90:
        raise MsadsError("--window-days must be between 1 and 90 (Microsoft's limit)")
    name = args.name.strip()
    if not name or len(name) > 100:
        raise MsadsError("goal name must be 1 to 100 characters")
    with ctx.transaction() as conn:
        account = cfg.get_account(conn, cfg.positive_id(args.account, "account id"))
        space = cfg.get_space(conn, account.space_id)
    from include.msads_capi import codes

    currency = codes.currency(args.currency) if args.currency else space.currency_code
    created = datetime.now(UTC)
    goal_id = ctx.client(account.conn_id).add_offline_goal(
        account.account_id, account.customer_id, name=name,
        window_minutes=args.window_days * 1440, count_type=args.count_type,
        revenue_type=args.revenue_type, revenue_value=args.revenue_value, currency=currency,
        scope=args.scope, category=args.category)
    with ctx.transaction() as conn:
        conn.execute(
            "INSERT INTO msads.goals (account_id, goal_id, name, status, scope, count_type, "
            "window_minutes, revenue_type, revenue_value, revenue_currency, created_at) "
            "VALUES (%s, %s, %s, 'Active', %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (account_id, goal_id) DO UPDATE SET created_at = EXCLUDED.created_at",
            (account.account_id, goal_id, name, args.scope, args.count_type,
             args.window_days * 1440, args.revenue_type, args.revenue_value, currency, created))
    print(f"created goal {goal_id} ({name}) in account {account.account_id}; Microsoft accepts "
          f"conversions for it from {created.replace(microsecond=0) + _TWO_HOURS:%Y-%m-%d %H:%M} "
          "UTC (2 hours after creation); until then its events wait as goal_too_new")
    return 0


def _goal_list(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.transaction() as conn:
        account = cfg.get_account(conn, cfg.positive_id(args.account, "account id"))
        rows = goal_store.list_goals(conn, account.account_id)
    for r in rows:
        r["state"] = "missing" if r["missing_since"] else "present"
    if args.json:
        print_json(rows)
    else:
        print_table(rows, GOAL_COLS, empty=f"no goals fetched for account {account.account_id}; "
                                           "trigger msads_refresh_goals (or msads goal add)")
    return 0
