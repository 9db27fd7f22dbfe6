"""`msads why` explains each outcome in words; replay resends what was fixed, never twice."""

from __future__ import annotations

import json
import re
from datetime import UTC, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from include.msads_capi.outcomes import REASONS, REPLAY_DEFAULT

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_why_answers_the_checklist_with_fixes(shop, msads):
    s = shop
    unmapped = s.event("Signup", email="Secret.Person@Example.com", msclkid=None)
    uploaded = s.event()
    foreign = s.event("Lead", attributed_platform="google")
    s.run()
    code, out, _ = msads("why", unmapped)
    assert code == 0
    assert "[NO] Is the event mapped?" in out and "msads map add" in out
    assert "[ok] Is CAPI turned on?" in out
    assert "email: usable" in out
    assert "Secret.Person" not in out and "secret.person" not in out
    code, out, _ = msads("why", uploaded)
    assert "uploaded" in out and "Microsoft TrackingId" in out
    code, out, _ = msads("why", foreign)
    assert "[NO] Is the send rule met?" in out and "--rule all" in out
    data = json.loads(msads("why", foreign, "--json")[1])
    assert data["outcomes"][0]["reason"] == "not_attributed"
    code, _, err = msads("why", "nope")
    assert code == 2 and "no event 'nope'" in err


def test_why_explains_every_reason_in_plain_words(shop, msads):
    with psycopg.connect(shop.warehouse.url) as conn:
        rows = conn.execute("SELECT reason, sentence, fix FROM msads.reasons").fetchall()
    assert {r[0] for r in rows} >= {
        "capi_off", "not_mapped", "no_identifier", "account_inactive", "not_attributed",
        "goal_missing", "goal_too_new", "outside_window", "future_time", "invalid_value",
        "uploaded", "failed"}
    for reason, sentence, _ in rows:
        assert sentence.endswith(".") and "_" not in sentence.split(".")[0], reason


def test_the_docs_outcome_table_lists_every_reason_of_the_registry(warehouse):
    section = (DOCS / "pipeline.md").read_text(encoding="utf-8").split("\n## Outcomes", 1)[1]
    rows = re.findall(r"^\| `([^`]+)` \| (\w+)", section, re.MULTILINE)
    assert dict(rows) == {**{code: r.status for code, r in REASONS.items()},
                          "rejected:<ErrorCode>": "rejected"}


def test_analysts_read_the_registrys_explanations_in_the_warehouse(warehouse):
    with psycopg.connect(warehouse.url) as conn:
        rows = conn.execute("SELECT reason, status, sentence, fix FROM msads.reasons").fetchall()
    assert {r[0]: (r[1], r[2], r[3]) for r in rows} == {
        code: (r.status, r.sentence, r.fix) for code, r in REASONS.items()}


def test_replay_after_a_mapping_is_fixed_never_resends_an_upload(shop, msads):
    s = shop
    signup = s.event("Signup")
    both = s.event("Purchase")
    s.run()
    assert s.reason(signup) == ["not_mapped"]
    code, out, _ = msads("replay", "--event", "Signup")
    assert code == 0 and "dry run: 1 event(s)" in out and "0 of them now have" in out
    msads("map", "add", "--account", str(s.tenant.account_id), "--goal", str(s.purchase_goal),
          "--event", "Signup")
    code, out, _ = msads("replay", "--event", "Signup", "--outcome", "not_mapped", "--go")
    assert code == 0, out
    assert s.reason(signup) == ["uploaded"]
    # replaying everything that is replayable touches nothing uploaded
    msads("replay", "--outcome", "not_mapped", "--outcome", "failed", "--go")
    assert s.reason(both) == ["uploaded"]
    assert len(s.emu.admin.conversions()) == 2 and s.emu.admin.duplicates() == []
    code, _, err = msads("replay", "--outcome", "uploaded")
    assert code == 2 and "never sent again" in err


def test_the_cli_and_the_replay_dag_read_a_time_range_alike(shop, msads):
    """One rule (times.py) for `msads replay --start/--end` and the DAG's start/end Params:
    a zone is honoured, a time without one or garbage is refused by both with the same words
    (the task fails at once: no retry can fix a parameter)."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.msads_capi.tasks.upload import reopen_for_replay

    s = shop
    signup = s.event("Signup")
    s.run()
    with psycopg.connect(s.warehouse.url) as conn:
        (when,) = conn.execute("SELECT event_time FROM conversion_events WHERE event_id = %s",
                               (signup,)).fetchone()

    def cli(start: str) -> tuple[int | None, str]:
        code, out, err = msads("replay", "--event", "Signup", "--start", start)
        if code:
            assert code == 2, err
            return None, err.strip().splitlines()[-1].removeprefix("msads: error: --start ")
        return int(re.search(r"dry run: (\d+) event", out).group(1)), ""

    def dag(start: str) -> tuple[int | None, str]:
        params = {"event_names": ["Signup"], "start": start, "end": None,
                  "outcomes": list(REPLAY_DEFAULT), "dry_run": True}
        try:
            return reopen_for_replay(params, "manual__times")["events"], ""
        except AirflowFailException as exc:
            return None, str(exc).removeprefix("replay parameters: start ")

    half_hour_before = when - timedelta(minutes=30)
    plus_one = timezone(timedelta(hours=1))
    cases = {
        # Z, and +01:00: read as written (read as UTC, the +01:00 wall clock would be 30
        # minutes after the event and select nothing)
        half_hour_before.astimezone(UTC).isoformat().replace("+00:00", "Z"): 1,
        half_hour_before.astimezone(plus_one).isoformat(): 1,
        (when + timedelta(minutes=30)).astimezone(plus_one).isoformat(): 0,
        half_hour_before.astimezone(UTC).replace(tzinfo=None).isoformat():
            "has no time zone; add Z or +01:00, e.g. ",
        "last tuesday": "is not an ISO 8601 time; write it like ",
    }
    for start, expected in cases.items():
        by_cli, by_dag = cli(start), dag(start)
        assert by_cli == by_dag, start
        if isinstance(expected, int):
            assert by_cli == (expected, ""), start
        else:
            assert by_cli[0] is None and by_cli[1].startswith(f"{start!r} {expected}"), by_cli
    assert s.reason(signup) == ["not_mapped"]  # dry runs only


@pytest.mark.parametrize("value", ["", None])
def test_an_empty_time_leaves_the_range_open_in_the_dag(shop, value):
    from include.msads_capi.tasks.upload import reopen_for_replay

    signup = shop.event("Signup")
    shop.run()
    report = reopen_for_replay({"event_names": ["Signup"], "start": value, "end": value,
                                "outcomes": ["not_mapped"], "dry_run": True}, "manual__open")
    assert report["events"] == 1 and shop.reason(signup) == ["not_mapped"]
