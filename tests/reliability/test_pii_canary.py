"""PII canary: plant unique emails and phone numbers, run the upload DAG with DEBUG logging, then
look everywhere the pipeline writes. The raw values (as written and as normalised) appear
nowhere; their SHA-256 digests appear only in what was sent to Microsoft.
"""

from __future__ import annotations

import json
import logging
import os
import random
import uuid
from pathlib import Path

import psycopg
import pytest

from include.msads_capi.identity import normalize_email, normalize_phone
from tests.dags.conftest import airflow_db, dagbag, run_dag, task_states  # noqa: F401

pytestmark = pytest.mark.airflow


def _canaries(n: int) -> list[dict]:
    rng = random.Random(uuid.uuid4().int)
    out, tag = [], uuid.uuid4().hex[:10]
    for i in range(n):
        email = f"Canary.{tag}.{i}@Example.COM"
        phone = f"(650) 253-{rng.randrange(1000, 10_000)}"
        written = {"email": f"  {email} " if i % 2 else email,
                   "phone": f"+1 {phone}" if i % 3 else phone}
        e, p = normalize_email(written["email"]), normalize_phone(written["phone"], "US")
        assert e.sha256 and p.sha256, "the canary values must be usable to reach Microsoft"
        out.append({**written, "raw": {email, phone, written["email"], written["phone"],
                                       e.normalized, p.normalized, p.normalized.lstrip("+"),
                                       email.split("@")[0].lower()},
                    "hashes": {e.sha256, p.sha256}})
    return out


def _xcom_values() -> list[str]:
    from airflow.utils.session import create_session
    from sqlalchemy import text

    with create_session() as session:
        return [str(v) for (v,) in session.execute(text("SELECT value FROM xcom"))]


def _ledger_text(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        tables = [t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'msads' "
            "AND table_type = 'BASE TABLE'")]
        rows = []
        for table in tables:
            rows += [f"msads.{table}: {r}" for (r,) in conn.execute(
                f"SELECT t::text FROM msads.{table} t")]
    return rows


def _log_files() -> list[str]:
    home = Path(os.environ["AIRFLOW_HOME"])
    return [p.read_text(errors="replace") for p in home.rglob("*.log") if p.is_file()]


def test_no_raw_email_or_phone_leaves_the_events_table(run_dag, shop, caplog, capsys):  # noqa: F811
    s = shop
    canaries = _canaries(6)
    sales = []
    for i, c in enumerate(canaries):
        click = {"msclkid": s.click()} if i % 2 else {"msclkid": None}
        sales.append(s.event(email=c["email"], phone=c["phone"], **click))
    s.event("Lead", email=canaries[0]["email"], attributed_platform="google")  # not_attributed
    s.event(email=f"not-an-email-{uuid.uuid4().hex}", msclkid=None)  # no_identifier
    # a worker configured to log everything at DEBUG, the SDK's and urllib3's loggers included
    caplog.set_level(logging.DEBUG)
    names = ("include", "airflow", "urllib3", "msal", "bingads", "openapi_client")
    for name in names:
        logging.getLogger(name).setLevel(logging.NOTSET)
    dag_run = run_dag("msads_upload_conversions")
    assert dag_run.state == "success", task_states(dag_run)
    # refunds of the canaries' sales: their hashes are computed again and sent, and kept nowhere
    with psycopg.connect(s.warehouse.url) as conn:
        conn.execute("INSERT INTO conversion_adjustments (adjustment_id, event_id, "
                     "adjustment_type, adjusted_at) SELECT 'refund-' || e, e, 'retract', "
                     "%s FROM unnest(%s::text[]) AS e", (s.now(), sales))
    dag_run = run_dag("msads_upload_conversions")
    assert dag_run.state == "success", task_states(dag_run)
    assert len(s.emu.admin.adjustments()) == 6
    out, err = capsys.readouterr()

    assert len(s.emu.admin.conversions()) == 6  # the canaries did reach Microsoft, hashed
    requests = s.emu.admin.requests()
    rest = [r for r in requests if r["service"] in ("campaign", "customer")]
    assert {r["operation"] for r in rest} >= {"ApplyOfflineConversions"}
    # what went to Microsoft's REST API and came back: bodies and headers alike
    sent = "\n".join((r.get("body") or "") + (r.get("response") or "")
                     + json.dumps(r["headers"]) for r in requests)
    places = {
        "logs": [caplog.text, out, err, *_log_files()],
        "xcom": _xcom_values(),
        "ledger": _ledger_text(s.warehouse.url),
        "requests": [sent],
    }
    assert places["xcom"] and places["ledger"] and "took 8 new event(s)" in caplog.text
    logs = "".join(places["logs"])
    assert s.tenant.developer_token not in logs  # nor the REST headers
    assert not any(r["headers"]["authorization"].split()[-1] in logs for r in rest)
    rest_sent = "".join(json.dumps(r["headers"]) + (r.get("body") or "") for r in rest)
    for secret in (s.tenant.client_secret, s.tenant.refresh_token):
        assert secret not in logs and secret not in rest_sent
    for c in canaries:
        for raw in c["raw"]:
            for where, texts in places.items():
                assert not any(raw in t or raw.lower() in t.lower() for t in texts), (where, raw)
        for digest in c["hashes"]:
            assert digest in sent
            for where in ("logs", "xcom", "ledger"):
                assert not any(digest in t for t in places[where]), (where, digest)
