"""The ``msads`` command: configure what is sent to Microsoft Advertising, from a terminal.

Each command module under this package has ``register(subparsers)``; the handlers it sets get
the parsed arguments and a :class:`~include.msads_capi.cli.common.Context`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from include.msads_capi import __version__
from include.msads_capi.cli.common import TRY_AGAIN, Context, fail
from include.msads_capi.errors import MsadsError, Unavailable

# Command modules, in the order `msads --help` lists them.
COMMAND_MODULES = ("db", "config", "microsoft", "pipeline", "hash", "emulator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msads",
        description="Send warehouse conversion events to Microsoft Advertising as offline "
                    "conversions. Every command says which warehouse it uses.")
    parser.add_argument("--version", action="version", version=f"msads-capi {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"include.msads_capi.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        result = args.handler(args, Context())
    except MsadsError as exc:
        return fail(str(exc))
    except Unavailable as exc:
        return fail(f"{exc} (nothing was lost; try again later)", TRY_AGAIN)
    except KeyboardInterrupt:
        return fail("interrupted")
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
