"""Pure ASGI middleware: the server header, the body size limit, camelCase query names,
JSON bodies whatever their Content-Type."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from tracker_server.domain import BodyTooLarge, DomainError, InvalidInput
from tracker_server.errors import domain_error_response

Scope = dict[str, Any]
ASGIApp = Any


class ServerHeader:
    """Adds ``X-Tracker-Server: tracker-ci/<version>`` to every HTTP response."""

    def __init__(self, app: ASGIApp, *, version: str) -> None:
        self.app = app
        self.header = (b"x-tracker-server", f"tracker-ci/{version}".encode())

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


class BodySizeLimit:
    """413 (code 8) for bodies over the limit: by Content-Length, and while streaming
    (a chunked body has no Content-Length to trust)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> BodyTooLarge:
        return BodyTooLarge(
            f"request body too large: at most {self.max_bytes} bytes (--max-body-bytes)"
        )

    def _refuse_declared(self, scope: Scope) -> DomainError | None:
        """The refusal of a Content-Length header, before reading a byte."""
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is None:
            return None
        if not declared.strip().isdigit():
            return InvalidInput("invalid request: bad Content-Length header")
        if int(declared) > self.max_bytes:
            return self._too_large()
        return None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refuse_declared(scope)
        if refusal is not None:
            await domain_error_response(refusal)(scope, receive, send)
            return
        await self._stream(scope, receive, send)

    async def _stream(self, scope: Scope, receive: Any, send: Any) -> None:
        """Count the body while the app reads it; refuse once it passes the limit."""
        received = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as error:
            if started:
                raise
            await domain_error_response(error)(scope, receive, send)


class JsonBodies:
    """Upstream's gateway reads every request body as JSON whatever its Content-Type
    (``curl -d '{...}'`` sends a form type): label such bodies JSON so they are read too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = scope.get("headers", [])
            declared = next((v for k, v in headers if k == b"content-type"), None)
            if declared is not None and b"json" not in declared.lower():
                relabelled = [(k, v) for k, v in headers if k != b"content-type"]
                relabelled.append((b"content-type", b"application/json"))
                scope = {**scope, "headers": relabelled}
        await self.app(scope, receive, send)


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


class SnakeCaseQuery:
    """Upstream accepts ``startDate`` as well as ``start_date``: rename camelCase keys."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        query: bytes = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if query and any(65 <= byte <= 90 for byte in query):
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            renamed = [
                (_CAMEL.sub("_", key).lower() if _has_upper(key) else key, value)
                for key, value in pairs
            ]
            scope = {**scope, "query_string": urlencode(renamed).encode("latin-1")}
        await self.app(scope, receive, send)


def _has_upper(text: str) -> bool:
    return any(c.isupper() for c in text)
