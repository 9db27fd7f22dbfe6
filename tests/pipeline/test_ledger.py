"""The ledger's typed rows match its tables, and a stage cannot write a status that is not its own."""

from __future__ import annotations

import pytest

from include.msads_capi import ledger
from include.msads_capi.pipeline import upload
from include.msads_capi.warehouse import transaction


def _columns(conn, table: str) -> set[str]:
    schema, name = table.split(".")
    return {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s", (schema, name)).fetchall()}


def test_every_typed_row_names_columns_of_its_table(warehouse):
    with transaction(warehouse) as conn:
        results, outbox = _columns(conn, "msads.results"), _columns(conn, "msads.outbox")
    for row in (ledger.Planned, ledger.Decided, ledger.Answered):
        assert set(row._fields) <= results, (row.__name__, set(row._fields) - results)
    for row in (ledger.Outgoing, ledger.Hashed):
        assert set(row._fields) <= outbox, (row.__name__, set(row._fields) - outbox)


def test_the_upload_reads_outbox_rows_in_their_declared_order():
    selected = upload._BATCH.split("SELECT", 1)[1].split("FROM", 1)[0]
    names = [c.strip().split(".")[-1] for c in selected.split(",")]
    assert names == list(ledger.OutboxRow._fields)


@pytest.mark.parametrize(("stage", "row"), [
    ("hash", ledger.Decided("e1", 1, 2, "uploaded", "uploaded", None, None, None)),
    ("hash", ledger.Decided("e1", 1, 2, "pending", "ready", None, None, None)),
])
def test_a_stage_may_not_write_another_stages_status(warehouse, stage, row):
    with transaction(warehouse) as conn, pytest.raises(ValueError, match="may not write"):
        ledger.record(conn, stage, [row])
