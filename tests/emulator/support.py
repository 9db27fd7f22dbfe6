"""Small helpers the emulator tests share: the emulator's clock, conversions, batch errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from include.msads_emulator.testing import Tenant


def emu_now(emu) -> datetime:
    """The emulator's clock (tests move it instead of sleeping)."""
    return datetime.fromtimestamp(emu.admin.clock()["epoch"], UTC)


def conversion(tenant: Tenant, when: datetime, **fields) -> dict:
    """One OfflineConversion as a dict of its JSON fields (the SDK's model reads it)."""
    row = {"ConversionName": tenant.goal_name, "ConversionTime": when.isoformat()}
    row.update(fields)
    return row


def upload(cm, rows: list[dict]):
    return cm.ApplyOfflineConversions({"OfflineConversions": rows})


def batch_errors(result) -> list[tuple[int, int, str]]:
    """(Index, Code, ErrorCode) of the PartialErrors an Apply call returned."""
    return [(e.index, e.code, e.error_code) for e in (result.partial_errors or [])]


def fault_of(caught: pytest.ExceptionInfo) -> tuple[int, dict]:
    """(HTTP status, the ApplicationFault's JSON) of the SDK's ApiException; the body as
    sent (the SDK's ``data`` can be an empty ApplicationFault: see microsoft/faults.py)."""
    exc = caught.value
    return exc.status, json.loads(exc.body)


def fault_codes(caught: pytest.ExceptionInfo) -> list[tuple[int | None, str | None]]:
    """(Code, ErrorCode) of every error in a fault: Errors, OperationErrors, BatchErrors."""
    _, fault = fault_of(caught)
    items = (fault.get("Errors") or []) + (fault.get("OperationErrors") or []) + (
        fault.get("BatchErrors") or [])
    return [(e.get("Code"), e.get("ErrorCode")) for e in items]


def ago(emu, **delta) -> datetime:
    return emu_now(emu) - timedelta(**delta)


def outcome(emu) -> list[tuple[bool, str | None]]:
    """(counted, not_counted_reason) of every accepted conversion, in the order received."""
    return [(r["counted"], r["not_counted_reason"]) for r in emu.admin.conversions()]
