"""Upstream's built web UI served against our server from one origin, as upstream deploys it
(``../shared/upstream-tracker/README.md``): its static files (any path that is not a file
answers ``index.html``) and ``/api/v1alpha1/...`` passed to our server with the browser's
own ``Host``, so our cross-site-write check sees one origin. ``/config.js``, ``/api/links``
and ``/api/homer-links`` belong to upstream's web host, not to the Tracker API: absent."""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[3] / "shared" / "upstream-tracker" / "web-dist"
API = "/api/v1alpha1/"
#: Headers a proxy does not pass on (hop by hop, or recomputed).
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


def _handler(root: Path, backend: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # quiet: the test records what it needs

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in _HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _proxy(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            with httpx.Client(base_url=backend, timeout=30) as client:
                answer = client.request(self.command, self.path, content=body, headers=headers)
            self._answer(answer.status_code, answer.content, dict(answer.headers))

        def _static(self) -> None:
            path = urlsplit(self.path).path
            if path == "/config.js" or path.startswith("/api/"):
                self._answer(404, b"not found", {"Content-Type": "text/plain"})
                return
            target = (root / path.lstrip("/")).resolve()
            if not target.is_file() or root.resolve() not in target.parents:
                target = root / "index.html"
            kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            self._answer(200, target.read_bytes(), {"Content-Type": kind})

        def _route(self) -> None:
            if self.path.startswith(API):
                self._proxy()
            else:
                self._static()

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _route

    return Handler


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a browser leaving a page drops its requests: not the test's concern


@contextmanager
def serve_upstream_ui(backend: str, root: Path = ROOT) -> Iterator[str]:
    """The UI's origin (``http://127.0.0.1:PORT``) for as long as the block runs."""
    httpd = _Quiet(("127.0.0.1", 0), _handler(root, backend))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
