"""A loopback HTTP proxy that loses answers: the request reaches the real server, which
does the work, and the client's connection is then closed without a byte of the answer
(what a load balancer timeout, a network partition or a killed runner look like)."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Seen:
    """What went through the proxy: every request line, and the answers it dropped."""

    requests: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def _read_request(stream: socket.socket) -> bytes | None:
    """One HTTP/1.1 request (head and Content-Length body), or None at end of stream."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = stream.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = stream.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


def _read_response(stream: socket.socket) -> bytes:
    """The server's whole answer (the proxy asks it to close the connection after it)."""
    chunks = []
    while chunk := stream.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _close_after(request: bytes) -> bytes:
    head, _, body = request.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body


class LossyProxy:
    """Forward to ``upstream``; lose the answer to the first ``times`` requests whose
    ``METHOD /path`` starts with one of ``drop`` (each prefix counted on its own). A request
    that starts with one of ``refuse`` never reaches it: its connection is closed unanswered
    (the server is gone, for those requests)."""

    def __init__(
        self,
        upstream: str,
        drop: tuple[str, ...] = (),
        times: int = 1,
        refuse: tuple[str, ...] = (),
    ) -> None:
        parts = urlsplit(upstream)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.drop = drop
        self.refuse = refuse
        self.times = times
        self.seen = Seen()
        self._dropped: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _should_drop(self, line: str) -> bool:
        with self._lock:
            self.seen.requests.append(line)
            for prefix in self.drop:
                if line.startswith(prefix) and self._dropped[prefix] < self.times:
                    self._dropped[prefix] += 1
                    self.seen.dropped.append(line)
                    return True
        return False

    def handle(self, client: socket.socket) -> None:
        """Serve one client connection, one request at a time."""
        while (request := _read_request(client)) is not None:
            method, path = request.split(b"\r\n", 1)[0].decode().split(" ")[:2]
            if f"{method} {path}".startswith(self.refuse or ("\0",)):
                with self._lock:
                    self.seen.requests.append(f"{method} {path}")
                    self.seen.refused.append(f"{method} {path}")
                return  # never forwarded: the connection closes unanswered
            with socket.create_connection(self.target, timeout=30) as server:
                server.sendall(_close_after(request))
                answer = _read_response(server)
            if self._should_drop(f"{method} {path}"):
                return  # the work is done; the answer is lost
            client.sendall(answer)


@contextmanager
def lossy_proxy(
    upstream: str, drop: tuple[str, ...] = (), times: int = 1, refuse: tuple[str, ...] = ()
) -> Iterator[tuple[str, LossyProxy]]:
    """A running :class:`LossyProxy` on a free loopback port: (its URL, the proxy)."""
    proxy = LossyProxy(upstream, drop, times, refuse)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            proxy.handle(self.request)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", proxy
    finally:
        server.shutdown()
        server.server_close()
