"""``msads emulator``: run the local Microsoft Advertising emulator in the foreground."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from include.msads_capi.errors import MsadsError
from include.msads_capi.paths import display, local_dir

if TYPE_CHECKING:
    import argparse

    from include.msads_capi.cli.common import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "emulator", help="run the Microsoft Advertising emulator (REST services, OAuth, "
                         "admin API) until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8765,
                   help="port for http and https alike (8765; 0 picks a free one)")
    p.add_argument("--state", metavar="FILE",
                   help="SQLite file that keeps the emulator's state across restarts "
                        "(default: memory only)")
    p.add_argument("--ca-file", metavar="PATH",
                   help="where to write the CA certificate clients must trust "
                        "(default: .local/emulator/ca.pem)")
    p.add_argument("--access-token-lifetime", type=int, metavar="SECONDS",
                   help="lifetime of new access tokens (Microsoft: 3600)")
    p.add_argument("--seed", action="store_true",
                   help="when the state is empty, create a demo tenant and print its "
                        "credentials as JSON")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace, ctx: Context) -> int:
    from include.msads_emulator import Emulator

    if not 0 <= args.port <= 65535:
        raise MsadsError(f"--port {args.port} is not a TCP port; use 1-65535, or 0 for any")
    ca_file = Path(args.ca_file) if args.ca_file else local_dir() / "emulator" / "ca.pem"
    settings = {}
    if args.access_token_lifetime is not None:
        if args.access_token_lifetime < 1:
            raise MsadsError("--access-token-lifetime must be at least 1 second")
        settings["access_token_lifetime_seconds"] = args.access_token_lifetime
    if args.state:
        Path(args.state).parent.mkdir(parents=True, exist_ok=True)
    emu = Emulator(args.state or ":memory:", host=args.host, port=args.port, ca_file=ca_file,
                   settings=settings)
    try:
        emu.start()
    except OSError as exc:
        raise MsadsError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; "
                         "pick another --port (0 for any free one)") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        print(f"campaign management  {emu.campaign_url}")
        print(f"customer management  {emu.customer_url}")
        print(f"oauth authority      {emu.authority}")
        print(f"ca file              {display(Path(emu.ca_file))}")
        print(f"admin api            {emu.admin_url}")
        print(f"state                {display(Path(args.state)) if args.state else 'memory'}")
        if args.seed:
            if emu.store.one("SELECT id FROM customers LIMIT 1"):
                print("seed                 skipped: the state already has customers")
            else:
                print("seed " + json.dumps(emu.admin.seed()))
        print("listening; Ctrl-C stops", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0
