"""``make demo``: the whole job end to end on embedded defaults, in about a minute.

1. the embedded PostgreSQL warehouse (migrated) and the Microsoft Advertising emulator;
2. a demo customer with two ad accounts and offline goals in the emulator, a Microsoft profile
   connection (``msads_demo``), Spaces, linked accounts and goal mappings in the warehouse;
3. a few thousand realistic events, with every problem of the troubleshooting list among them,
   and clicks in Microsoft by most of the people of those sent with only an email or phone;
4. ``airflow dags test msads_refresh_goals`` and ``airflow dags test msads_upload_conversions``;
5. the outcome table beside what the emulator received, then ``msads why`` for one event of
   each kind;
6. refunds and cancellations of a few of the uploaded orders (and of one Microsoft never got)
   in ``conversion_adjustments``, one more ``airflow dags test msads_upload_conversions``, and
   what the pipeline decided for each beside what the emulator received and applied;
7. ``airflow dags test msads_reconcile``, which asks Microsoft's offline conversion reports what
   became of every upload, then ``msads report --since 7d`` (per goal: accepted, counted,
   attributed, the match rate by click id, email and phone, why not attributed) beside what the
   emulator counted, and ``msads why`` for one conversion Microsoft did not attribute.

The demo has a database of its own (``msads_demo``) in the embedded PostgreSQL, so it never
touches your configuration; re-running it starts that database afresh.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.msads_capi import migrations, warehouse
from include.msads_capi.paths import PROJECT_ROOT, local_dir

if TYPE_CHECKING:
    from include.msads_emulator import Emulator

CONN_ID = "msads_demo"
DEMO_DB = "msads_demo"
EVENTS = 3000
SEED = 20261129


def say(text: str = "") -> None:
    print(text, flush=True)


def _emulator():

    from include.msads_emulator import Emulator

    state = local_dir() / "emulator" / "demo.sqlite"
    state.parent.mkdir(parents=True, exist_ok=True)
    if state.exists():
        state.unlink()  # a fresh Microsoft for every demo
    return Emulator(str(state), ca_file=local_dir() / "emulator" / "demo-ca.pem").start()


def _microsoft(emu: Emulator) -> dict:
    """A demo customer in the emulator: two accounts, goals of every kind, clicks."""
    admin = emu.admin
    t = admin.seed(customer_name="Contoso Outdoor (demo)", account_name="Contoso US",
                   goal_name="Offline purchase", user_name="marketing@contoso.example")
    now = datetime.fromisoformat(admin.clock()["now"].replace("Z", "+00:00"))
    eu = admin.create_account(t["customer_id"], "Contoso EU", currency="EUR")
    lead = admin.create_goal("Qualified lead", account_id=t["account_id"],
                             created_at=(now - timedelta(days=10)).isoformat())
    fresh = admin.create_goal("Subscription renewal", account_id=t["account_id"],
                              created_at=(now - timedelta(minutes=30)).isoformat())
    doomed = admin.create_goal("Refund (old)", account_id=t["account_id"],
                               created_at=(now - timedelta(days=10)).isoformat())
    eu_goal = admin.create_goal("EU purchase", account_id=eu["id"],
                                created_at=(now - timedelta(days=10)).isoformat())
    clicks = admin.issue_clicks(t["account_id"], 2000,
                                click_time=(now - timedelta(days=4)).isoformat())
    late_clicks = admin.issue_clicks(t["account_id"], 100,
                                     click_time=(now - timedelta(minutes=30)).isoformat())
    admin.update_account(eu["id"], status="Paused")  # paused in Microsoft Advertising
    return {**t, "eu_account_id": eu["id"], "lead_goal": lead["id"], "fresh_goal": fresh["id"],
            "doomed_goal": doomed["id"], "eu_goal": eu_goal["id"], "clicks": clicks,
            "late_clicks": late_clicks, "now": now,
            "fresh_created_at": now - timedelta(minutes=30)}


def _connection(emu: Emulator, t: dict) -> str:
    return json.dumps({"conn_type": "msads", "login": t["client_id"],
                       "password": t["client_secret"],
                       "extra": {"developer_token": t["developer_token"],
                                 "environment": emu.base_url, "ca_file": emu.ca_file,
                                 "refresh_token": t["refresh_token"]}})


def _msads(*args: str, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "include.msads_capi.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"msads {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _fresh_database(admin_url: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    url = urlunsplit(urlsplit(admin_url)._replace(path="/postgres"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DEMO_DB}" WITH (FORCE)')


def _configure(t: dict, env: dict, wh: warehouse.Warehouse) -> None:
    a, eu = str(t["account_id"]), str(t["eu_account_id"])
    _msads("space", "add", "demo-us", "--name", "Contoso US shop", "--currency", "USD",
           "--region", "US", env=env)
    _msads("space", "add", "demo-eu", "--name", "Contoso EU shop", "--currency", "EUR",
           "--region", "DE", env=env)
    _msads("space", "add", "demo-uk", "--name", "Contoso UK (not live yet)", "--currency",
           "GBP", "--region", "GB", env=env)
    _msads("account", "link", a, "--space", "demo-us", "--conn-id", CONN_ID, env=env)
    _msads("account", "link", eu, "--space", "demo-eu", "--conn-id", CONN_ID, env=env)
    with warehouse.transaction(wh) as conn:  # we made this goal: we know when (2-hour rule)
        conn.execute("INSERT INTO msads.goals (account_id, goal_id, name, created_at) VALUES "
                     "(%s, %s, 'Subscription renewal', %s) ON CONFLICT DO NOTHING",
                     (t["account_id"], t["fresh_goal"], t["fresh_created_at"]))
    for goal, event, rule in ((t["goal_id"], "Purchase", "all"),
                              (t["lead_goal"], "Lead", "attributed_only"),
                              (t["fresh_goal"], "Renewal", "all"),
                              (t["doomed_goal"], "Refund", "all")):
        _msads("map", "add", "--account", a, "--goal", str(goal), "--event", event, "--rule",
               rule, env=env)
    _msads("map", "add", "--account", eu, "--goal", str(t["eu_goal"]), "--event", "Purchase",
           env=env)
    _msads("capi", "on", "--space", "demo-us", env=env)
    _msads("capi", "on", "--space", "demo-eu", env=env)  # demo-uk stays off


# One branch per problem of the troubleshooting list, so the demo's mix reads as that list.
def _events(t: dict) -> list[tuple]:  # noqa: C901
    """Realistic events; the mix includes every problem of the troubleshooting list."""
    rnd = random.Random(SEED)
    now, clicks, late_clicks = t["now"], list(t["clicks"]), list(t["late_clicks"])
    rows = []
    first = ["ana", "ben", "chloe", "dev", "emma", "farid", "gina", "hugo", "ines", "jun"]
    for i in range(EVENTS):
        kind = rnd.choices(
            ["click", "email", "phone", "lead_ms", "lead_google", "signup", "eu", "uk", "none",
             "renewal", "refund", "old", "future", "soon", "negative", "bad_click",
             "unknown_click", "before_click"],
            weights=[40, 14, 8, 6, 5, 5, 4, 3, 4, 3, 3, 2, 2, 1, 2, 1, 1, 1])[0]
        when = now - timedelta(minutes=rnd.randint(5, 3 * 24 * 60))
        name, space, value = "Purchase", "demo-us", round(rnd.uniform(5, 400), 2)
        click = email = phone = None
        platform = rnd.choice(["microsoft", "microsoft", "google", None])
        person = f"{rnd.choice(first)}.{rnd.randint(1, 900)}"
        if kind == "click":
            click = clicks.pop() if clicks else None
            email = f"  {person.title()}@Example.com " if rnd.random() < 0.5 else None
        elif kind == "email":
            email = f"{person}@example.com"
        elif kind == "phone":
            phone = f"({rnd.randint(201, 989)}) 555-{rnd.randint(1000, 9999)}"
        elif kind in ("lead_ms", "lead_google"):
            name, value = "Lead", None
            platform = "Microsoft" if kind == "lead_ms" else "google"
            email = f"{person}@example.org"
        elif kind == "signup":
            name, email = "Signup", f"{person}@example.net"
        elif kind == "eu":
            space, email, value = "demo-eu", f"{person}@example.de", round(rnd.uniform(5, 90), 2)
        elif kind == "uk":
            space, email = "demo-uk", f"{person}@example.co.uk"
        elif kind == "none":
            email, phone = "not an email", "12"
        elif kind == "renewal":
            name, email = "Renewal", f"{person}@example.com"
        elif kind == "refund":
            name, email = "Refund", f"{person}@example.com"
        elif kind == "old":
            when, email = now - timedelta(days=rnd.randint(91, 200)), f"{person}@example.com"
        elif kind == "future":
            when, email = now + timedelta(hours=rnd.randint(2, 48)), f"{person}@example.com"
        elif kind == "negative":
            value, email = -round(rnd.uniform(1, 50), 2), f"{person}@example.com"
        elif kind == "soon":  # the shop's clock runs a little ahead: held until its time
            when, email = now + timedelta(seconds=rnd.randint(30, 240)), f"{person}@example.com"
        elif kind == "bad_click":  # pasted with the URL parameter: not an MSCLKID (5604)
            click = f"msclkid={rnd.getrandbits(128):032x}"
        elif kind == "unknown_click":  # well formed, never issued: accepted, never counted
            click = f"{rnd.getrandbits(128):032x}"
        elif kind == "before_click":  # the clock of the shop's system runs behind
            click, when = late_clicks.pop() if late_clicks else None, now - timedelta(hours=2)
        rows.append((f"demo-{i:05d}", space, name, when, value, None, click, email, phone,
                     platform))
    return rows


# The share of the events sent with only an email or phone whose person clicked an ad of the
# demo's account: Microsoft attributes those, and not the others.
CLICKERS = 0.8


def _clickers(emu: Emulator, t: dict, rows: list[tuple]) -> int:
    """Clicks of the demo-us account, four days ago, by most of the people of the events that
    have no click id: each carries the person's hashed email or phone, hashed by the product's
    own identity code as the pipeline will send it. Returns how many were issued."""
    from include.msads_capi.identity import normalize_email, normalize_phone

    rnd = random.Random(SEED + 1)  # apart from the events' own draws
    identities = []
    for _, space, _, _, _, _, click, email, phone, _ in rows:
        if space != "demo-us" or click is not None or rnd.random() >= CLICKERS:
            continue
        identity = {"hashed_email": normalize_email(email).sha256 if email else None,
                    "hashed_phone": normalize_phone(phone, "US").sha256 if phone else None}
        if identity["hashed_email"] or identity["hashed_phone"]:
            identities.append(identity)
    emu.admin.issue_clicks(t["account_id"], identities=identities,
                           click_time=(t["now"] - timedelta(days=4)).isoformat())
    return len(identities)


def _insert(wh: warehouse.Warehouse, rows: list[tuple]) -> None:
    with warehouse.transaction(wh) as conn, conn.cursor().copy(
            "COPY conversion_events (event_id, space_id, event_name, event_time, value, "
            "currency_code, msclkid, email, phone, attributed_platform) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _airflow(env: dict, *args: str, log_name: str | None = None) -> float:
    started = time.monotonic()
    airflow = str(Path(sys.executable).with_name("airflow"))
    proc = subprocess.run([airflow, *args], env=env, capture_output=True, text=True,
                          timeout=600)
    log = local_dir() / "demo-airflow" / f"{log_name or args[-1]}.log"
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"airflow {' '.join(args)} failed; see {log}")
    return time.monotonic() - started


# The refunds of the demo: (adjustment id, which order, type, share of the value kept, minutes
# before now). Refund 3a and 3b are one order refunded in part and then in full.
REFUNDS = (("refund-1", "full refund", "retract", None, 3),
           ("refund-2", "partial refund", "restate", 0.6, 3),
           ("refund-3a", "partial, then full refund", "restate", 0.5, 2),
           ("refund-3b", "partial, then full refund", "retract", None, 1),
           ("refund-4", "refund of an order never uploaded", "retract", None, 1))


def _refund_orders(wh: warehouse.Warehouse, t: dict) -> dict[str, tuple[str, float | None]]:
    """The orders the refunds are for, each adjustment's (event, value): Purchases the first run
    uploaded (two sent with their click id, one with the email address only), and one it did
    not upload (Microsoft refused it, or it was skipped)."""
    with warehouse.transaction(wh) as conn:
        uploaded = conn.execute(
            "SELECT r.event_id, e.value, r.sent_click_id FROM msads.results r "
            "JOIN conversion_events e USING (event_id) WHERE r.status = 'uploaded' "
            "AND r.account_id = %s AND r.goal_id = %s AND e.value IS NOT NULL "
            "ORDER BY r.event_id LIMIT 200", (t["account_id"], t["goal_id"])).fetchall()
        never = conn.execute(
            "SELECT event_id, NULL FROM msads.results WHERE event_id LIKE 'demo-%' "
            "GROUP BY event_id HAVING bool_and(status IN ('rejected', 'skipped')) "
            "ORDER BY bool_or(reason LIKE 'rejected:%') DESC, event_id LIMIT 1").fetchall()
    clicked = [(e, v) for e, v, click in uploaded if click]
    email_only = [(e, v) for e, v, click in uploaded if not click]
    if len(clicked) < 2 or not email_only or not never:
        raise SystemExit("the demo's first run uploaded too few orders to refund")
    return {"refund-1": clicked[0], "refund-2": email_only[0], "refund-3a": clicked[1],
            "refund-3b": clicked[1], "refund-4": never[0]}


def _write_refunds(wh: warehouse.Warehouse, emu: Emulator, t: dict) -> dict[str, str]:
    """Refunds and cancellations of orders the first run uploaded, timed just before the
    emulator's now; returns each adjustment's event."""
    orders = _refund_orders(wh, t)
    now = datetime.fromisoformat(emu.admin.clock()["now"].replace("Z", "+00:00"))
    with warehouse.transaction(wh) as conn:
        for adjustment_id, _, kind, kept, minutes in REFUNDS:
            event_id, value = orders[adjustment_id]
            new_value = round(float(value) * kept, 2) if kept and value is not None else None
            conn.execute("INSERT INTO conversion_adjustments (adjustment_id, event_id, "
                         "adjustment_type, adjusted_value, adjusted_at) VALUES (%s, %s, %s, %s, "
                         "%s)", (adjustment_id, event_id, kind, new_value,
                                 now - timedelta(minutes=minutes)))
    return {adjustment_id: orders[adjustment_id][0] for adjustment_id, *_ in REFUNDS}


def _same(sent: dict, got: dict) -> bool:
    """Is ``got`` (an adjustment the emulator received) the ledger row ``sent``?"""
    if sent["goal_id"] != got["goal_id"] or (sent["adjustment_type"] or "").lower() != (
            got["adjustment_type"] or "").lower() or sent["adjusted_at"] is None:
        return False
    at = datetime.fromisoformat(got["adjustment_time"].replace("Z", "+00:00"))
    if abs((at - sent["adjusted_at"]).total_seconds()) >= 1:
        return False
    # the ledger keeps no hashes once an adjustment is decided: the original's time names it
    original = datetime.fromisoformat(got["conversion_time"].replace("Z", "+00:00"))
    return sent["conversion_time"] is not None and abs(
        (original - sent["conversion_time"]).total_seconds()) < 1


def _money(value: object, currency: object) -> str:
    return f"{float(value):.2f} {currency or ''}".rstrip()


def _report_refunds(wh: warehouse.Warehouse, emu: Emulator, events: dict[str, str],
                    uploaded_before: int) -> bool:
    """The adjustments' outcomes beside what the emulator received; True if they agree."""
    with warehouse.transaction(wh) as conn:
        rows = [dict(zip(("adjustment_id", "event_id", "adjustment_type", "goal_id", "status",
                          "reason", "detail", "adjusted_at", "adjusted_value", "currency_code",
                          "conversion_time", "written_value"), r,
                         strict=True)) for r in conn.execute(
            "SELECT o.adjustment_id, o.event_id, o.adjustment_type, o.goal_id, o.status, "
            "o.reason, o.detail, o.adjusted_at, o.adjusted_value, o.currency_code, "
            "r.conversion_time, a.adjusted_value FROM msads.adjustment_outcomes o "
            "JOIN msads.adjustment_results r USING (adjustment_id, account_id, goal_id) "
            "JOIN conversion_adjustments a USING (adjustment_id) "
            "WHERE o.adjustment_id = ANY(%s) ORDER BY o.adjustment_id, o.account_id, o.goal_id",
            (list(events),))]
        sent = conn.execute("SELECT count(*) FROM msads.adjustment_results WHERE "
                            "status = 'uploaded'").fetchone()[0]
        uploaded = conn.execute("SELECT count(*) FROM msads.results WHERE event_id LIKE "
                                "'demo-%' AND status = 'uploaded'").fetchone()[0]
    received = emu.admin.adjustments()
    conversions = {c["id"]: c for c in emu.admin.conversions()}
    say("\nRefunds and cancellations: what the pipeline decided (msads.adjustment_outcomes) "
        "beside what the emulator received:")
    say(f"  {'adjustment':<11} {'event':<11} {'written':<15} {'outcome':<22} {'status':<9} "
        f"{'received':<19} applied")
    originals: dict[str, dict] = {}
    for r in rows:
        written = r["adjustment_type"] + (f" {float(r['written_value']):.2f}"
                                          if r["written_value"] is not None else "")
        got = [g for g in received if _same(r, g)]
        for g in got:
            if g["original_id"] in conversions:
                originals[r["event_id"]] = conversions[g["original_id"]]
        what = ", ".join(g["adjustment_type"] + (f" {_money(g['adjustment_value'], g['currency'])}"
                                                 if g["adjustment_value"] is not None else "")
                         for g in got) or "nothing"
        applied = ", ".join("yes" if g["applied"] else
                            f"no ({g['not_applied_reason'] or 'duplicate'})" for g in got) or "-"
        say(f"  {r['adjustment_id']:<11} {r['event_id']:<11} {written:<15} {r['reason']:<22} "
            f"{r['status']:<9} {what:<19} {applied}")
    say(f"  received adjustments: {len(received)}   (ledger says uploaded: {sent})")
    agree = len(received) == sent
    say("  " + ("the ledger and Microsoft agree" if agree
                else "MISMATCH between the ledger and Microsoft"))
    say("\nThe refunded orders in Microsoft afterwards:")
    labels = {}
    for adjustment_id, label, *_ in REFUNDS:
        labels.setdefault(events[adjustment_id], label)
    for event_id, label in labels.items():
        c = originals.get(event_id)
        if c is None:
            holds = "no conversion: the order was never uploaded"
        elif c["retracted_at"]:
            holds = f"{_money(c['value'], c['currency'])}, retracted"
        elif c["restated_value"] is not None:
            holds = (f"{_money(c['value'], c['currency'])}, restated to "
                     f"{_money(c['restated_value'], c['restated_currency'] or c['currency'])}")
        else:
            holds = f"{_money(c['value'], c['currency'])}, not adjusted"
        say(f"  {event_id:<11} {label:<34} {holds}")
    skipped = [r for r in rows if r["status"] != "uploaded" and r["detail"]]
    if skipped:
        say("\nWhy the others were not sent:")
        for r in skipped:
            say(f"  {r['adjustment_id']} ({r['reason']}): {r['detail']}")
    if uploaded > uploaded_before:
        say(f"\n(This run also uploaded {uploaded - uploaded_before} conversions that were not "
            "due yet in the first.)")
    return agree


