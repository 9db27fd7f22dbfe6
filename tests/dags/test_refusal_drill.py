"""Fault drill with the real DAG: Microsoft refuses every request for ten minutes, then
recovers. Nothing is rejected, everything is uploaded after the recovery, nothing twice.

The DAG runs with ``dag.test()``; the pipeline's clock is the emulator's, so ten minutes pass
in a few seconds and the backoff of the waiting rows is real.
"""

from __future__ import annotations

import psycopg
import pytest

from include.msads_capi.tasks import upload as upload_tasks
from tests.dags.conftest import task_states
from tests.reliability.conftest import add_events, assert_accounted, assert_sent_once

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

APPLY = "ApplyOfflineConversions"


def test_ten_minutes_of_refused_requests_reject_nothing_and_lose_nothing(run_dag, shop,
                                                                        monkeypatch, capsys):
    s = shop
    monkeypatch.setattr(upload_tasks, "_now", s.now)  # the test's clock, as in the emulator
    events = add_events(s, 1_200)
    s.emu.admin.add_fault("http_error", http_status=404, operation=APPLY, for_seconds=600)
    failed, minutes = [], 0
    while minutes == 0 or assert_accounted(s, events) != {"uploaded": 1_200}:
        assert minutes <= 30, f"still waiting after {minutes} minutes: " \
                              f"{assert_accounted(s, events)}"
        dag_run = run_dag("msads_upload_conversions")
        states = task_states(dag_run)
        if "failed" in states.values():
            # only the account's upload fails, with one line naming it; the run goes on
            assert [k for k, v in states.items() if v == "failed"] == [
                ("upload_conversions", 0)], states
            assert states[("record_and_summarise", -1)] == "success", states
            failed.append(minutes)
        assert "rejected" not in assert_accounted(s, events)
        s.emu.admin.advance(120)
        minutes += 2
    assert failed and max(failed) < 10, failed  # red while Microsoft refused, green after
    logged = "".join(capsys.readouterr())  # the task log
    assert f"account {s.tenant.account_id}: Microsoft Advertising has refused whole " \
           "requests since" in logged
    assert_sent_once(s, resends_allowed=False)
    with psycopg.connect(s.warehouse.url) as conn:
        assert conn.execute("SELECT count(*) FROM msads.results WHERE status = 'rejected'"
                            ).fetchone() == (0,)
        assert conn.execute("SELECT refused_since FROM msads.accounts").fetchone() == (None,)
