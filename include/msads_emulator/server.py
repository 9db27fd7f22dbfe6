"""The emulator's HTTP(S) server: REST services, identity platform and admin API on one port."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from include.msads_emulator import campaign, customer, errors, rest
from include.msads_emulator.admin import PREFIX, Admin
from include.msads_emulator.errors import BatchError, Fault
from include.msads_emulator.oauth import OAuth
from include.msads_emulator.store import Store
from include.msads_emulator.web import Request, Response, html_response, json_response

if TYPE_CHECKING:
    from collections.abc import Callable

    from include.msads_emulator.client import AdminClient

log = logging.getLogger(__name__)

_TENANT_ROUTE = re.compile(r"/([^/]+)/(v2\.0/\.well-known/openid-configuration|oauth2/v2\.0/"
                           r"(?:token|devicecode|authorize))/?")
_MISSING = ("", "None")


class App:
    """Turns a :class:`Request` into a :class:`Response`; knows nothing about sockets."""

    def __init__(self, store: Store, urls: Callable[[], dict[str, str]],
                 stopping: threading.Event) -> None:
        self.store = store
        self.oauth = OAuth(store)
        self.admin = Admin(store, self.oauth, urls)
        self.urls = urls
        self.stopping = stopping

    def handle(self, req: Request) -> Response:
        path = req.path
        low = path.lower()
        if path.startswith(PREFIX + "/") or path == PREFIX:
            return self.admin.handle(req)
        if rest.is_service_path(low):
            return self.service(req)
        if path.rstrip("/") == "/devicelogin":
            return self._logged(req, "oauth", "devicelogin", self.oauth.devicelogin, req)
        m = _TENANT_ROUTE.fullmatch(path)
        if m:
            tenant, what = m.group(1), m.group(2).rsplit("/", 1)[-1]
            if what == "openid-configuration" and req.method == "GET":
                return self.oauth.openid_configuration(req, tenant)
            if what == "token" and req.method == "POST":
                return self._logged(req, "oauth", "token", self.oauth.token, req, tenant)
            if what == "devicecode" and req.method == "POST":
                return self._logged(req, "oauth", "devicecode", self.oauth.devicecode, req,
                                    tenant)
            if what == "authorize" and req.method in ("GET", "POST"):
                return self._logged(req, "oauth", "authorize", self.oauth.authorize, req,
                                    tenant)
            return json_response({"error": "invalid_request",
                                  "error_description": f"{req.method} is not supported here"},
                                 405)
        if path.startswith(campaign.FILES_PATH):
            return self._logged(req, "files", "report_file", self.report_file, req)
        if path == "/":
            return html_response("Microsoft Advertising emulator",
                                 "<p>See docs/emulator.md in msads-capi.</p>")
        return Response(404, b"Not Found")

    # -- logging ------------------------------------------------------------------------------

    def _log_start(self, req: Request, service: str, operation: str | None, **known) -> int:
        """Log a request as received (``known``: more of its columns, known already)."""
        return self.store.log_request({
            "received_at": self.store.now(), "real_time": time.time(), "service": service,
            "operation": operation, "method": req.method,
            "path": req.path + ("?" + "&".join(f"{k}={v}" for k, v in req.query.items())
                                if req.query else ""),
            "headers": req.headers, "body": req.body.decode("utf-8", "replace"), **known})

    def _logged(self, req: Request, service: str, operation: str, fn: Callable[..., Response],
                *args) -> Response:
        rid = self._log_start(req, service, operation)
        body = req.body.decode("utf-8", "replace")
        for fault in self.store.take_faults(operation, None, body, oauth=True):
            if fault["kind"] == "delay":
                self.stopping.wait(float(fault["delay_seconds"] or 0))
            elif fault["kind"] == "http_error":
                resp = _http_error(int(fault["http_status"] or 500))
                self.store.finish_request(rid, status=resp.status, outcome="injected http_error",
                                          response=resp.body.decode())
                return resp
        resp = fn(*args)
        self.store.finish_request(rid, status=resp.status,
                                  response=resp.body.decode("utf-8", "replace"))
        return resp

    # -- per-record report files --------------------------------------------------------------

    def report_file(self, req: Request) -> Response:
        """The file a DailySummary's ``FileUrl`` names. The link is its own credential, as a
        pre-signed download link is: no API headers are asked for (assumed)."""
        if req.method not in ("GET", "HEAD"):
            return Response(405, b"Method Not Allowed", headers={"Allow": "GET, HEAD"})
        name = req.path[len(campaign.FILES_PATH):]
        token = name.removesuffix(".csv") if name.endswith(".csv") else ""
        if not token or "/" in token:
            return Response(404, b"The specified report file does not exist.\n")
        status, text = campaign.report_file(self.store, token, self.store.now())
        if status != 200:
            return Response(status, text.encode("utf-8"))
        return Response(200, text.encode("utf-8"), "text/csv; charset=utf-8")

    # -- REST services --------------------------------------------------------------------------

    def service(self, req: Request) -> Response:
        """One Campaign or Customer Management REST call: route, inject, authenticate, answer.

        Every answer carries a ``TrackingId`` header (assumed: Microsoft documents TrackingId
        as a response header element of every operation, and REST sends it as an HTTP
        header)."""
        tracking_id = str(uuid.uuid4())
        account_header = req.headers.get("customeraccountid")
        try:
            service, operation = rest.route(req.method, req.path)
        except Fault as fault:
            rid = self._log_start(req, "rest", None)
            return self._answer(rid, fault, tracking_id, outcome=f"fault {fault}")
        rid = self._log_start(req, service, operation, tracking_id=tracking_id,
                              account_id=account_header,
                              customer_id=req.headers.get("customerid"))
        raw = req.body.decode("utf-8", "replace")
        try:
            forced: dict[int, BatchError] = {}
            injected = self._injected(operation, account_header, raw, forced)
            if isinstance(injected, Response):
                injected.headers["TrackingId"] = tracking_id
                self.store.finish_request(rid, status=injected.status,
                                          outcome="injected http_error",
                                          response=injected.body.decode())
                return injected
            body = rest.read_body(req.body)
            user, account, customer_id = self._authenticate(req.headers, service)
            now = self.store.now()
            if service == rest.CAMPAIGN:
                result = campaign.OPERATIONS[operation](campaign.Call(
                    self.store, body, user, account, customer_id, rid, now, forced,
                    files_url=self.urls()["https_url"]))
            else:
                result = customer.OPERATIONS[operation](customer.Call(self.store, body, user))
        except Fault as fault:
            return self._answer(rid, fault, tracking_id, outcome=f"fault {fault}")
        return self._answer(rid, result, tracking_id)

    def _answer(self, rid: int, result: dict | Fault, tracking_id: str, *,
                outcome: str = "ok") -> Response:
        if isinstance(result, Fault):
            resp = json_response(result.as_json(tracking_id), result.status)
        else:
            resp = json_response(result)
        resp.headers["TrackingId"] = tracking_id
        self.store.finish_request(rid, status=resp.status, outcome=outcome,
                                  response=resp.body.decode("utf-8"), tracking_id=tracking_id)
        return resp

    def _injected(self, operation: str, account_id: str | None, body: str,
                  forced: dict[int, BatchError]) -> Response | None:
        """Apply the faults injected through the admin API; a fault is raised as Fault.
        A ``batch_error`` fault that is not ``as_fault`` fills ``forced``: BatchErrors by item
        index, answered in PartialErrors instead of the rules' verdict."""
        for fault in self.store.take_faults(operation, account_id, body):
            kind, status = fault["kind"], fault["http_status"]
            if kind == "delay":
                self.stopping.wait(float(fault["delay_seconds"] or 0))
            elif kind == "http_error":
                return _http_error(int(status or 500))
            elif kind == "deserialization":
                message = fault["message"] or (
                    f"The value {fault['body_contains'] or ''!r} could not be read as the "
                    f"type the {operation} request declares.")
                raise errors.unreadable(message, status)
            elif kind == "batch_error":
                named = [BatchError(i, fault["code"], fault["error_code"] or "Error",
                                    fault["message"] or "Injected fault.")
                         for i in _items_holding(body, fault["body_contains"])]
                if fault["as_fault"]:
                    raise Fault("api", batch_errors=named, http_status=status)
                forced.update((b.index, b) for b in named)
            elif kind in ("throttle", "internal_error", "adapi_error"):
                raise errors.adapi_fault(fault["code"], fault["error_code"] or "Error",
                                         fault["message"] or "Injected fault.", status)
            elif kind == "operation_error":
                raise errors.operation_fault(fault["code"], fault["error_code"] or "Error",
                                             fault["message"] or "Injected fault.",
                                             http_status=status)
        return None

    def _authenticate(self, headers: dict[str, str], service: str
                      ) -> tuple[dict, dict | None, int | None]:
        """The REST headers (lower-case names here): ``Authorization: Bearer``,
        ``DeveloperToken``, and for Campaign Management ``CustomerId`` and
        ``CustomerAccountId``, checked as Microsoft documents for its header elements."""
        store = self.store
        token = store.access_token(rest.bearer(headers))
        if token is None:
            raise errors.adapi(105)
        if store.now() >= token["expires_at"]:
            raise errors.adapi(109)
        if not store.developer_token_ok(headers.get("developertoken")):
            raise errors.adapi(105)
        user = store.user(token["user_id"])
        if user is None:
            raise errors.adapi(105)
        if service != rest.CAMPAIGN:
            return user, None, None
        account_raw = (headers.get("customeraccountid") or "").strip()
        customer_raw = (headers.get("customerid") or "").strip()
        if account_raw in _MISSING:
            raise errors.operation(1030)
        if customer_raw in _MISSING:
            raise errors.operation(1029)
        if not customer_raw.isdigit() or store.customer(int(customer_raw)) is None \
                or not store.can_access_customer(user["id"], int(customer_raw)):
            raise errors.adapi(106)
        account = store.account(int(account_raw)) if account_raw.isdigit() else None
        # An account that does not exist, or is not under the CustomerId header's customer.
        if account is None or account["customer_id"] != int(customer_raw):
            raise errors.operation(1102)
        if not store.can_access_account(user["id"], account):
            raise errors.adapi(106)
        return user, account, int(customer_raw)


