"""A state file written before dedup keys were goal|identity|time (they were goal|time|identity,
with an index on conversions (goal_id, identity)) keeps deduplicating, finding adjustments'
originals and counting Unique goals once the emulator opens it; one written before the index on
conversions (account_id) was dropped loses it; one written while the UNIQUE index was on the
dedup key itself gets its keys numbered (version 3) and keeps finding repeats; one with the
UNIQUE index on the numbers (version 3) loses it, the numbers being held in memory (version 4),
and keeps finding repeats."""

from __future__ import annotations

import hashlib
import sqlite3

from include.msads_emulator import Emulator, offline
from include.msads_emulator.store import CONVERSION_COLUMNS, VERSION, Store
from include.msads_emulator.testing import campaign_client, seed_tenant
from include.msads_emulator.timeutil import iso
from tests.emulator.support import ago, batch_errors, conversion, outcome, upload

SHA = hashlib.sha256(b"someone@example.com").hexdigest()


def _keys(path) -> dict[str, list[str]]:
    db = sqlite3.connect(path)
    try:
        return {table: [r[0] for r in db.execute(f"SELECT dedup_key FROM {table} ORDER BY id")]
                for table in ("conversions", "duplicates")}
    finally:
        db.close()


# The conversions table up to version 2: the UNIQUE index on dedup_key, no dedup_number.
CONVERSIONS_BEFORE_NUMBERS = """
CREATE TABLE conversions (
    id INTEGER PRIMARY KEY, request_id INTEGER, item_index INTEGER, account_id INTEGER,
    customer_id INTEGER, goal_id INTEGER, conversion_name TEXT, conversion_time REAL,
    click_id TEXT, hashed_email TEXT, hashed_phone TEXT, value REAL, currency TEXT,
    external_attribution_credit REAL, external_attribution_model TEXT, identity TEXT,
    dedup_key TEXT NOT NULL UNIQUE, counted INTEGER NOT NULL, not_counted_reason TEXT,
    received_at REAL NOT NULL, restated_value REAL, restated_currency TEXT,
    retracted_at REAL)"""


def _without_numbers(db: sqlite3.Connection, version: int = 2) -> None:
    """Turn an open state file's conversions table into what versions up to 2 made."""
    db.execute("ALTER TABLE conversions RENAME TO conversions_numbered")
    db.execute(CONVERSIONS_BEFORE_NUMBERS)
    db.execute(f"INSERT INTO conversions ({CONVERSION_COLUMNS}) "
               f"SELECT {CONVERSION_COLUMNS} FROM conversions_numbered")
    db.execute("DROP TABLE conversions_numbered")
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()


def _numbers(path) -> list[tuple[str, int | None]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT dedup_key, dedup_number FROM conversions ORDER BY id").fetchall()
    finally:
        db.close()


def _as_written_before(path) -> None:
    """Turn a state file into what the emulator wrote before: keys goal|time|identity, the
    (goal_id, identity) and (account_id) indexes, and no user_version."""
    db = sqlite3.connect(path)
    try:
        _without_numbers(db, 0)
        for table in ("conversions", "duplicates"):
            for rid, key in db.execute(f"SELECT id, dedup_key FROM {table}").fetchall():
                goal_id, rest = key.split("|", 1)
                identity, when = rest.rsplit("|", 1)
                db.execute(f"UPDATE {table} SET dedup_key = ? WHERE id = ?",
                           (f"{goal_id}|{when}|{identity}", rid))
        rows = db.execute("SELECT goal_id, conversion_time, identity, dedup_key "
                          "FROM conversions").fetchall()
        assert rows and all(key == f"{goal_id}|{iso(when)}|{identity}"
                            for goal_id, when, identity, key in rows)
        db.execute("CREATE INDEX conversions_identity ON conversions (goal_id, identity)")
        db.execute("CREATE INDEX conversions_account ON conversions (account_id)")
        db.execute("PRAGMA user_version = 0")
        db.commit()
    finally:
        db.close()


def _indexes(path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        db.close()


def test_an_old_state_file_still_knows_its_conversions_resent_and_adjusted(tmp_path):
    state = str(tmp_path / "emulator.sqlite")
    with Emulator(state) as first:
        tenant = seed_tenant(first)
        click = first.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})
        first.admin.issue_clicks(tenant.account_id, click_time={"ago": 3 * 3600},
                                 identities=[{"hashed_email": SHA}])
        rows = [conversion(tenant, ago(first, hours=1), MicrosoftClickId=click),
                conversion(tenant, ago(first, hours=2), HashedEmailAddress=SHA.upper())]
        cm = campaign_client(first, tenant)
        assert batch_errors(upload(cm, rows)) == []
        assert batch_errors(upload(cm, rows[:1])) == []  # a duplicate, kept as such
    _as_written_before(state)
    assert {"conversions_identity", "conversions_account"} <= _indexes(state)

    with Emulator(state) as second:
        cm = campaign_client(second, tenant)
        assert batch_errors(upload(cm, rows)) == []
        [by_click, by_email] = second.admin.conversions()  # nothing stored again
        assert [d["original_id"] for d in second.admin.duplicates()] == [
            by_click["id"], by_click["id"], by_email["id"]]
        retract = {"AdjustmentTime": ago(second, minutes=5).isoformat(),
                   "AdjustmentType": "Retract", "ConversionName": tenant.goal_name,
                   "ConversionTime": rows[1]["ConversionTime"], "HashedEmailAddress": SHA}
        assert batch_errors(cm.ApplyOfflineConversionAdjustments(
            {"OfflineConversionAdjustments": [retract]})) == []
        [adjusted] = second.admin.adjustments()
        assert (adjusted["original_id"], adjusted["applied"]) == (by_email["id"], True)
        assert second.admin.conversions()[1]["retracted_at"] is not None
    assert not {"conversions_identity", "conversions_account"} & _indexes(state)

    upgraded = _keys(state)
    assert upgraded["conversions"] == [
        offline.dedup_key(tenant.goal_id, f"click:{click.lower()}", by_click["conversion_time"]),
        offline.dedup_key(tenant.goal_id, f"hash:{SHA}:", by_email["conversion_time"])]
    assert sorted(upgraded["duplicates"]) == sorted([upgraded["conversions"][0]] * 2
                                                    + [upgraded["conversions"][1]])
    with Emulator(state):  # opened again: nothing more to do
        pass
    assert _keys(state) == upgraded


