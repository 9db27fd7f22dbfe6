"""Alert channels a test can read: an SMTP sink (aiosmtpd) and a Slack-style webhook receiver
(http.server), both on 127.0.0.1 only, configured as the Airflow connections alerts use."""

from __future__ import annotations

import email
import json
import threading
from dataclasses import dataclass, field
from email import policy
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import free_port
from tests.dags.conftest import airflow_db, dagbag, run_dag  # noqa: F401 - for dag.test()


@dataclass
class Sent:
    channel: str
    subject: str
    text: str


@dataclass
class Channels:
    """What reached each channel, and switches to make a channel fail."""

    mail: list = field(default_factory=list)
    posts: list = field(default_factory=list)
    webhook_status: int = 200
    smtp_port: int = 0
    webhook_port: int = 0
    email_connection: str = ""

    def sent(self) -> list[Sent]:
        out = []
        for raw in self.mail:
            msg = email.message_from_bytes(raw, policy=policy.default)
            body = msg.get_body(preferencelist=("html", "plain")).get_content()
            out.append(Sent("email", str(msg["Subject"]), unescape(body)))
        for body in self.posts:
            first, _, rest = body["text"].partition("\n")
            out.append(Sent("slack", unescape(first.strip("*")), unescape(rest)))
        return out

    def subjects(self, channel: str | None = None) -> list[str]:
        return [s.subject for s in self.sent() if channel in (None, s.channel)]


class _Sink:
    def __init__(self, channels: Channels) -> None:
        self.channels = channels

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.channels.mail.append(envelope.original_content or envelope.content)
        return "250 OK"


@pytest.fixture
def channels(monkeypatch):
    """An SMTP sink and a webhook receiver as msads_alerts_email and msads_alerts_slack."""
    from aiosmtpd.controller import Controller

    box = Channels(smtp_port=free_port())
    smtp = Controller(_Sink(box), hostname="127.0.0.1", port=box.smtp_port)
    smtp.start()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if box.webhook_status == 200:
                box.posts.append(body)
            self.send_response(box.webhook_status)
            self.end_headers()
            self.wfile.write(b"ok" if box.webhook_status == 200 else b"no_service")

        def log_message(self, *args):
            pass

    web = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    box.webhook_port = web.server_address[1]
    threading.Thread(target=web.serve_forever, daemon=True).start()
    box.email_connection = _smtp_connection(box.smtp_port)
    monkeypatch.setenv("AIRFLOW_CONN_MSADS_ALERTS_EMAIL", box.email_connection)
    monkeypatch.setenv("AIRFLOW_CONN_MSADS_ALERTS_SLACK", json.dumps({
        "conn_type": "slackwebhook",
        "password": f"http://127.0.0.1:{box.webhook_port}/services/T000/B000/placeholder"}))
    yield box
    web.shutdown()
    web.server_close()
    smtp.stop()


@pytest.fixture
def broken_channels(channels, monkeypatch):
    """The same connections, but the mail server refuses connections and the webhook says 500."""
    monkeypatch.setenv("AIRFLOW_CONN_MSADS_ALERTS_EMAIL", _smtp_connection(free_port()))
    channels.webhook_status = 500
    return channels


def _smtp_connection(port: int) -> str:
    return json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"from_email": "msads-alerts@example.com", "to": "oncall@example.com",
                  "disable_ssl": True, "disable_tls": True, "timeout": 5, "retry_limit": 0}})
