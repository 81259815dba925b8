"""A canned GitHub/GitLab REST API on loopback, for PyGithub and python-gitlab.

Both libraries talk through ``requests``, which respx (an httpx mock) cannot see, and the
``responses`` library is not installed here; so the tests point them at a tiny real HTTP
server that answers from a table of routes and records every request it received.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeAPI:
    """Routes ``(METHOD, path)`` -> ``(status, json body)``; ``requests`` lists what came."""

    url: str
    routes: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def route(self, method: str, path: str, body: Any, status: int = 200) -> None:
        self.routes[(method.upper(), path)] = (status, body)

    def calls(self, method: str | None = None) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests if method in (None, r.method)]


def _handler(api: FakeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            api.requests.append(
                Recorded(self.command, parts.path, parts.query, dict(self.headers.items()), body)
            )
            status, answer = api.routes.get(
                (self.command, parts.path), (404, {"message": "Not Found"})
            )
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

    return Handler


@pytest.fixture
def fake_api() -> Iterator[FakeAPI]:
    """A canned REST API on a free loopback port, stopped after the test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(FakeAPI(url="")))
    api = FakeAPI(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
