"""Conversions are deduplicated through their dedup key's number (``offline.dedup_number``),
which two keys can share: a conversion whose number is taken is stored without one, and
repeats are still found exactly as by their keys. The tests of repeats, Unique goals,
adjustments and goals' tracking status run here again with one number for every key."""

from __future__ import annotations

import hashlib

import pytest

from include.msads_emulator import offline
from include.msads_emulator.store import Store
from tests.emulator.support import ago, batch_errors, conversion, upload
from tests.emulator.test_adjustments import (  # noqa: F401 (a fixture, and tests run again)
    test_a_retract_sent_again_is_a_duplicate_and_a_later_one_is_already_retracted,
    test_an_identical_restate_sent_again_is_accepted_and_not_applied_again,
    test_restate_and_retract_apply_to_the_original,
    uploaded,
)
from tests.emulator.test_conversions import (  # noqa: F401 (tests run again)
    test_a_different_time_or_goal_is_not_a_duplicate,
    test_a_unique_goal_counts_the_earliest_conversion_of_a_click,
    test_a_unique_goal_counts_the_earliest_even_when_it_arrives_last,
    test_a_unique_goal_without_a_click_goes_by_the_hashed_identity,
    test_duplicates_are_accepted_and_ignored,
)
from tests.emulator.test_goals import (  # noqa: F401 (run again)
    test_a_goal_records_conversions_once_the_account_uploaded_one_for_it,
)

SHA = hashlib.sha256(b"someone@example.com").hexdigest()


@pytest.fixture(autouse=True)
def one_number_for_every_key(monkeypatch):
    """Every key's number is 0 (the CRC-32s it is made of all 0), as are the ranges'."""
    monkeypatch.setattr(offline, "_crc", lambda text: 0)


@pytest.fixture
def click(emu, tenant):
    """A click the emulator issued (as test_conversions.py's tests take it)."""
    return emu.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})


def _numbers(store: Store) -> list[tuple[int, int | None]]:
    return [(r["id"], r["dedup_number"]) for r in store.query(
        "SELECT id, dedup_number FROM conversions ORDER BY id")]


def test_keys_with_one_number_are_stored_and_their_repeats_found(emu, cm, tenant, click):
    rows = [conversion(tenant, ago(emu, hours=h), MicrosoftClickId=click) for h in (1, 2, 3)]
    assert batch_errors(upload(cm, rows[:2])) == []
    stored = emu.admin.conversions()
    assert [n for _, n in _numbers(emu.store)] == [0, None]
    assert batch_errors(upload(cm, [rows[1]])) == []  # a repeat of the one without a number
    assert batch_errors(upload(cm, [rows[2], rows[2], rows[0]])) == []
    assert emu.admin.conversions()[:2] == stored
    assert [n for _, n in _numbers(emu.store)] == [0, None, None]
    assert [(d["item_index"], d["original_id"]) for d in emu.admin.duplicates()] == [
        (0, stored[1]["id"]), (1, emu.admin.conversions()[2]["id"]), (2, stored[0]["id"])]


def test_a_unique_recount_finds_the_conversions_stored_without_a_number():
    store = Store()
    try:
        now = store.now()
        identity = f"hash:{SHA}:"
        accepted = [tuple({"item_index": i, "account_id": 7, "customer_id": 9, "goal_id": 3,
                           "conversion_name": "Signup", "conversion_time": now - age,
                           "click_id": None, "hashed_email": SHA, "hashed_phone": None,
                           "value": None, "currency": None,
                           "external_attribution_credit": None,
                           "external_attribution_model": None, "identity": identity,
                           "dedup_key": offline.dedup_key(3, identity, str(age)),
                           "not_counted_reason": None, "count_type": "Unique",
                           "dedup_number": 0}[name]
                          for name in offline.ACCEPTED)
                    for i, age in enumerate((60, 180, 120))]
        for request_id, conversion_ in enumerate(accepted):
            with store.transaction() as db:
                offline.record_conversions(db, [conversion_], request_id, now)
        assert [n for _, n in _numbers(store)] == [0, None, None]
        assert [r["counted"] for r in store.query(
            "SELECT counted FROM conversions ORDER BY id")] == [0, 1, 0]
    finally:
        store.close()