def _report_reconciled(wh: warehouse.Warehouse, emu: Emulator, env: dict) -> bool:
    """``msads report`` after ``msads_reconcile``, and the ledger's view of Microsoft beside what
    the emulator counted, per goal; True if they agree. The reconciliation uses the real clock,
    so does the emulator here (the demo never moves its clock): the last 7 days hold every
    upload of the demo."""
    say("\n$ msads report --since 7d")
    say(_msads("report", "--since", "7d", env=env).rstrip())
    with warehouse.transaction(wh) as conn:
        ledger = {(a, g): (n, reported, attributed) for a, g, n, reported, attributed in
                  conn.execute(
                      "SELECT account_id, goal_id, count(*), count(ms_reported_at), "
                      "count(*) FILTER (WHERE ms_attributed) FROM msads.results WHERE "
                      "event_id LIKE 'demo-%' AND status = 'uploaded' GROUP BY 1, 2")}
        example = conn.execute(
            "SELECT event_id FROM msads.results WHERE event_id LIKE 'demo-%' AND "
            "ms_unattributed = 'NoMatchingClickFound' ORDER BY event_id LIMIT 1").fetchone()
    counted: dict[tuple, list[int]] = {}
    for c in emu.admin.conversions():
        n = counted.setdefault((c["account_id"], c["goal_id"]), [0, 0])
        n[0] += 1
        n[1] += bool(c["counted"])
    say("\nMicrosoft's view in the ledger beside what the emulator counted, per goal:")
    agree = True
    for key in sorted(set(ledger) | set(counted)):
        n, reported, attributed = ledger.get(key, (0, 0, 0))
        got, ok = counted.get(key, [0, 0])
        agree = agree and (n, reported, attributed) == (got, got, ok)
        say(f"  goal {key[1]}: reported {reported} of {n} uploaded, attributed {attributed}   "
            f"(emulator: {got} accepted, {ok} counted)")
    say("  " + ("the ledger and Microsoft agree" if agree
                else "MISMATCH between the ledger and Microsoft"))
    if example:
        from include.msads_capi.explain import explain, render

        say("\n$ msads why " + example[0])
        with warehouse.transaction(wh) as conn:
            say(render(explain(conn, example[0])))
    return agree