def test_a_state_file_of_version_1_loses_the_account_index_and_keeps_its_keys(tmp_path):
    state = str(tmp_path / "emulator.sqlite")
    with Emulator(state) as first:
        tenant = seed_tenant(first)
        click = first.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})
        row = conversion(tenant, ago(first, hours=1), MicrosoftClickId=click)
        assert batch_errors(upload(campaign_client(first, tenant), [row])) == []
    db = sqlite3.connect(state)
    try:  # as the emulator wrote it with dedup keys goal|identity|time and the account index
        _without_numbers(db, 1)
        db.execute("CREATE INDEX conversions_account ON conversions (account_id)")
        db.commit()
    finally:
        db.close()
    keys = _keys(state)

    with Emulator(state) as second:
        assert batch_errors(upload(campaign_client(second, tenant), [row])) == []
        assert len(second.admin.duplicates()) == 1  # the stored key still found
    assert "conversions_account" not in _indexes(state)
    assert _keys(state)["conversions"] == keys["conversions"]
    db = sqlite3.connect(state)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION
    finally:
        db.close()


def test_an_old_state_files_unique_goal_still_counts_only_the_earliest(tmp_path):
    state = str(tmp_path / "emulator.sqlite")
    with Emulator(state) as first:
        tenant = seed_tenant(first)
        first.admin.create_goal("Signup", account_id=tenant.account_id, count_type="Unique",
                                category="Signup")
        click = first.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})
        first.admin.issue_clicks(tenant.account_id, click_time={"ago": 3 * 3600},
                                 identities=[{"hashed_email": SHA}])
        later = [conversion(tenant, ago(first, minutes=30), ConversionName="Signup", **who)
                 for who in ({"MicrosoftClickId": click}, {"HashedEmailAddress": SHA})]
        assert batch_errors(upload(campaign_client(first, tenant), later)) == []
        assert outcome(first) == [(True, None), (True, None)]
    _as_written_before(state)

    with Emulator(state) as second:
        earlier = [{**row, "ConversionTime": ago(second, hours=2).isoformat()} for row in later]
        assert batch_errors(upload(campaign_client(second, tenant), earlier)) == []
        assert outcome(second) == [(False, "NotFirstConversionForUniqueGoal")] * 2 + [
            (True, None)] * 2


def _stored(goal_id: int, identity: str, when: float) -> tuple:
    fields = {"item_index": 0, "account_id": 7, "customer_id": 9, "goal_id": goal_id,
              "conversion_name": "Signup", "conversion_time": when, "click_id": None,
              "hashed_email": None, "hashed_phone": None, "value": None, "currency": None,
              "external_attribution_credit": None, "external_attribution_model": None,
              "identity": identity, "dedup_key": offline.dedup_key(goal_id, identity, iso(when)),
              "not_counted_reason": None, "count_type": "Unique"}
    fields["dedup_number"] = offline.dedup_number(fields["dedup_key"])
    return tuple(fields[name] for name in offline.ACCEPTED)


def _two_uploaded(emu: Emulator, email: str = SHA) -> tuple:
    """A tenant, and two conversions of it uploaded (one by click id, one by hashed email)."""
    tenant = seed_tenant(emu)
    click = emu.admin.issue_click(tenant.account_id, click_time={"ago": 3 * 3600})
    rows = [conversion(tenant, ago(emu, hours=1), MicrosoftClickId=click),
            conversion(tenant, ago(emu, hours=2), HashedEmailAddress=email)]
    assert batch_errors(upload(campaign_client(emu, tenant), rows)) == []
    return tenant, rows


