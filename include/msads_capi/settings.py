"""Settings read from the environment (``MSADS_*``), validated once at the edge."""

from __future__ import annotations

import os
import re

from include.msads_capi.errors import MsadsError

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$")


def events_table() -> str:
    """The analysts' events table, ``conversion_events`` unless ``MSADS_EVENTS_TABLE`` says."""
    name = os.environ.get("MSADS_EVENTS_TABLE", "conversion_events").strip()
    if not _IDENT.match(name):
        raise MsadsError(
            f"MSADS_EVENTS_TABLE={name!r} is not a plain table name; "
            "use lowercase letters, digits and _ (optionally schema.table)"
        )
    return name
