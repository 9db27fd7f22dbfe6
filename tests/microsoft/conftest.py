"""The Microsoft side through the real bingads SDK and msal, against the emulator.

The fixtures live in tests/fixtures_microsoft.py (loaded by tests/conftest.py).
"""

from tests.fixtures_microsoft import EmulatorSleep, connection  # noqa: F401 - re-exported