def _items_holding(body: str, text: str | None) -> list[int]:
    """Indexes of the request's items (the entries of its first array) whose JSON holds
    ``text``; every item without a text; [0] for a request without items."""
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError:
        data = {}
    arrays = [v for v in data.values() if isinstance(v, list)] if isinstance(data, dict) else []
    items = arrays[0] if arrays else []
    if not items:
        return [0]
    return [i for i, item in enumerate(items)
            if not text or text in json.dumps(item, ensure_ascii=False)]


def _http_error(status: int) -> Response:
    """An HTTP error page as a web server or gateway sends it: HTML, not JSON."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    text = ("The resource you are looking for was not found." if status == 404
            else "The request could not be understood." if status == 400
            else "The server encountered an error.")
    page = (f"<!DOCTYPE html><html><head><title>{status} - {reason}</title></head><body>"
            f"<h1>{status} - {reason}</h1><p>{text}</p></body></html>")
    return Response(status, page.encode(), "text/html")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "msads-emulator"
    timeout = 120
    # The head and the body of an answer go out in two writes; on a kept-alive connection
    # Nagle's algorithm held the second until the client's delayed ACK, 40 ms or more a call.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        server: _Server = self.server  # type: ignore[assignment]
        req = Request(
            method=self.command, path=split.path,
            query={k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in self.headers.items()}, body=body,
            scheme="https" if isinstance(self.connection, ssl.SSLSocket) else "http",
            host=self.headers.get("Host") or server.public_host)
        try:
            resp = server.app.handle(req)
        except Exception:  # a bug in the emulator: say so rather than drop the connection
            log.exception("emulator error on %s %s", self.command, self.path)
            resp = Response(500, b"emulator error; see its log")
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    """Serves http and https on one port: a TLS ClientHello (first byte 0x16) gets TLS."""

    daemon_threads = True
    allow_reuse_address = True
    app: App
    ssl_context: ssl.SSLContext
    public_host: str

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        conn = request
        try:
            request.settimeout(_Handler.timeout)
            first = request.recv(1, socket.MSG_PEEK)
            if not first:
                return
            if first == b"\x16":
                conn = self.ssl_context.wrap_socket(request, server_side=True)
            self.RequestHandlerClass(conn, client_address, self)
        except (OSError, ssl.SSLError) as exc:
            log.debug("connection from %s ended: %s", client_address, exc)
        finally:
            if conn is not request:
                try:
                    conn.close()
                except OSError:
                    pass


class Emulator:
    """Microsoft Advertising's REST services, OAuth and an admin API, in one local server.

    ``with Emulator() as emu:`` starts it on a free port with state in memory. The URLs to
    give clients are ``campaign_url``, ``customer_url`` and ``authority`` (https; trust
    ``ca_file``); ``admin`` is a client for the admin API.
    """

    def __init__(self, state: str = ":memory:", *, host: str = "127.0.0.1", port: int = 0,
                 ca_file: str | os.PathLike | None = None,
                 settings: dict | None = None) -> None:
        self.state = str(state)
        self.host = host
        self.requested_port = port
        self._ca_file_wanted = Path(ca_file) if ca_file else None
        self._settings = settings or {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self._stopping = threading.Event()
        self.store: Store | None = None
        self.port: int = 0
        self.ca_file: str = ""

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Emulator:
        import trustme

        self.store = Store(self.state)
        if self._settings:
            self.store.update_settings(self._settings)
        public = self.public_host_name
        ca = trustme.CA(organization_name="msads-capi emulator")
        names = sorted({"127.0.0.1", "localhost", public})
        cert = ca.issue_cert(*names)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        if self._ca_file_wanted:
            path = self._ca_file_wanted
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            self._tmpdir = tempfile.mkdtemp(prefix="msads-emulator-")
            path = Path(self._tmpdir) / "emulator-ca.pem"
        ca.cert_pem.write_to_path(str(path))
        self.ca_file = str(path)
        server = _Server((self.host, self.requested_port), _Handler)
        server.ssl_context = context
        self.port = server.server_address[1]
        server.public_host = f"{public}:{self.port}"
        server.app = App(self.store, self.urls, self._stopping)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"msads-emulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------------

    @property
    def public_host_name(self) -> str:
        return "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host

    @property
    def base_url(self) -> str:
        return f"http://{self.public_host_name}:{self.port}"

    @property
    def https_url(self) -> str:
        return f"https://{self.public_host_name}:{self.port}"

    @property
    def campaign_url(self) -> str:
        """Campaign Management v13's REST host (plain http); the SDK adds the paths."""
        return self.base_url

    @property
    def customer_url(self) -> str:
        """Customer Management v13's REST host (plain http); the same port."""
        return self.base_url

    @property
    def authority(self) -> str:
        """The identity platform authority for msal (https, tenant ``common``)."""
        return self.https_url + "/common"

    @property
    def token_url(self) -> str:
        return self.authority + "/oauth2/v2.0/token"

    @property
    def admin_url(self) -> str:
        return self.base_url + PREFIX

    @property
    def admin(self) -> AdminClient:
        from include.msads_emulator.client import AdminClient

        return AdminClient(self.admin_url)

    def urls(self) -> dict[str, str]:
        return {"campaign_url": self.campaign_url, "customer_url": self.customer_url,
                "https_url": self.https_url,
                "authority": self.authority, "token_url": self.token_url,
                "admin_url": self.admin_url, "ca_file": self.ca_file}
