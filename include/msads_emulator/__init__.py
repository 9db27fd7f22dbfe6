"""A local Microsoft Advertising stand-in that the unmodified ``msads`` SDK and msal talk to.

``Emulator`` serves Campaign Management v13 and Customer Management v13 over REST (JSON), the
Microsoft identity platform's OAuth endpoints (https, with a CA it makes at start) and an admin
API under ``/_emulator/``, all on one port; ``AdminClient`` drives that API. See
docs/emulator.md.
"""

from __future__ import annotations

from include.msads_emulator.client import AdminClient, AdminError
from include.msads_emulator.server import Emulator

__all__ = ["AdminClient", "AdminError", "Emulator"]
