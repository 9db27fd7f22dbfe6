"""The page as a web app (FastAPI, which the Airflow api-server already runs).

Who the user is and what they may do comes from outside (:class:`Viewer`, supplied by the
Airflow plugin), so every route asks it first: an anonymous request never reaches a handler.
Reading needs a viewer; every change is a POST that needs ``can_edit`` and a CSRF token bound to
the user's own session credential, and is refused when the browser says it came from another
site. A change runs in one transaction: bad input changes nothing and is shown next to its
field, a good one redirects back (post/redirect/get) with what was done.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from include.msads_capi import warehouse as wh
from include.msads_capi.console import forms, views
from include.msads_capi.console.page import Renderer, problem_page
from include.msads_capi.errors import MsadsError, Unavailable

if TYPE_CHECKING:
    import psycopg

# Served inside the Airflow UI's frame only; never cached (it shows live state).
HEADERS = {"Content-Security-Policy": "frame-ancestors 'self'", "X-Content-Type-Options":
           "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "same-origin"}


@dataclass(frozen=True)
class Viewer:
    """The signed-in user: a name to show, whether they may change things, and the session
    credential the CSRF token is bound to."""

    name: str
    can_edit: bool
    session: str


def csrf_token(secret: bytes, session: str) -> str:
    return hmac.new(secret, b"msads-console-csrf\0" + session.encode(), hashlib.sha256).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Console:
    """The page's handlers: who is asking, which warehouse, the CSRF secret and the clock."""

    def __init__(self, who: Callable[[Request], Awaitable[Viewer]],
                 warehouse: Callable[[], wh.Warehouse], secret: bytes,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.who, self.secret, self.clock = who, secret, clock
        self._resolve = warehouse
        self._checked: wh.Warehouse | None = None

    def warehouse(self) -> wh.Warehouse:
        """The warehouse, once it is known to be reachable and migrated (the fix otherwise)."""
        if self._checked is None:
            from include.msads_capi import migrations

            found = self._resolve()
            migrations.require_current(found)
            self._checked = found
        return self._checked

    async def viewer(self, request: Request) -> Viewer:
        user = await self.who(request)
        request.state.viewer = user
        return user

    def page(self, request: Request, **kwargs: object) -> HTMLResponse:
        try:
            return self._page(request, **kwargs)
        except (MsadsError, Unavailable) as exc:
            return HTMLResponse(problem_page(str(exc)), status_code=503, headers=HEADERS)

    def _page(self, request: Request, *, status: int = 200, notice: str | None = None,
             event_id: str = "", account: str | None = None,
             error: forms.FormError | None = None, values: dict | None = None) -> HTMLResponse:
        user: Viewer = request.state.viewer
        why = why_error = None
        with wh.transaction(self.warehouse()) as conn:
            ov = views.overview(conn, self.clock(), account)
            if event_id.strip():
                why, why_error = _why(conn, event_id.strip())
        if error is not None:
            ov.errors = {(error.form, k): v for k, v in error.errors.items()}
            ov.values = values or {}
        renderer = Renderer(request.scope.get("root_path", ""),
                            csrf_token(self.secret, user.session), user.can_edit, user.name)
        html = renderer.page(ov, notice=notice, why=why, why_id=event_id, why_error=why_error)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    async def change(self, request: Request, action: Callable[[psycopg.Connection, dict], str],
                     anchor: str) -> Response:
        from starlette.concurrency import run_in_threadpool

        user: Viewer = request.state.viewer
        if not user.can_edit:
            raise HTTPException(403, "changing Microsoft CAPI settings needs the Op or Admin "
                                     "role (permission to edit connections and variables)")
        _same_origin(request)
        body = (await request.body()).decode("utf-8", "replace")
        data = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
        if not hmac.compare_digest(data.get("csrf", ""), csrf_token(self.secret, user.session)):
            raise HTTPException(403, "the form has expired or did not come from this page; "
                                     "reload the page and try again")
        return await run_in_threadpool(self._apply, request, action, data, anchor)

    def _apply(self, request: Request, action: Callable, data: dict, anchor: str) -> Response:
        try:
            with wh.transaction(self.warehouse()) as conn:
                notice = action(conn, data)
        except forms.FormError as exc:
            return self.page(request, status=400, error=exc, values=data,
                             account=data.get("account"))
        except (MsadsError, Unavailable) as exc:
            return HTMLResponse(problem_page(str(exc)), status_code=503, headers=HEADERS)
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/?notice={quote(notice)}#{anchor}", status_code=303,
                                headers=HEADERS)


def create_app(console: Console) -> FastAPI:
    """The app; every route first asks ``console.who``, which raises 401/403 for a request
    without a permitted user."""
    app = FastAPI(title="Microsoft CAPI", dependencies=[Depends(console.viewer)],
                  docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, event_id: str = "", account: str | None = None,
              notice: str | None = None) -> HTMLResponse:
        return console.page(request, event_id=event_id, account=account, notice=notice)

    @app.post("/spaces/{space_id}/capi")
    async def capi(request: Request, space_id: str) -> Response:
        return await console.change(request, lambda c, d: forms.capi(c, space_id, d), "spaces")

    @app.post("/spaces")
    async def space_add(request: Request) -> Response:
        return await console.change(request, forms.space_add, "spaces")

    @app.post("/spaces/{space_id}")
    async def space_set(request: Request, space_id: str) -> Response:
        return await console.change(request, lambda c, d: forms.space_set(c, space_id, d),
                                    "spaces")

    @app.post("/mappings")
    async def mapping_add(request: Request) -> Response:
        return await console.change(request, forms.mapping_add, "mappings")

    @app.post("/mappings/{mapping_id}")
    async def mapping(request: Request, mapping_id: str) -> Response:
        return await console.change(request, lambda c, d: forms.mapping(c, mapping_id, d),
                                    "mappings")

    return app


def _why(conn: psycopg.Connection, event_id: str) -> tuple[str | None, str | None]:
    from include.msads_capi.explain import explain, render

    try:
        return render(explain(conn, event_id)), None
    except MsadsError as exc:
        return None, str(exc)


def _same_origin(request: Request) -> None:
    """Refuse a POST the browser says came from another site (Origin, else Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return  # not a browser's cross-site form post; the CSRF token still has to match
    if urlsplit(source).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "cross-site request refused: change settings from the "
                                 "Microsoft CAPI page itself")
