"""``msads hash``: show how one email address or phone number is normalised and hashed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.msads_capi import codes
from include.msads_capi.cli.common import info, print_json
from include.msads_capi.errors import MsadsError
from include.msads_capi.identity import Normalized, describe, normalize_email, normalize_phone

if TYPE_CHECKING:
    import argparse

    from include.msads_capi.cli.common import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "hash", help="normalise and SHA-256 an email and/or phone number exactly as uploads do",
        description="Print one JSON object with keys email and phone: null when not given, "
                    "else {normalized, sha256, reason}. Nothing is sent anywhere.")
    p.add_argument("--email", metavar="E", help="an email address")
    p.add_argument("--phone", metavar="P", help="a phone number, national or international")
    p.add_argument("--region", metavar="R",
                   help="default region for a national phone number (ISO 3166-1 alpha-2, "
                        "e.g. US, GB, DE), as a Space's default phone region")
    p.add_argument("--gmail-canonical", action="store_true",
                   help="also drop dots and +tags of Gmail addresses (off in the pipeline "
                        "unless configured; Microsoft documents no such rule)")
    p.set_defaults(handler=_hash)


def _as_json(result: Normalized) -> dict:
    return {"normalized": result.normalized, "sha256": result.sha256, "reason": result.reason}


def _hash(args: argparse.Namespace, ctx: Context) -> int:
    if args.email is None and args.phone is None:
        raise MsadsError("nothing to hash: give --email, --phone or both, e.g. "
                         "msads hash --phone '(650) 253-0000' --region US")
    region = codes.region(args.region) if args.region else None
    email = (None if args.email is None
             else normalize_email(args.email, gmail_canonical=args.gmail_canonical))
    phone = None if args.phone is None else normalize_phone(args.phone, region)
    print_json({"email": None if email is None else _as_json(email),
                "phone": None if phone is None else _as_json(phone)})
    # Why a value is unusable, for people; stdout stays one JSON object for scripts.
    for what, result in (("email", email), ("phone", phone)):
        if result is not None and result.reason:
            info(f"{what}: {result.reason}: {describe(result.reason)}")
    return 0
