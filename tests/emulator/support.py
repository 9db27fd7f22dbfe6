"""Small helpers the emulator tests share: the emulator's clock, conversions, batch errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from include.msads_emulator.testing import Tenant


def emu_now(emu) -> datetime:
    """The emulator's clock (tests move it instead of sleeping)."""
    return datetime.fromtimestamp(emu.admin.clock()["epoch"], UTC)


def conversion(tenant: Tenant, when: datetime, **fields) -> dict:
    """One OfflineConversion as a plain dict (the SDK writes it in schema order)."""
    row = {"ConversionName": tenant.goal_name, "ConversionTime": when.isoformat()}
    row.update(fields)
    return row


def upload(cm, rows: list[dict]):
    return cm.ApplyOfflineConversions(OfflineConversions={"OfflineConversion": rows})


def batch_errors(result) -> list[tuple[int, int, str]]:
    """(Index, Code, ErrorCode) of what ApplyOfflineConversions returned (unwrapped by suds)."""
    if result is None or isinstance(result, str):
        return []
    items = result.BatchError
    items = items if isinstance(items, list) else [items]
    return [(int(e.Index), int(e.Code), str(e.ErrorCode)) for e in items]


def ago(emu, **delta) -> datetime:
    return emu_now(emu) - timedelta(**delta)


def outcome(emu) -> list[tuple[bool, str | None]]:
    """(counted, not_counted_reason) of every accepted conversion, in the order received."""
    return [(r["counted"], r["not_counted_reason"]) for r in emu.admin.conversions()]
