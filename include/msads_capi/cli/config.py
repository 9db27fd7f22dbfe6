"""``msads space|capi|account|map``: the seed's Events Manager for people in a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.msads_capi import spaces as cfg
from include.msads_capi.cli.common import info, print_json, print_table

if TYPE_CHECKING:
    import argparse

    from include.msads_capi.cli.common import Context

SPACE_COLS = ["space_id", "name", "currency_code", "phone_region", "capi_enabled"]
ACCOUNT_COLS = ["account_id", "customer_id", "space_id", "conn_id", "status", "goals"]
MAPPING_COLS = ["mapping_id", "space_id", "account_id", "event_name", "goal_id", "goal_name",
                "goal_state", "send_rule", "enabled"]


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # -- space
    space = sub.add_parser("space", help="Spaces (business units): add, list, set")
    ss = space.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = ss.add_parser("add", help="create a Space (CAPI starts off)")
    p.add_argument("space_id", help="short id, e.g. shop-us")
    p.add_argument("--name", help="display name (default: the id)")
    p.add_argument("--currency", required=True, help="ISO 4217 code, e.g. USD")
    p.add_argument("--region", required=True,
                   help="default phone region, ISO 3166-1 alpha-2, e.g. US")
    p.set_defaults(handler=_space_add)
    p = ss.add_parser("list", help="list Spaces")
    _json_flag(p)
    p.set_defaults(handler=_space_list)
    p = ss.add_parser("set", help="change a Space's name, currency or phone region")
    p.add_argument("space_id")
    p.add_argument("--name")
    p.add_argument("--currency")
    p.add_argument("--region")
    p.set_defaults(handler=_space_set)

    # -- capi
    capi = sub.add_parser("capi", help="the Microsoft CAPI switch of a Space: on, off, status")
    cs = capi.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (("on", "start sending this Space's mapped events"),
                         ("off", "stop sending; every mapping is kept"),
                         ("status", "show the switch and the mappings")):
        p = cs.add_parser(action, help=text)
        p.add_argument("--space", required=True, help="Space id")
        if action == "status":
            _json_flag(p)
        p.set_defaults(handler=_capi, capi_action=action)

    # -- account
    acct = sub.add_parser("account", help="Microsoft Advertising ad accounts: link, unlink, list")
    acs = acct.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = acs.add_parser("link", help="link an ad account to a Space")
    p.add_argument("account_id", help="the ad account id")
    p.add_argument("--customer", help="the customer (manager account) id; looked up from the "
                                      "Microsoft profile when omitted")
    p.add_argument("--space", required=True, help="Space id")
    p.add_argument("--conn-id", default="msads_default",
                   help="Airflow connection of the Microsoft profile (default: msads_default)")
    p.add_argument("--name", help="a name to show for the account")
    p.set_defaults(handler=_account_link)
    p = acs.add_parser("unlink", help="unlink an ad account")
    p.add_argument("account_id")
    p.add_argument("--force", action="store_true", help="also remove the account's mappings")
    p.set_defaults(handler=_account_unlink)
    p = acs.add_parser("list", help="list linked ad accounts (--remote: the profile's accounts)")
    p.add_argument("--space", help="only this Space")
    p.add_argument("--remote", action="store_true",
                   help="list the accounts the Microsoft profile can reach, from Microsoft")
    p.add_argument("--conn-id", default="msads_default", help="with --remote: the connection")
    _json_flag(p)
    p.set_defaults(handler=_account_list)

    # -- map
    mp = sub.add_parser("map", help="map events to offline conversion goals: add, list, remove, "
                                    "enable, disable")
    ms = mp.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = ms.add_parser("add", help="send an event to a goal of a linked account")
    p.add_argument("--account", required=True, help="linked ad account id")
    p.add_argument("--goal", required=True, help="goal id, or goal name once goals are fetched")
    p.add_argument("--event", required=True, help="event_name in the events table, e.g. Purchase")
    p.add_argument("--rule", default="all", help="all (default) or attributed_only")
    p.set_defaults(handler=_map_add)
    p = ms.add_parser("list", help="list mappings")
    p.add_argument("--account")
    p.add_argument("--space")
    _json_flag(p)
    p.set_defaults(handler=_map_list)
    for action, text in (("remove", "delete a mapping"), ("enable", "resume a mapping"),
                         ("disable", "pause a mapping (kept, not sent)"),
                         ("confirm", "keep sending to a goal renamed in Microsoft Advertising")):
        p = ms.add_parser(action, help=text)
        p.add_argument("mapping_id", help="id from msads map list")
        p.set_defaults(handler=_map_change, map_action=action)


# --------------------------------------------------------------------------- handlers


def _space_row(s: cfg.Space) -> dict:
    return cfg.as_dict(s)


def _space_add(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.transaction() as conn:
        s = cfg.add_space(conn, args.space_id, name=args.name, currency=args.currency,
                          region=args.region)
    print(f"added Space {s.space_id} ({s.currency_code}, phones default to {s.phone_region}); "
          f"CAPI is off: turn it on with msads capi on --space {s.space_id}")
    return 0


def _space_list(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.transaction() as conn:
        rows = [_space_row(s) for s in cfg.list_spaces(conn)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, SPACE_COLS, empty="no Spaces yet: msads space add ID --currency USD "
                                             "--region US")
    return 0


def _space_set(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.transaction() as conn:
        s = cfg.set_space(conn, args.space_id, name=args.name, currency=args.currency,
                          region=args.region)
    print(f"updated Space {s.space_id}: name {s.name!r}, currency {s.currency_code}, "
          f"phone region {s.phone_region}")
    return 0


def _capi(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.transaction() as conn:
        if args.capi_action == "status":
            s = cfg.get_space(conn, cfg.space_id(args.space))
        else:
            s = cfg.set_capi(conn, args.space, args.capi_action == "on")
        mappings = [cfg.as_dict(m) for m in cfg.list_mappings(conn, space=s.space_id)]
    state = "on" if s.capi_enabled else "off"
    if args.capi_action != "status":
        kept = f"; {len(mappings)} mapping(s) kept" if args.capi_action == "off" else ""
        print(f"Microsoft CAPI is {state} for Space {s.space_id}{kept}")
        return 0
    if args.json:
        print_json({"space_id": s.space_id, "capi_enabled": s.capi_enabled,
                    "capi_changed_at": s.capi_changed_at, "mappings": mappings})
        return 0
    print(f"Microsoft CAPI is {state} for Space {s.space_id}"
          + (f" (since {s.capi_changed_at:%Y-%m-%d %H:%M %Z})" if s.capi_changed_at else ""))
    print_table(mappings, MAPPING_COLS, empty="no mappings: msads map add --account ID --goal "
                                              "GOAL --event EVENT")
    if not s.capi_enabled and mappings:
        info("nothing is sent while CAPI is off; events that arrive meanwhile end as capi_off")
    return 0


def _account_row(a: cfg.Account) -> dict:
    row = cfg.as_dict(a)
    row["goals"] = "fetched" if a.goals_fetched_at else "not fetched"
    return row


def _account_link(args: argparse.Namespace, ctx: Context) -> int:
    customer, name = args.customer, args.name
    if customer is None:
        from include.msads_capi.errors import NotFound

        aid = cfg.positive_id(args.account_id, "account id")
        remote = {a.account_id: a for a in ctx.client(args.conn_id).list_accounts()}
        if aid not in remote:
            raise NotFound(f"account {aid} is not among the accounts connection {args.conn_id} "
                           "can reach; see: msads account list --remote")
        customer, name = remote[aid].customer_id, name or remote[aid].name
    with ctx.transaction() as conn:
        a, created = cfg.link_account(conn, args.account_id, customer_id=customer,
                                      space=args.space, conn_id=args.conn_id, name=name)
    verb = "linked" if created else "already linked; updated"
    print(f"{verb} account {a.account_id} (customer {a.customer_id}) to Space {a.space_id} "
          f"via connection {a.conn_id}")
    return 0


def _account_unlink(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.transaction() as conn:
        removed = cfg.unlink_account(conn, args.account_id, force=args.force)
    extra = f" and removed its {removed} mapping(s)" if removed else ""
    print(f"unlinked account {cfg.positive_id(args.account_id, 'account id')}{extra}")
    return 0


def _account_list(args: argparse.Namespace, ctx: Context) -> int:
    if args.remote:
        return _account_list_remote(args, ctx)
    with ctx.transaction() as conn:
        rows = [_account_row(a) for a in cfg.list_accounts(conn, args.space)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ACCOUNT_COLS, empty="no linked accounts: msads account link ACCOUNT_ID "
                                               "--customer CUSTOMER_ID --space SPACE")
    return 0


def _account_list_remote(args: argparse.Namespace, ctx: Context) -> int:
    remote = ctx.client(args.conn_id).list_accounts()
    with ctx.transaction() as conn:
        linked = {a.account_id: a.space_id for a in cfg.list_accounts(conn)}
    rows = [{"account_id": a.account_id, "name": a.name, "number": a.number,
             "customer_id": a.customer_id, "status": a.status,
             "linked_to": linked.get(a.account_id)} for a in remote]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["account_id", "name", "number", "customer_id", "status", "linked_to"],
                    empty=f"connection {args.conn_id} reaches no ad accounts")
        info("link one with: msads account link ACCOUNT_ID --space SPACE")
    return 0


def _map_add(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.transaction() as conn:
        m = cfg.add_mapping(conn, account_id=args.account, goal=args.goal, event=args.event,
                            rule=args.rule)
        space = cfg.get_space(conn, m.space_id)
    goal = f"goal {m.goal_id}" + (f" ({m.goal_name})" if m.goal_name else "")
    print(f"mapping {m.mapping_id}: {m.event_name} -> {goal} of account {m.account_id}, "
          f"send rule {m.send_rule}")
    if m.goal_state == "unverified":
        info("the goal is unverified until the account's goals are fetched")
    if not space.capi_enabled:
        info(f"CAPI is off for Space {space.space_id}: turn it on with "
             f"msads capi on --space {space.space_id}")
    return 0


def _map_list(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.transaction() as conn:
        rows = [cfg.as_dict(m) for m in cfg.list_mappings(conn, account_id=args.account,
                                                          space=args.space)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, MAPPING_COLS, empty="no mappings: msads map add --account ID --goal "
                                              "GOAL --event EVENT")
    return 0


def _map_change(args: argparse.Namespace, ctx: Context) -> int:
    with ctx.transaction() as conn:
        if args.map_action == "remove":
            m = cfg.remove_mapping(conn, args.mapping_id)
            print(f"removed mapping {m.mapping_id} ({m.event_name} -> goal {m.goal_id})")
            return 0
        if args.map_action == "confirm":
            m = cfg.confirm_mapping(conn, args.mapping_id)
            print(f"mapping {m.mapping_id} ({m.event_name}) sends to goal {m.goal_id} "
                  f"({m.goal_name}) again")
            return 0
        m = cfg.set_mapping_enabled(conn, args.mapping_id, args.map_action == "enable")
    print(f"mapping {m.mapping_id} ({m.event_name} -> goal {m.goal_id}) is "
          f"{'enabled' if m.enabled else 'disabled'}")
    return 0
