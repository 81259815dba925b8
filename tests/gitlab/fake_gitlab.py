"""A stand-in for the few GitLab API routes of a merge request's notes (GitLab is not ours
and cannot run here): it keeps the notes in memory and records every request."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NOTES_PATH = re.compile(
    r"^/api/v4/projects/(?P<project>[^/]+)/merge_requests/(?P<iid>\d+)/notes(?:/(?P<id>\d+))?"
)


@dataclass
class FakeGitLab:
    """Notes per (project, merge request iid), and the requests seen."""

    url: str = ""
    notes: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, token


def _handler(state: FakeGitLab) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            state.requests.append((method, self.path, self.headers.get("PRIVATE-TOKEN", "")))
            match = NOTES_PATH.match(self.path)
            if not match:
                self._answer(404, {"message": "404 Not Found"})
                return
            notes = state.notes.setdefault((match["project"], match["iid"]), [])
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"{}") if length else {}
            if method == "GET" and match["id"] is None:
                self._answer(200, notes)
            elif method == "POST" and match["id"] is None:
                note = {"id": len(notes) + 1, "body": payload.get("body", "")}
                notes.append(note)
                self._answer(201, note)
            elif method == "PUT" and match["id"] is not None:
                note = next(n for n in notes if n["id"] == int(match["id"]))
                note["body"] = payload.get("body", note["body"])
                self._answer(200, note)
            else:
                self._answer(405, {"message": "405 Method Not Allowed"})

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._route("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._route("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._route("PUT")

    return Handler


@contextmanager
def fake_gitlab() -> Iterator[FakeGitLab]:
    """Serve a FakeGitLab on a free loopback port for the duration of the block."""
    state = FakeGitLab()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