def _report(wh: warehouse.Warehouse, emu: Emulator, t: dict) -> None:
    from include.msads_capi.explain import explain, render

    with warehouse.transaction(wh) as conn:
        rows = conn.execute(
            "SELECT reason, status, count(*) FROM msads.results WHERE event_id LIKE 'demo-%' "
            "GROUP BY 1, 2 ORDER BY 3 DESC").fetchall()
        uploaded = conn.execute("SELECT count(*) FROM msads.results WHERE event_id LIKE "
                                "'demo-%' AND status = 'uploaded'").fetchone()[0]
        examples = dict(conn.execute(
            "SELECT DISTINCT ON (reason) reason, event_id FROM msads.results WHERE event_id "
            "LIKE 'demo-%' ORDER BY reason, event_id").fetchall())
    accepted = emu.admin.conversions()
    rejected = Counter(f"{r['code']} {r['error_code']}" for r in emu.admin.rejections())
    say("\nOutcomes recorded in msads.results (one per event and mapped goal):")
    say(f"  {'outcome':<58} {'status':<9} {'count':>6}")
    for reason, status, n in rows:
        say(f"  {reason:<58} {status:<9} {n:>6}")
    say("\nWhat the Microsoft Advertising emulator received:")
    say(f"  accepted conversions: {len(accepted)}   (ledger says uploaded: {uploaded})")
    for why, n in Counter(c["not_counted_reason"] for c in accepted
                          if not c["counted"]).most_common():
        say(f"  accepted, not counted ({why}): {n}")
    say(f"  duplicates ignored:   {len(emu.admin.duplicates())}")
    for code, n in rejected.most_common():
        say(f"  rejected {code}: {n}")
    say("  " + ("the ledger and Microsoft agree" if len(accepted) == uploaded
                else "MISMATCH between the ledger and Microsoft"))
    say("\nmsads why, for one event of each kind:")
    with warehouse.transaction(wh) as conn:
        for reason in sorted(examples):
            say("\n$ msads why " + examples[reason])
            say(render(explain(conn, examples[reason])))
    if len(accepted) != uploaded:
        raise SystemExit(1)


