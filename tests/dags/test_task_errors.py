"""How errors become task states: fail at once when a person must act, let Airflow retry when
something is unavailable for now, fail loudly on a bug (tasks/common.py, task_errors)."""

from __future__ import annotations

import pytest
from airflow.exceptions import AirflowFailException

from include.msads_capi.errors import MsadsError, Unavailable
from include.msads_capi.microsoft.faults import AccountAuthError, RequestError, TransientError
from include.msads_capi.tasks.common import task_errors
from include.msads_capi.tasks.upload import claim_new_events


def test_what_a_person_must_fix_fails_the_task_at_once_with_the_fix():
    for error in (MsadsError("Space 'shop' is not configured; add it with msads space add"),
                  AccountAuthError("refresh token revoked; run msads auth login"),
                  RequestError("303 ApiVersionNoLongerSupported")):
        with pytest.raises(AirflowFailException) as caught, task_errors("planning"):
            raise error
        assert str(caught.value) == f"planning: {error}"


def test_what_may_pass_is_raised_as_it_is_so_airflow_retries():
    for error in (Unavailable("cannot connect to the warehouse"),
                  TransientError("Microsoft Advertising did not answer in time")):
        with pytest.raises(type(error)) as caught, task_errors("upload"):
            raise error
        assert not isinstance(caught.value, AirflowFailException)


def test_a_bug_fails_the_task_at_once_and_says_it_is_one(caplog):
    with pytest.raises(AirflowFailException, match="a bug in msads-capi while hashing "
                       r"identifiers \(KeyError: 'email'\); nothing is lost"), \
            task_errors("hashing identifiers"):
        raise KeyError("email")
    assert "Traceback" in caplog.text or caplog.records[-1].exc_info


def test_an_unreachable_warehouse_is_retried_not_failed(monkeypatch, tmp_path):
    monkeypatch.setenv("MSADS_WAREHOUSE_URL", "postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(Unavailable, match="cannot connect to the"):
        claim_new_events("manual__test")
