"""The HTTP request and response shapes the emulator's handlers share."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    scheme: str  # "http" or "https"
    host: str  # as the client addressed us, e.g. "127.0.0.1:8765"

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body (first value of each field)."""
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    def json(self) -> dict:
        if not self.body.strip():
            return {}
        value = json.loads(self.body)
        if not isinstance(value, dict):
            raise ValueError("the JSON body must be an object")
        return value


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(data, default=str).encode("utf-8"),
                    "application/json; charset=utf-8", headers or {})


def html_response(title: str, inner: str, status: int = 200) -> Response:
    page = ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>body{{font-family:sans-serif;"
            "max-width:40em;margin:3em auto}}label,button{{display:block;margin:.6em 0}}"
            "</style></head>"
            f"<body><h1>{escape(title)}</h1>{inner}"
            "<p><small>Microsoft Advertising emulator (msads-capi)</small></p></body></html>")
    return Response(status, page.encode("utf-8"), "text/html; charset=utf-8")


def redirect(location: str) -> Response:
    return Response(302, b"", "text/html; charset=utf-8", {"Location": location})


def add_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit(parts._replace(query=query))
