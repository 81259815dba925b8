"""The HTTP protocol the server speaks: uvicorn's h11, answering malformed HTTP with the
one JSON error body instead of uvicorn's plain text (``Content-Length: abc``, a broken
request line). The connection still closes: after bad framing nothing on it can be read.
"""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from tracker_ci.exceptions import GrpcCode
from tracker_server import __version__
from tracker_server.errors import error_body

__all__ = ["JsonErrorH11Protocol"]


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol whose 400 for unparsable HTTP is JSON (code 3)."""

    def send_400_response(self, msg: str) -> None:
        """Answer malformed HTTP with ``{"code": 3, "message", "details": []}``."""
        body = json.dumps(
            error_body(
                GrpcCode.INVALID_ARGUMENT, f"invalid request: malformed HTTP ({msg.rstrip('.')})"
            )
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-tracker-server", f"tracker-ci/{__version__}".encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            output = self.conn.send(event)
            if output:
                self.transport.write(output)
        self.transport.close()
