"""A local Microsoft Advertising stand-in that the unmodified bingads SDK and msal talk to.

``Emulator`` serves Campaign Management v13 and Customer Management v13 (SOAP 1.1), the
Microsoft identity platform's OAuth endpoints (https, with a CA it makes at start) and an admin
API under ``/_emulator/``; ``AdminClient`` drives that API. See docs/emulator.md.
"""

from __future__ import annotations

from include.msads_emulator.client import AdminClient, AdminError
from include.msads_emulator.server import CAMPAIGN_PATH, CUSTOMER_PATH, Emulator

__all__ = ["CAMPAIGN_PATH", "CUSTOMER_PATH", "AdminClient", "AdminError", "Emulator"]