def test_a_state_file_of_version_2_gets_its_keys_numbered_and_still_finds_repeats(tmp_path):
    state = str(tmp_path / "emulator.sqlite")
    with Emulator(state) as first:
        tenant, rows = _two_uploaded(first, SHA.upper())
        # a duplicate, kept as such
        assert batch_errors(upload(campaign_client(first, tenant), rows[:1])) == []
        conversions, duplicates = first.admin.conversions(), first.admin.duplicates()
    db = sqlite3.connect(state)
    try:
        _without_numbers(db)
    finally:
        db.close()
    assert "sqlite_autoindex_conversions_1" in _indexes(state)

    with Emulator(state) as second:
        assert (second.admin.conversions(), second.admin.duplicates()) == (conversions,
                                                                           duplicates)
        cm = campaign_client(second, tenant)
        assert batch_errors(upload(cm, rows)) == []  # both repeats
        assert batch_errors(upload(cm, [{**rows[0], "ConversionTime": ago(
            second, minutes=30).isoformat()}])) == []  # another time: a new conversion
        assert second.admin.conversions()[:2] == conversions
        assert len(second.admin.conversions()) == 3
        assert [d["original_id"] for d in second.admin.duplicates()] == [
            conversions[0]["id"], conversions[0]["id"], conversions[1]["id"]]
    indexes = _indexes(state)
    assert "conversions_unnumbered" in indexes and "sqlite_autoindex_conversions_1" not in indexes
    numbered = _numbers(state)
    assert [number for _, number in numbered] == [offline.dedup_number(key)
                                                  for key, _ in numbered]
    with Emulator(state):  # opened again: nothing more to do
        pass
    assert _numbers(state) == numbered


def test_a_state_file_of_version_3_loses_the_number_index_and_still_finds_repeats(tmp_path):
    state = str(tmp_path / "emulator.sqlite")
    with Emulator(state) as first:
        tenant, rows = _two_uploaded(first)
        conversions = first.admin.conversions()
    # what version 3 kept: a UNIQUE index of the numbers (and what it makes again when it
    # opens a file of version 4)
    for version, resent in ((3, 1), (4, 2)):
        db = sqlite3.connect(state)
        try:
            db.execute("DROP INDEX conversions_unnumbered")
            db.execute("CREATE UNIQUE INDEX conversions_number ON conversions (dedup_number)")
            db.execute(f"PRAGMA user_version = {version}")
            db.commit()
        finally:
            db.close()
        with Emulator(state) as again:
            assert batch_errors(upload(campaign_client(again, tenant), rows)) == []  # repeats
            assert again.admin.conversions() == conversions
            assert [d["original_id"] for d in again.admin.duplicates()] == [
                c["id"] for c in conversions] * resent
        indexes = _indexes(state)
        assert "conversions_unnumbered" in indexes and "conversions_number" not in indexes
        db = sqlite3.connect(state)
        try:
            assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION == 4
        finally:
            db.close()


def test_a_unique_recount_reads_the_rows_it_needs_and_tells_identities_apart():
    store = Store()
    try:
        # the rows of the numbers in memory by their ids, and those without a number by the
        # partial index: no scan of the conversions
        plan = " ".join(row["detail"] for row in store.db.execute(
            "EXPLAIN QUERY PLAN " + offline.SAME_IDENTITY, ("[1, 2]", 1, "c", "d")).fetchall())
        assert "conversions_unnumbered" in plan and "INTEGER PRIMARY KEY" in plan
        assert "SCAN conversions" not in plan
        # Identities one of which is the other's start and a "|": each has its own earliest.
        now = store.now()
        mine, longer = f"hash:{SHA}:", f"hash:{SHA}:|{SHA}"
        with store.transaction() as db:
            offline.record_conversions(db, [_stored(3, mine, now - 60),
                                            _stored(3, longer, now - 120),
                                            _stored(3, mine, now - 180)], 1, now)
        rows = store.query("SELECT identity, counted FROM conversions ORDER BY id")
        assert [(r["identity"], r["counted"]) for r in rows] == [(mine, 0), (longer, 1),
                                                                  (mine, 1)]
    finally:
        store.close()


def test_requests_logged_with_their_body_in_the_requests_table_still_list_it(tmp_path):
    state = str(tmp_path / "emulator.sqlite")
    with Emulator(state) as first:
        tenant = seed_tenant(first)
        assert batch_errors(upload(campaign_client(first, tenant), [
            conversion(tenant, ago(first, hours=1), HashedEmailAddress=SHA)])) == []
        logged = first.admin.requests(operation="ApplyOfflineConversions")
    db = sqlite3.connect(state)
    try:  # as an older version logged it: the body in requests.body
        db.execute("UPDATE requests SET body = (SELECT body FROM request_bodies "
                   "WHERE request_id = requests.id)")
        db.execute("DROP TABLE request_bodies")
        db.commit()
    finally:
        db.close()
    with Emulator(state) as second:
        assert second.admin.requests(operation="ApplyOfflineConversions") == logged
        assert SHA in logged[0]["body"]
