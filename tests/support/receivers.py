"""Loopback HTTP receivers for webhook tests: record every request, answer as scripted.

A real ``ThreadingHTTPServer`` on 127.0.0.1 (no stub of the sender): tests assert the
exact requests the server's dispatcher sent, and wait on conditions, never on sleeps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


#: (request) -> (status, JSON-able body or None[, extra response headers])
Responder = Callable[[Received], tuple[Any, ...]]


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    responder: Responder = lambda _request: (200, {"ok": True})  # noqa: E731
    condition: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until ``count`` requests arrived (or fail after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.requests)} of {count} requests arrived")
                self.condition.wait(left)
            return list(self.requests)


@contextmanager
def run_receiver(responder: Responder | None = None) -> Iterator[Receiver]:
    """A receiver on a free loopback port, stopped afterwards."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Received(
                method=self.command,
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            with receiver.condition:
                receiver.requests.append(request)
                receiver.condition.notify_all()
            status, body, *extra = receiver.responder(request)
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in (extra[0] if extra else {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    if responder is not None:
        receiver.responder = responder
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
