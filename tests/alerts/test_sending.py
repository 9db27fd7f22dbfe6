"""Alerts as a person receives them: through a real SMTP server and a real webhook (both local),
sent by the DAGs' own callbacks, the msads_alerts DAG and the deadline callback."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from include.msads_capi import alerts
from include.msads_capi.goals.refresh import mark_auth_failed
from include.msads_capi.hooks import alerting
from include.msads_capi.microsoft.faults import AccountAuthError
from include.msads_capi.warehouse import transaction
from tests.dags.conftest import task_states

pytestmark = pytest.mark.airflow

EMAIL, PHONE = "jane.doe@example.com", "+1 415 555 0134"


def _assert_nothing_private(channels, *private: str) -> None:
    for sent in channels.sent():
        for value in private:
            assert value not in sent.subject + sent.text, (sent.channel, value)


def test_a_failing_upload_task_alerts_once_per_channel_and_recovers_once(run_dag, shop, channels,
                                                                         tenant):
    # Admin > Variables, as a person would set it (the metadata database, outside any task)
    from airflow.models import Variable  # noqa: AIR311

    s = shop
    s.event(email=EMAIL, phone=PHONE)
    Variable.set("msads_run_time_budget_seconds", "soon")  # noqa: AIR311 - every run fails
    try:
        for _ in range(2):
            failed = run_dag("msads_upload_conversions")
            assert task_states(failed)[("claim_plan_hash", -1)] == "failed"
    finally:
        Variable.delete("msads_run_time_budget_seconds")  # noqa: AIR311
    alert = "msads: claim_plan_hash failed in msads_upload_conversions"
    assert sorted(channels.subjects()) == [alert, alert]  # one by email, one on Slack
    (mail,) = [m for m in channels.sent() if m.channel == "email"]
    assert "the Airflow Variable msads_run_time_budget_seconds is 'soon', not a number" in \
        mail.text
    assert "What to do:" in mail.text and "One alert per incident" in mail.text
    ok = run_dag("msads_upload_conversions")
    assert ok.state == "success", task_states(ok)
    recovered = "msads: resolved: claim_plan_hash failed in msads_upload_conversions"
    for channel in ("email", "slack"):
        assert channels.subjects(channel) == [alert, recovered]
    assert run_dag("msads_upload_conversions").state == "success"
    assert len(channels.sent()) == 4  # nothing more once it works
    _assert_nothing_private(channels, EMAIL, PHONE, tenant.developer_token, tenant.client_secret,
                            tenant.refresh_token)


def test_msads_alerts_sends_an_auth_failure_once_and_a_send_error_never_fails_it(
        run_dag, warehouse, msads, broken_channels, monkeypatch):
    channels = broken_channels
    assert msads("space", "add", "shop", "--currency", "USD", "--region", "US")[0] == 0
    assert msads("account", "link", "180000001", "--customer", "9001", "--space", "shop")[0] == 0
    mark_auth_failed(warehouse, 180000001, AccountAuthError(
        f"Microsoft sign-in for connection msads_default failed: invalid_grant (for {EMAIL})"))
    down = run_dag("msads_alerts")
    assert down.state == "success", task_states(down)  # the channels failed, the task did not
    assert channels.sent() == []
    monkeypatch.setenv("AIRFLOW_CONN_MSADS_ALERTS_EMAIL", channels.email_connection)
    channels.webhook_status = 200
    assert run_dag("msads_alerts").state == "success"  # sends what could not be sent before
    assert channels.subjects() == 2 * ["msads: account 180000001 can no longer sign in"]
    assert "msads auth login --conn-id msads_default" in channels.sent()[0].text
    assert run_dag("msads_alerts").state == "success"
    assert len(channels.sent()) == 2
    _assert_nothing_private(channels, EMAIL)


def _missed_deadline(queued_at: datetime) -> dict:
    """The context the scheduler gives a deadline callback (airflow.models.deadline)."""
    return {"dag_run": {"dag_id": "msads_upload_conversions", "dag_run_id": "scheduled__late",
                        "queued_at": queued_at.isoformat(), "state": "running"},
            "deadline": {"id": "0199", "deadline_time": queued_at + timedelta(minutes=5)}}


def test_the_deadline_callback_sends_one_alert_until_a_run_finishes_in_time(
        warehouse, channels, dagbag):
    queued = datetime.now(UTC) - timedelta(minutes=6)
    for late in range(3):  # three late runs in a row: one alert
        asyncio.run(alerting.run_overdue(context=_missed_deadline(queued + timedelta(minutes=late))))
    assert channels.subjects() == 2 * ["msads: a run of msads_upload_conversions is late"]
    assert "scheduled__late" in channels.sent()[0].text
    assert "msads_api pool" in channels.sent()[0].text
    # the last task of a run that finished within the deadline ends the incident
    dag = dagbag.dags["msads_upload_conversions"]
    last = dag.get_task("record_and_summarise")
    assert not last.downstream_task_ids and dag.deadline
    context = {"ti": SimpleNamespace(dag_id=dag.dag_id, task_id=last.task_id, run_id="on_time"),
               "task": last, "dag": dag,
               "dag_run": SimpleNamespace(run_after=datetime.now(UTC) - timedelta(minutes=1))}
    alerting.TaskAlertNotifier(failed=False).notify(context)
    for channel in ("email", "slack"):
        assert channels.subjects(channel) == [
            "msads: a run of msads_upload_conversions is late",
            "msads: resolved: a run of msads_upload_conversions is late"]
    with transaction(warehouse) as conn:
        assert alerts.open_incidents(conn) == []


def test_the_upload_dag_has_the_deadline_alert_the_triggerer_can_import(dagbag):
    from airflow.sdk import AsyncCallback, DeadlineReference
    from airflow.sdk._shared.module_loading import import_string

    (deadline,) = dagbag.dags["msads_upload_conversions"].deadline
    assert deadline.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert deadline.interval == timedelta(minutes=5)
    assert isinstance(deadline.callback, AsyncCallback)
    assert import_string(deadline.callback.path) is alerting.run_overdue
    for dag_id in ("msads_upload_conversions", "msads_replay", "msads_refresh_goals"):
        for task in dagbag.dags[dag_id].tasks:
            assert any(isinstance(c, alerting.TaskAlertNotifier) for c in
                       task.on_failure_callback), (dag_id, task.task_id)
    alerts_dag = dagbag.dags["msads_alerts"]
    assert alerts_dag.max_active_runs == 1 and not alerts_dag.catchup
    assert "re-run" in alerts_dag.doc_md.lower()


def test_an_undefined_connection_is_skipped_with_one_log_line(warehouse, channels, monkeypatch,
                                                             caplog):
    monkeypatch.setenv("MSADS_ALERT_CONNECTIONS", "msads_alerts_email,msads_alerts_teams")
    caplog.set_level(logging.INFO, logger=alerting.__name__)
    now = datetime.now(UTC)
    incidents = [alerts.task_failed("msads_refresh_goals", "refresh_account_goals", "run-1",
                                    error="boom", account={"account_id": n, "label": str(n)})
                 for n in (1, 2)]
    with transaction(warehouse) as conn:
        notices = [alerts.sight(conn, i, now) for i in incidents]
    assert alerting.send(notices, warehouse) == 2
    assert [m.channel for m in channels.sent()] == ["email", "email"]
    skipped = [r for r in caplog.records if "msads_alerts_teams" in r.getMessage()]
    assert len(skipped) == 1 and "not defined" in skipped[0].getMessage()


def test_a_mapped_upload_task_alerts_per_account(run_dag, shop, channels, emu, tenant):
    s = shop
    s.event()
    emu.admin.revoke_refresh_tokens(user_id=tenant.user_id)
    emu.admin.advance(2 * 3600)  # the stored access token expires; the refresh is refused
    s.event()
    failed = run_dag("msads_upload_conversions")
    assert task_states(failed)[("upload_conversions", 0)] == "failed"
    account = tenant.account_id
    assert sorted(channels.subjects()) == 2 * [
        f"msads: upload_conversions failed in msads_upload_conversions for account {account}"]
    assert f"for account {account} " in channels.sent()[0].text
    assert "msads auth login --conn-id msads_default" in channels.sent()[0].text
