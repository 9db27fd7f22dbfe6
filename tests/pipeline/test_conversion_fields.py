"""The upload hands the client its conversions ``ready`` (``AdsClient.upload``): each must be
what the client itself would have made of it, or Microsoft would get another request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from include.msads_capi.ledger import OutboxRow
from include.msads_capi.microsoft.client import _fields
from include.msads_capi.pipeline.upload import conversion

WHEN = datetime.fromtimestamp(1_900_000_000, UTC)


def _row(**fields) -> OutboxRow:
    base = dict(event_id="e-1", account_id=1, goal_id=2, customer_id=3,
                conversion_name="Purchase", conversion_time=WHEN, conversion_value=None,
                currency_code=None, click_id=None, email_sha256=None, phone_sha256=None,
                attribution_credit=None, attribution_model=None, attempts=0,
                first_seen_at=WHEN)
    return OutboxRow(**(base | fields))


@pytest.mark.parametrize("row", [
    _row(click_id="abc"),
    _row(conversion_time=WHEN + timedelta(microseconds=999_999), email_sha256="ab" * 32,
         phone_sha256="cd" * 32),
    _row(conversion_time=(WHEN + timedelta(seconds=1, microseconds=5)).astimezone(
        timezone(timedelta(hours=-5))), conversion_value=Decimal("12.50"), currency_code="EUR",
         click_id="abc"),
    _row(conversion_value=Decimal("0"), attribution_credit=Decimal("0.4"),
         attribution_model="house", click_id="abc"),
])
def test_a_ready_conversion_is_what_the_client_would_make_of_it(row):
    ready = conversion(row)
    made = _fields(dict(ready), "ConversionTime")
    assert ready == made
    assert [type(v) for v in ready.values()] == [type(v) for v in made.values()]
    sent = ready["ConversionTime"]
    assert sent.tzinfo is UTC and sent.microsecond == 0
    assert sent == (row.conversion_time - timedelta(
        microseconds=row.conversion_time.microsecond)).astimezone(UTC)
    assert None not in ready.values()
