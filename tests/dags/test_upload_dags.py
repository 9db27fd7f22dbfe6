"""msads_upload_conversions and msads_replay end to end with dag.test()."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.dags.conftest import task_states

pytestmark = pytest.mark.airflow


def test_upload_dag_sends_and_records_with_tasks_named_by_account(run_dag, shop):
    s = shop
    sent = [s.event() for _ in range(3)]
    unmapped = s.event("Signup")
    dag_run = run_dag("msads_upload_conversions")
    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert states[("upload_conversions", 0)] == "success"
    assert all(s.reason(e) == ["uploaded"] for e in sent)
    assert s.reason(unmapped) == ["not_mapped"]
    assert len(s.emu.admin.conversions()) == 3
    ti = [t for t in dag_run.get_task_instances() if t.task_id == "upload_conversions"][0]
    assert str(s.tenant.account_id) in (ti.rendered_map_index or "")
    last = [t for t in dag_run.get_task_instances() if t.task_id == "record_and_summarise"][0]
    summary = last.xcom_pull(task_ids="record_and_summarise")
    # what the run hashed, counted in the run's summary (the unmapped event was not hashed)
    assert summary["identifier_coverage"] == {"rows": 3, "click_id": 3, "email": 0, "phone": 0,
                                              "none": 0}
    # a second run finds nothing new and decides nothing again
    again = run_dag("msads_upload_conversions")
    assert again.state == "success"
    assert len(s.emu.admin.conversions()) == 3 and len(s.outcomes()) == 4


def test_a_big_backlog_is_uploaded_by_one_task_per_part(run_dag, shop, monkeypatch):
    s = shop
    monkeypatch.setenv("MSADS_UPLOAD_PROCESSES", "2")
    monkeypatch.setenv("MSADS_PART_MIN_CONVERSIONS", "4")
    sent = [s.event() for _ in range(9)]
    dag_run = run_dag("msads_upload_conversions")
    assert dag_run.state == "success", task_states(dag_run)
    names = [ti.rendered_map_index for ti in dag_run.get_task_instances()
             if ti.task_id == "upload_conversions"]
    assert sorted(n.rsplit(", ", 1)[1] for n in names) == ["part 1 of 2)", "part 2 of 2)"]
    assert all(s.reason(e) == ["uploaded"] for e in sent)
    assert len(s.emu.admin.conversions()) == 9 and s.emu.admin.duplicates() == []


def test_replay_dag_dry_run_then_resend(run_dag, shop, msads):
    s = shop
    signup = s.event("Signup")
    run_dag("msads_upload_conversions")
    assert s.reason(signup) == ["not_mapped"]
    msads("map", "add", "--account", str(s.tenant.account_id), "--goal", str(s.purchase_goal),
          "--event", "Signup")
    dry = run_dag("msads_replay", run_conf={"event_names": ["Signup"], "dry_run": True})
    assert dry.state == "success" and s.reason(signup) == ["not_mapped"]
    assert task_states(dry)[("plan_and_hash", -1)] == "skipped"
    real = run_dag("msads_replay", run_conf={"event_names": ["Signup"], "dry_run": False,
                                             "outcomes": ["not_mapped"]})
    assert real.state == "success", task_states(real)
    assert s.reason(signup) == ["uploaded"]


def test_a_replay_time_without_a_zone_fails_the_first_task_at_once(run_dag, shop, capsys):
    """Airflow lets the string through (its Params do not check format="date-time"); the task
    refuses it as `msads replay --start` does, with the fix, instead of reading it as UTC."""
    s = shop
    s.event("Signup")
    naive = datetime(2031, 3, 4, 5, 6, 7).isoformat()  # any time without a zone
    failed = run_dag("msads_replay", run_conf={"event_names": ["Signup"], "start": naive})
    states = task_states(failed)
    assert failed.state == "failed" and states[("reopen_selected", -1)] == "failed", states
    assert (f"AirflowFailException: replay parameters: start {naive!r} has no time zone; add Z "
            "or +01:00") in "".join(capsys.readouterr())


def test_the_settings_in_airflow_variables_are_honoured(run_dag, shop):
    """Admin > Variables: an upload budget of 0 s sends nothing and loses nothing; a value
    that is not a number fails the run at once, naming the Variable and the fix."""
    from airflow.models import Variable

    s = shop
    events = [s.event() for _ in range(3)]
    Variable.set("msads_run_time_budget_seconds", "0")
    try:
        held = run_dag("msads_upload_conversions")
        assert held.state == "success", task_states(held)
        assert s.emu.admin.conversions() == []
        assert all(s.reason(e) == ["ready"] for e in events)  # waiting for the next run
        Variable.set("msads_run_time_budget_seconds", "soon")
        broken = run_dag("msads_upload_conversions")
        assert task_states(broken)[("claim_plan_hash", -1)] == "failed"
    finally:
        Variable.delete("msads_run_time_budget_seconds")
    sent = run_dag("msads_upload_conversions")
    assert sent.state == "success", task_states(sent)
    assert all(s.reason(e) == ["uploaded"] for e in events)
