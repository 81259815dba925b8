"""Pure ASGI middleware: the server header, the security headers, cross-site writes
refused, the body size limit, camelCase query names, JSON bodies whatever their
Content-Type."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tracker_server.domain import BodyTooLarge, DomainError, Forbidden, InvalidInput
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


#: The pages' Content-Security-Policy: our own scripts, styles and images only, no inline
#: script, no framing, forms post only to us.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
#: FastAPI's API documentation pages load Swagger UI and ReDoc from a CDN with an inline
#: script: they get every header but the CSP (they show no stored data).
_DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    """Adds the browser security headers to every HTTP answer (pages and JSON alike):
    CSP, ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
    ``Referrer-Policy: same-origin``."""

    def __init__(self, app: ASGIApp, *, root_path: str = "") -> None:
        self.app = app
        self.root_path = root_path.rstrip("/")
        self.headers = [
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]
        self.csp = (b"content-security-policy", CONTENT_SECURITY_POLICY.encode())

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if self.root_path and path.startswith(self.root_path):
            path = path[len(self.root_path) :]
        added = list(self.headers)
        if not path.startswith(_DOCS_PATHS):
            added.append(self.csp)

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in added if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


#: Methods that change something: a browser sends them cross-site only through forms.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class CrossSiteWrites:
    """403 (code 7) for a write a browser sends from another site, auth on or off.

    Refused: an unsafe method whose ``Sec-Fetch-Site`` is ``cross-site`` or ``same-site``,
    or whose ``Origin`` (scheme, host and port) is not this server's own, as the request
    names it: the ASGI scheme (uvicorn sets it from ``X-Forwarded-Proto`` only for the
    proxies ``--forwarded-allow-ips`` trusts) and the ``Host`` header. A request with
    neither header (curl, the CLI, httpx) is not a browser's and passes: the token rules
    decide. A reverse proxy must keep the ``Host`` header and say the scheme.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method", "GET") in UNSAFE_METHODS:
            refusal = cross_site_refusal(scope)
            if refusal is not None:
                await domain_error_response(Forbidden(refusal))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def cross_site_refusal(scope: Scope) -> str | None:
    """Why this write comes from another site; None when it does not."""
    headers = {k.lower(): v for k, v in scope.get("headers", [])}
    fetch_site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
    if fetch_site in ("cross-site", "same-site"):
        return (
            f"cross-site request refused: a page of another site (Sec-Fetch-Site: "
            f"{fetch_site}) may not write here"
        )
    origin = headers.get(b"origin")
    if origin is None:
        return None
    sent = origin.decode("latin-1").strip()
    own = _own_origin(scope, headers.get(b"host", b"").decode("latin-1"))
    if _normal_origin(sent) != own:
        return f"cross-site request refused: Origin {sent} is not this server ({own or 'unknown'})"
    return None


def _own_origin(scope: Scope, host: str) -> str:
    scheme = str(scope.get("scheme", "http")).lower()
    return _normal_origin(f"{scheme}://{host.strip()}") if host.strip() else ""


def _normal_origin(value: str) -> str:
    """``scheme://host:port`` with the default port written out; "" when not an origin."""
    try:
        parts = urlsplit(value)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return ""
    if not parts.scheme or not parts.hostname or port is None:
        return ""
    return f"{parts.scheme.lower()}://{parts.hostname.lower()}:{port}"


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
