"""The page's HTML: server-rendered, every value escaped, every change a POST form with the CSRF
token. No personal data reaches it: the views hold none, and ``msads why``'s text shows only
whether an email or phone is usable."""

from __future__ import annotations

from datetime import datetime
from html import escape

from include.msads_capi import health, spaces
from include.msads_capi.console.forms import FORM
from include.msads_capi.console.views import Overview
from include.msads_capi.settings import events_table

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.2rem;color:#1b1f24;
background:#fff;font-size:14px}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:1.6rem 0 .5rem;
border-bottom:1px solid #d0d7de;padding-bottom:.2rem}h3{font-size:1rem;margin:1rem 0 .3rem}
table{border-collapse:collapse;margin:.3rem 0 .8rem}th,td{border:1px solid #d0d7de;
padding:.25rem .5rem;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37}.bad{color:#cf222e}.warn{background:#fff8c5;border:1px solid #d4a72c;
padding:.4rem .6rem;margin:.3rem 0}.notice{background:#dafbe1;border:1px solid #4ac26b;
padding:.4rem .6rem}.error{color:#cf222e;font-weight:600;margin-left:.4rem}
.formerror{background:#ffebe9;border:1px solid #ff8182;padding:.4rem .6rem;margin:.3rem 0}
form.inline{display:inline}button{cursor:pointer}label{margin-right:.6rem}
pre{background:#f6f8fa;padding:.6rem;border:1px solid #d0d7de;white-space:pre-wrap}
.muted{color:#57606a}nav a{margin-right:.8rem}
"""

ACCOUNT_FIX = {
    "paused": "The account is paused or inactive in Microsoft Advertising; its events wait as "
              "account_inactive. Reactivate it there, then run msads_refresh_goals.",
    "auth_failed": "Microsoft refused the sign-in; sign in again with: msads auth login "
                   "--conn-id CONN_ID.",
    "not_found": "The profile cannot reach this account any more; check its access in "
                 "Microsoft Advertising, or unlink it.",
}


def e(value: object) -> str:
    if value is None:
        return '<span class="muted">-</span>'
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return escape(f"{value:%Y-%m-%d %H:%M} UTC")
    return escape(str(value))


def _table(headers: list[str], rows: list[list[str]], empty: str, test_id: str = "") -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    tid = f' data-testid="{test_id}"' if test_id else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table{tid}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Renderer:
    """Renders the page for one request: the base URL, the CSRF token, whether the user may
    change things, and the errors of a form just posted."""

    def __init__(self, base: str, csrf: str, can_edit: bool, user: str | None = None) -> None:
        self.base = base.rstrip("/")
        self.csrf = csrf
        self.can_edit = can_edit
        self.user = user

    # -- building blocks

    def _post(self, path: str, inner: str, *, cls: str = "inline", test_id: str = "") -> str:
        if not self.can_edit:
            return ""
        tid = f' data-testid="{test_id}"' if test_id else ""
        return (f'<form method="post" class="{cls}" action="{escape(self.base + path)}"{tid}>'
                f'<input type="hidden" name="csrf" value="{escape(self.csrf)}">{inner}</form>')

    def _button(self, path: str, label: str, **hidden: str) -> str:
        fields = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                         for k, v in hidden.items())
        return self._post(path, f"{fields}<button type=\"submit\">{escape(label)}</button>")

    @staticmethod
    def _err(ov: Overview, form: str, name: str) -> str:
        msg = ov.errors.get((form, name))
        return (f'<span class="error" role="alert" data-field="{escape(name)}">'
                f"{escape(msg)}</span>") if msg else ""

    def _form_err(self, ov: Overview, form: str) -> str:
        msg = ov.errors.get((form, FORM))
        return f'<div class="formerror" role="alert">{escape(msg)}</div>' if msg else ""

    # -- the page

    def page(self, ov: Overview, *, notice: str | None = None, why: str | None = None,
             why_id: str = "", why_error: str | None = None) -> str:
        parts = [
            "<h1>Microsoft CAPI</h1>",
            f'<p class="muted">Offline conversions from <code>{e(events_table())}</code> to '
            f"Microsoft Advertising, as of {e(ov.now)}"
            + (f"; signed in as {e(self.user)}" if self.user else "")
            + ("" if self.can_edit else "; read-only: changes need the Op or Admin role")
            + ".</p>",
            '<nav><a href="#outcomes">Outcomes</a><a href="#lookup">Event lookup</a>'
            '<a href="#spaces">Spaces</a><a href="#profiles">Profiles and accounts</a>'
            '<a href="#goals">Goals</a><a href="#mappings">Mappings</a></nav>',
        ]
        if notice:
            parts.append(f'<div class="notice" role="status">{escape(notice)}</div>')
        parts += [self.outcomes(ov), self.lookup(why, why_id, why_error), self.spaces(ov),
                  self.profiles(ov), self.goals(ov), self.mappings(ov)]
        return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<title>Microsoft CAPI</title><meta name=\"viewport\" "
                f"content=\"width=device-width\"><style>{STYLE}</style></head><body>"
                + "\n".join(parts) + "</body></html>")

    def outcomes(self, ov: Overview) -> str:
        t = ov.totals
        statuses = ("uploaded", "rejected", "skipped", "deferred", "failed")
        rows = []
        for window in health.WINDOWS:
            w = t[window]
            rate = w.get("rate")
            rows.append([f"last {window}"] + [f'{w.get(s, 0):,}' for s in statuses]
                        + ["-" if rate is None else f"{rate:.1%}"])
        head = _table(["window", *statuses, "rejection rate"], rows, "", "totals")
        detail = [[e(c["account_id"] or "-"), f"<code>{e(c['reason'])}</code>", e(c["status"]),
                   f'{c["hour"]:,}', f'{c["day"]:,}', f'{c["week"]:,}', e(c["sentence"]),
                   e(c["fix"])] for c in ov.counts]
        high = [r for r in ov.rates if r.sent and r.rate > 0]
        rate_rows = [[e(r.account_id), f"{r.sent:,}", f"{r.rejected:,}", f"{r.rate:.1%}"]
                     for r in high]
        return ('<h2 id="outcomes">Outcomes</h2>'
                f"<p>Pending work (claimed, ready or waiting to retry): "
                f'<strong data-testid="pending">{t["pending"]:,}</strong></p>' + head
                + ("<h3>Rejections in the last hour, per account</h3>"
                   + _table(["account", "answered", "rejected", "rate"], rate_rows, "")
                   if rate_rows else "")
                + "<h3>Per account and reason</h3>"
                + _table(["account", "reason", "status", "hour", "day", "week", "what it means",
                          "what to do"], detail, "No outcomes in the last week.", "counts"))

    def lookup(self, why: str | None, why_id: str, why_error: str | None) -> str:
        result = ""
        if why_error:
            result = f'<div class="formerror" role="alert">{escape(why_error)}</div>'
        elif why is not None:
            result = f'<pre data-testid="why">{escape(why)}</pre>'
        return ('<h2 id="lookup">Event lookup</h2>'
                '<p class="muted">The same checklist as <code>msads why EVENT_ID</code>.</p>'
                f'<form method="get" action="{escape(self.base)}/#lookup">'
                f'<label>Event id <input name="event_id" value="{escape(why_id)}" '
                'required></label><button type="submit">Why?</button></form>' + result)

    def spaces(self, ov: Overview) -> str:
        rows = []
        for s in ov.spaces:
            switch = self._button(f"/spaces/{s.space_id}/capi",
                                  "Turn off" if s.capi_enabled else "Turn on",
                                  state="off" if s.capi_enabled else "on")
            state = ('<strong class="ok">on</strong>' if s.capi_enabled
                     else '<strong class="bad">off</strong>')
            edit = self._post(
                f"/spaces/{s.space_id}",
                f'<input name="name" value="{escape(s.name)}" size="12" aria-label="name">'
                f'<input name="currency" value="{escape(s.currency_code)}" size="4" '
                f'aria-label="currency">{self._err(ov, "space_set", "currency")}'
                f'<input name="region" value="{escape(s.phone_region)}" size="3" '
                f'aria-label="region">{self._err(ov, "space_set", "region")}'
                "<button type=\"submit\">Save</button>")
            rows.append([e(s.space_id), e(s.name), f"{state} {switch}"
                         + (f' <span class="muted">since {e(s.capi_changed_at)}</span>'
                            if s.capi_changed_at else ""),
                         e(s.currency_code), e(s.phone_region), edit])
        add = self._post("/spaces", (
            self._form_err(ov, "space_add")
            + f'<label>Id <input name="space_id" value="{escape(ov.values.get("space_id", ""))}"'
            f' size="10"></label>{self._err(ov, "space_add", "space_id")}'
            f'<label>Name <input name="name" value="{escape(ov.values.get("name", ""))}" '
            'size="12"></label>'
            f'<label>Currency <input name="currency" value="'
            f'{escape(ov.values.get("currency", ""))}" size="4"></label>'
            f'{self._err(ov, "space_add", "currency")}'
            f'<label>Phone region <input name="region" value="'
            f'{escape(ov.values.get("region", ""))}" size="3"></label>'
            f'{self._err(ov, "space_add", "region")}<button type="submit">Add Space</button>'),
            cls="", test_id="space-add")
        return ('<h2 id="spaces">Spaces</h2><p class="muted">Turning CAPI off stops sending; '
                "every mapping is kept. Events that arrive while it is off end as "
                "<code>capi_off</code>.</p>" + self._form_err(ov, "capi")
                + self._form_err(ov, "space_set")
                + _table(["space", "name", "Microsoft CAPI", "currency", "phone region",
                          "change" if self.can_edit else ""], rows,
                         "No Spaces yet.", "spaces") + add)

    def profiles(self, ov: Overview) -> str:
        blocks = []
        for p in ov.profiles:
            tok = p.token
            conn_state = (f"connected as {e(tok.profile or 'unknown user')}" if tok.stored
                          else f'<span class="bad">not connected</span>: sign in with '
                               f"<code>msads auth login --conn-id {e(p.conn_id)}</code>")
            warn = (f'<div class="warn" role="alert" data-testid="token-warning">'
                    f"{escape(p.warning)}</div>") if p.warning else ""
            rows = [[e(a.account_id), e(a.name), e(a.space_id), self._account_status(a),
                     e(a.goals_fetched_at)] for a in p.accounts]
            blocks.append(
                f"<h3>Profile <code>{e(p.conn_id)}</code></h3><p>{conn_state}; token last "
                f"refreshed {e(tok.refreshed_at)}; the refresh token expires if unused on "
                f"{e(tok.expires_at)}" + (f'; last error: <span class="bad">{e(tok.last_error)}'
                                          "</span>" if tok.last_error else "") + "</p>" + warn
                + _table(["account", "name", "space", "status", "last goal refresh"], rows,
                         "No linked accounts use this profile."))
        return ('<h2 id="profiles">Microsoft profiles and linked accounts</h2>'
                + ("".join(blocks) or '<p class="muted">No profiles yet: link an account with '
                                      "<code>msads account link</code>.</p>"))

    @staticmethod
    def _account_status(a: spaces.Account) -> str:
        cls = "ok" if a.status == "active" else "bad"
        text = f'<span class="{cls}">{e(a.status)}</span>'
        if a.status_reason:
            text += f"<br>{e(a.status_reason)}"
        elif a.status in ACCOUNT_FIX:
            text += f"<br>{e(ACCOUNT_FIX[a.status])}"
        return text

    def goals(self, ov: Overview) -> str:
        blocks = []
        for a in ov.accounts:
            rows = [[e(g["name"]), e(g["goal_id"]), e(g["status"]),
                     e(f"{g['window_minutes'] // 1440} days" if g["window_minutes"] else None),
                     e(g["scope"]), e(g["count_type"]), e(g["enhanced_conversions"]),
                     e(g["externally_attributed"]),
                     (f'<span class="bad">missing since {e(g["missing_since"])}</span>'
                      if g["missing_since"] else '<span class="ok">present</span>')]
                    for g in ov.goals.get(a.account_id, [])]
            blocks.append(
                f"<h3>Account {e(a.account_id)} {e(a.name or '')}</h3>"
                + _table(["name", "goal id", "status", "window", "scope", "count",
                          "enhanced conversions", "externally attributed", "in Microsoft"],
                         rows, "No goals fetched yet: trigger msads_refresh_goals."))
        return ('<h2 id="goals">Goals, as last fetched</h2>'
                + ("".join(blocks) or '<p class="muted">No linked accounts.</p>'))

    def mappings(self, ov: Overview) -> str:
        rows = []
        for m in ov.mappings:
            form = f"mapping-{m.mapping_id}"
            actions = [self._button(f"/mappings/{m.mapping_id}",
                                    "Disable" if m.enabled else "Enable",
                                    do="disable" if m.enabled else "enable")]
            if m.goal_state == "renamed":
                actions.insert(0, self._button(f"/mappings/{m.mapping_id}",
                                               "Confirm renamed goal", do="confirm"))
            actions.append(self._button(f"/mappings/{m.mapping_id}", "Remove", do="remove"))
            state = e(m.goal_state)
            if m.goal_state in ("renamed", "missing"):
                why = m.broken_reason or (
                    f"goal {m.goal_id} is not among the account's goals as last fetched: map "
                    "the event to another goal, or refresh goals (msads_refresh_goals)")
                state = f'<span class="bad">{state}</span><br>{e(why)}'
            rows.append([e(m.mapping_id), e(m.space_id), e(m.account_id), e(m.event_name),
                         f"{e(m.goal_id)} {e(m.goal_name or '')}", state, e(m.send_rule),
                         e(m.enabled), " ".join(a for a in actions if a)
                         + self._form_err(ov, form)])
        return ('<h2 id="mappings">Mappings</h2>'
                + _table(["id", "space", "account", "event", "goal", "goal state", "send rule",
                          "enabled", "change" if self.can_edit else ""], rows,
                         "No mappings yet.", "mappings")
                + (self.add_mapping(ov) if self.can_edit else ""))

    def add_mapping(self, ov: Overview) -> str:
        form, v = "mapping_add", ov.values
        chosen = ov.pick_account
        options = "".join(
            f'<option value="{a.account_id}"{" selected" if chosen and chosen.account_id == a.account_id else ""}>'
            f"{e(a.account_id)} {e(a.name or '')} ({e(a.space_id)})</option>" for a in ov.accounts)
        step1 = (f'<form method="get" action="{escape(self.base)}/#add-mapping" '
                 'data-testid="pick-account"><label>1. Account <select name="account">'
                 f"{options}</select></label><button type=\"submit\">Choose</button></form>")
        if chosen is None:
            return ('<h3 id="add-mapping">Add a mapping</h3>' + self._form_err(ov, form)
                    + (step1 if ov.accounts else '<p class="muted">Link an account first.</p>'))
        goals = [g for g in ov.goals.get(chosen.account_id, []) if not g["missing_since"]]
        goal_options = "".join(
            f'<option value="{g["goal_id"]}"{" selected" if str(g["goal_id"]) == v.get("goal") else ""}>'
            f"{e(g['name'])} ({e(g['goal_id'])}, {e(g['status'])})</option>" for g in goals)
        rules = "".join(f'<option value="{r}"{" selected" if v.get("rule") == r else ""}>{r}'
                        "</option>" for r in spaces.SEND_RULES)
        step2 = self._post("/mappings", (
            self._form_err(ov, form)
            + f'<input type="hidden" name="account" value="{chosen.account_id}">'
            f"{self._err(ov, form, 'account')}"
            '<label>2. Goal <select name="goal"><option value="">choose a goal</option>'
            f"{goal_options}</select></label>{self._err(ov, form, 'goal')}"
            f'<label>3. Event name <input name="event" value="{escape(v.get("event", ""))}" '
            f'placeholder="Purchase"></label>{self._err(ov, form, "event")}'
            f'<label>4. Send rule <select name="rule">{rules}</select></label>'
            f"{self._err(ov, form, 'rule')}<button type=\"submit\">Add mapping</button>"),
            cls="", test_id="add-mapping")
        none = ("" if goals else '<p class="muted">This account has no goals fetched yet: '
                                 "trigger msads_refresh_goals.</p>")
        return '<h3 id="add-mapping">Add a mapping</h3>' + step1 + none + step2


def problem_page(message: str) -> str:
    """What the page says when the warehouse cannot serve it, with the fix; nothing else."""
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Microsoft "
            f"CAPI</title><style>{STYLE}</style></head><body><h1>Microsoft CAPI</h1>"
            '<div class="formerror" role="alert">The warehouse cannot be read: '
            f"{escape(message)}</div><p class=\"muted\">Reload the page once it is fixed.</p>"
            "</body></html>")
