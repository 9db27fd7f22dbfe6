"""Migrations: apply once, re-run safely, race safely, report status, refuse edited history."""

from __future__ import annotations

import shutil
import threading

import psycopg
import pytest

from include.msads_capi import migrations
from include.msads_capi.errors import MsadsError


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema IN ('public', 'msads')").fetchall()
    return {r[0] for r in rows}


def test_migrate_creates_the_contract_and_then_has_nothing_left(empty_warehouse):
    applied = migrations.migrate(empty_warehouse)
    assert [m.version for m in applied] == [m.version for m in migrations.discover()]
    assert {"public.conversion_events", "msads.spaces", "msads.accounts", "msads.goals",
            "msads.mappings", "msads.results", "msads.pickup_cursor"} <= _tables(
                empty_warehouse.url)
    assert migrations.migrate(empty_warehouse) == []
    assert all(s.applied_at is not None for s in migrations.status(empty_warehouse))


def test_conversion_events_matches_the_data_contract(warehouse):
    with psycopg.connect(warehouse.url) as conn:
        cols = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'conversion_events'").fetchall())
    assert cols == {
        "event_id": "text", "space_id": "text", "event_name": "text",
        "event_time": "timestamp with time zone", "value": "numeric",
        "currency_code": "character", "msclkid": "text", "email": "text", "phone": "text",
        "attributed_platform": "text", "ingested_at": "timestamp with time zone",
        "external_attribution_credit": "numeric", "external_attribution_model": "text",
    }
    with psycopg.connect(warehouse.url) as conn:
        conn.execute("INSERT INTO conversion_events (event_id, space_id, event_name, event_time) "
                     "VALUES ('e1', 's', 'Purchase', now())")
        (ingested,) = conn.execute("SELECT ingested_at FROM conversion_events").fetchone()
        assert ingested is not None
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO conversion_events (event_id, space_id, event_name, "
                         "event_time) VALUES ('e1', 's', 'Lead', now())")


def test_two_processes_migrating_at_once_apply_each_migration_once(empty_warehouse):
    results, errors = [], []

    def run():
        try:
            results.append(migrations.migrate(empty_warehouse))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    applied = sorted(len(r) for r in results)
    assert applied == [0, 0, 0, len(migrations.discover())]
    with psycopg.connect(empty_warehouse.url) as conn:
        (n,) = conn.execute("SELECT count(*) FROM msads.schema_migrations").fetchone()
    assert n == len(migrations.discover())


def test_status_lists_pending_before_migrate_and_writes_nothing(empty_warehouse):
    states = migrations.status(empty_warehouse)
    assert states and all(s.applied_at is None for s in states)
    assert _tables(empty_warehouse.url) == set()
    with pytest.raises(MsadsError, match="msads db migrate"):
        migrations.require_current(empty_warehouse)


def test_an_edited_applied_migration_is_refused(warehouse, tmp_path, monkeypatch):
    copy = tmp_path / "migrations"
    shutil.copytree(migrations.MIGRATIONS_DIR, copy)
    first = sorted(copy.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    monkeypatch.setattr(migrations, "MIGRATIONS_DIR", copy)
    monkeypatch.setattr(migrations.discover, "__defaults__", (copy,))
    with pytest.raises(MsadsError, match="changed after it was applied"):
        migrations.migrate(warehouse)


def test_a_failing_migration_leaves_nothing_half_applied(empty_warehouse, tmp_path, monkeypatch):
    copy = tmp_path / "migrations"
    shutil.copytree(migrations.MIGRATIONS_DIR, copy)
    (copy / "9999_broken.sql").write_text("CREATE TABLE msads.ok (x int);\nSELECT no_such_fn();\n")
    monkeypatch.setattr(migrations.discover, "__defaults__", (copy,))
    with pytest.raises(MsadsError, match="9999_broken.sql failed"):
        migrations.migrate(empty_warehouse)
    assert _tables(empty_warehouse.url) == set()


def test_a_custom_events_table_gets_the_optional_columns_and_keeps_its_rows(
        empty_warehouse, monkeypatch):
    from include.msads_capi.events import select_optional

    with psycopg.connect(empty_warehouse.url) as conn:
        conn.execute("CREATE SCHEMA analytics")
        conn.execute("CREATE TABLE analytics.conversions (event_id text, space_id text, "
                     "event_name text, event_time timestamptz, ingested_at timestamptz)")
        conn.execute("INSERT INTO analytics.conversions VALUES ('o-1', 's', 'Purchase', now(), "
                     "now())")
    monkeypatch.setenv("MSADS_EVENTS_TABLE", "analytics.conversions")
    with psycopg.connect(empty_warehouse.url) as conn:  # before: read as NULL
        assert select_optional(conn, "e") == ("NULL::numeric AS external_attribution_credit, "
                                              "NULL::text AS external_attribution_model")
    migrations.migrate(empty_warehouse)
    with psycopg.connect(empty_warehouse.url) as conn:
        assert select_optional(conn, "e") == ("e.external_attribution_credit, "
                                              "e.external_attribution_model")
        assert conn.execute("SELECT event_id, external_attribution_credit FROM "
                            "analytics.conversions").fetchall() == [("o-1", None)]


def test_conversions_waiting_across_the_upgrade_keep_their_attempts_and_first_sight(
        empty_warehouse, tmp_path, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from include.msads_capi.ledger import OutboxRow
    from include.msads_capi.sql import query

    before = tmp_path / "before"
    before.mkdir()
    for path in migrations.MIGRATIONS_DIR.glob("*.sql"):
        if int(path.name.split("_", 1)[0]) < 18:
            shutil.copy(path, before / path.name)
    monkeypatch.setattr(migrations.discover, "__defaults__", (before,))
    migrations.migrate(empty_warehouse)
    claimed = datetime.now(UTC).replace(microsecond=0)
    seen = claimed - timedelta(days=1)
    with psycopg.connect(empty_warehouse.url) as conn:
        # a retry planned again (its ledger row has 2 attempts) and a new event's conversion
        conn.execute("INSERT INTO msads.results (event_id, account_id, goal_id, status, reason, "
                     "attempts, first_seen_at, run_id) VALUES ('again', 1, 7, 'pending', "
                     "'ready', 2, %s, 'r')", (seen,))
        for event_id, first in (("again", None), ("new", claimed)):
            conn.execute("INSERT INTO msads.outbox (event_id, account_id, goal_id, customer_id, "
                         "run_id, conversion_name, conversion_time, hashed, claimed_at, "
                         "first_seen_at) VALUES (%s, 1, 7, 9, 'r', 'Purchase', %s, true, %s, "
                         "%s)", (event_id, claimed - timedelta(hours=1), claimed, first))
    monkeypatch.setattr(migrations.discover, "__defaults__", (migrations.MIGRATIONS_DIR,))
    applied = [m.version for m in migrations.migrate(empty_warehouse)]
    assert applied[0] == 18 and applied == sorted(applied)  # 18, and any after it
    with psycopg.connect(empty_warehouse.url) as conn:
        rows = [OutboxRow._make(r) for r in conn.execute(
            query("upload_batch").replace("{part}", ""),
            {"a": 1, "run": "r", "e": "", "g": 0, "n": 10}).fetchall()]
    assert [(r.event_id, r.attempts, r.first_seen_at) for r in rows] == [
        ("again", 2, seen), ("new", 0, claimed)]
