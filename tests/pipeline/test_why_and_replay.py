"""`msads why` explains each outcome in words; replay resends what was fixed, never twice."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg

from include.msads_capi.outcomes import REASONS

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