def main() -> int:
    started = time.monotonic()
    os.environ.pop("AIRFLOW_CONN_WAREHOUSE_DEFAULT", None)
    embedded = warehouse.EmbeddedWarehouse()
    admin_url = embedded.start()
    _fresh_database(admin_url)
    demo_url = embedded.start(DEMO_DB)
    os.environ["MSADS_WAREHOUSE_URL"] = demo_url  # every command and task below uses it
    wh = warehouse.Warehouse(demo_url, f"embedded PostgreSQL in {embedded.data_dir.name}, "
                                       f"database {DEMO_DB}")
    say(wh.describe())
    for m in migrations.migrate(wh):
        say(f"  applied migration {m.version:04d}_{m.name}")
    emu = _emulator()
    try:
        say(f"Microsoft Advertising emulator: {emu.base_url} (sign-in {emu.authority})")
        t = _microsoft(emu)
        env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT),
                   **{f"AIRFLOW_CONN_{CONN_ID.upper()}": _connection(emu, t)})
        _configure(t, env, wh)
        say(f"Demo customer {t['customer_id']}: account {t['account_id']} (Space demo-us) and "
            f"{t['eu_account_id']} (Space demo-eu, paused in Microsoft); Space demo-uk has CAPI "
            "off; 5 offline goals, one deleted in Microsoft after it was mapped")
        rows = _events(t)
        _insert(wh, rows)
        say(f"Wrote {len(rows)} events to conversion_events")
        clickers = _clickers(emu, t, rows)
        say(f"Issued {clickers} clicks in Microsoft with the clicker's hashed email or phone, "
            f"for about {CLICKERS:.0%} of the events sent with only those")
        # On Microsoft's side a goal is deleted after it was mapped (the refresh will notice).
        emu.store.execute("DELETE FROM goals WHERE id = ?", (t["doomed_goal"],))

        from include.msads_capi.local.run_airflow import airflow_env, prepare

        home = local_dir() / "demo-airflow"
        af_env = airflow_env(home)
        af_env.update({k: v for k, v in env.items() if k.startswith("AIRFLOW_CONN_")})
        say("Preparing Airflow (metadata database, pool msads_api) ...")
        prepare(af_env)
        took = _airflow(af_env, "dags", "test", "msads_refresh_goals")
        say(f"airflow dags test msads_refresh_goals: done in {took:.1f} s")
        took = _airflow(af_env, "dags", "test", "msads_upload_conversions")
        say(f"airflow dags test msads_upload_conversions: done in {took:.1f} s")
        _report(wh, emu, t)
        with warehouse.transaction(wh) as conn:
            uploaded = conn.execute("SELECT count(*) FROM msads.results WHERE event_id LIKE "
                                    "'demo-%' AND status = 'uploaded'").fetchone()[0]
        events = _write_refunds(wh, emu, t)
        say(f"\nWrote {len(events)} refunds and cancellations to conversion_adjustments (of "
            f"orders uploaded by that run, and one that was not)")
        took = _airflow(af_env, "dags", "test", "msads_upload_conversions",
                        log_name="msads_upload_conversions-refunds")
        say(f"airflow dags test msads_upload_conversions: done in {took:.1f} s")
        agree = _report_refunds(wh, emu, events, uploaded)
        from include.msads_capi.explain import explain, render

        say("\n$ msads why " + events["refund-3b"])
        with warehouse.transaction(wh) as conn:
            say(render(explain(conn, events["refund-3b"])))
        took = _airflow(af_env, "dags", "test", "msads_reconcile")
        say(f"\nairflow dags test msads_reconcile: done in {took:.1f} s")
        agree = _report_reconciled(wh, emu, env) and agree
        if not agree:
            raise SystemExit(1)
    finally:
        emu.stop()
    say(f"\nDemo finished in {time.monotonic() - started:.0f} s. Its data is in database "
        f"{DEMO_DB}; explore it with:\n  MSADS_WAREHOUSE_URL='{demo_url}' .venv/bin/msads why "
        "demo-00001")
    return 0


if __name__ == "__main__":
    sys.exit(main())
