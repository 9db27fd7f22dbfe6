"""Every DAG imports cleanly, reads as documented, and is safe to run every minute."""

from __future__ import annotations

import pytest

EXPECTED = {
    "msads_upload_conversions": ["claim_plan_hash", "upload_conversions", "record_and_summarise"],
    "msads_replay": ["reopen_selected", "plan_and_hash", "upload_conversions",
                     "record_and_summarise"],
    "msads_refresh_goals": ["list_linked_accounts", "refresh_account_goals", "summarize_refresh"],
    "msads_reconcile": ["list_active_accounts", "reconcile_account", "summarize_reconciliation"],
}


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_shape(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert set(EXPECTED[dag_id]) <= set(dag.task_ids)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.doc_md and "re-run" in dag.doc_md.lower()
    assert "msads" in dag.tags


@pytest.mark.parametrize(("dag_id", "task_id"), [
    ("msads_refresh_goals", "refresh_account_goals"), ("msads_reconcile", "reconcile_account")])
def test_api_tasks_use_the_pool_and_are_named_by_account(dagbag, dag_id, task_id):
    task = dagbag.dags[dag_id].get_task(task_id)
    assert task.pool == "msads_api"
    assert "label" in task.map_index_template
