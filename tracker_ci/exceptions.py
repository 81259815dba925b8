"""Errors raised by the tracker-ci client, one tree for both kinds of Tracker server.

```
TrackerError                       base; .message
├── ServerUnreachable              connection refused, DNS, timeout, dropped connection
├── ConfigError                    a bad config file or option value
└── APIError                       .status_code, .code (gRPC), .message, .details
    ├── InvalidRequest             400 / code 3
    │   └── PayloadTooLarge        413 / code 8
    ├── AuthenticationFailed       401 / code 16
    ├── PermissionDenied           403 / code 7
    ├── NotFound                   404 / code 5, or upstream's 500 "not found" / "no event found"
    ├── LockHeld                   409 / code 6, or upstream's 500 "already locked";
    │   │                          .service .environment .resource .holder .lock_id .event_id
    │   └── LockWaitTimeout        the lock was still held when ``--wait`` ran out; .waited
    ├── ServerError                5xx
    └── UnexpectedResponse         a 2xx answer that is not the JSON we expect
```

Our bundled server answers with proper statuses. The upstream Go Tracker answers every
handler error as HTTP 500 with gRPC code 2, so ``error_from_response`` also reads its
messages: a held lock is recognised by "already locked", a missing record by "not found",
"no event found" or "no document", a refused search by "no filter" or "are inversed".
Messages name the server and say what to do next.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # keep ``import tracker_ci.exceptions`` free of httpx and pydantic
    import httpx

    from tracker_ci.models import Lock

__all__ = [
    "APIError",
    "AuthenticationFailed",
    "ConfigError",
    "InvalidRequest",
    "LockHeld",
    "LockWaitTimeout",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ServerError",
    "ServerUnreachable",
    "TrackerError",
    "UnexpectedResponse",
    "error_from_response",
    "error_from_transport",
    "is_lock_conflict",
]

# gRPC status codes that appear in error bodies.
GRPC_UNKNOWN = 2
GRPC_INVALID_ARGUMENT = 3
GRPC_NOT_FOUND = 5
GRPC_ALREADY_EXISTS = 6
GRPC_PERMISSION_DENIED = 7
GRPC_RESOURCE_EXHAUSTED = 8
GRPC_UNIMPLEMENTED = 12
GRPC_UNAVAILABLE = 14
GRPC_UNAUTHENTICATED = 16


class TrackerError(Exception):
    """Base of every error the tracker-ci library raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ServerUnreachable(TrackerError):
    """The server could not be reached or dropped the connection (after retries)."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class ConfigError(TrackerError):
    """A bad config file or option value, found before anything is sent."""


class APIError(TrackerError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: int | None = None,
        details: list[Any] | None = None,
        server_message: str = "",
        url: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.details = details or []
        #: The message exactly as the server wrote it (``message`` is the explained one).
        self.server_message = server_message
        self.url = url


class InvalidRequest(APIError):
    """The server rejected the request as bad input (400, gRPC code 3)."""


class PayloadTooLarge(InvalidRequest):
    """The request body is larger than the server accepts (413, gRPC code 8)."""


class AuthenticationFailed(APIError):
    """No token, or a token the server does not know or has revoked (401)."""


class PermissionDenied(APIError):
    """The token is valid but may not do this (403), e.g. scoped to other services."""


class NotFound(APIError):
    """The event, lock or token does not exist (404, or upstream's "not found")."""


class ServerError(APIError):
    """The server failed (5xx) in a way that is not a lock conflict nor a missing record."""


class UnexpectedResponse(APIError):
    """A success status whose body is not the JSON the contract promises."""


class LockHeld(APIError):
    """The deployment lock for (service, environment, resource) is held by someone else."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 409,
        code: int | None = GRPC_ALREADY_EXISTS,
        details: list[Any] | None = None,
        server_message: str = "",
        url: str = "",
        service: str = "",
        environment: str = "",
        resource: str = "",
        holder: str = "",
        lock_id: str = "",
        event_id: str = "",
        since: datetime | None = None,
        lock: Lock | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            code=code,
            details=details,
            server_message=server_message,
            url=url,
        )
        self.service = service
        self.environment = environment
        self.resource = resource
        self.holder = holder
        self.lock_id = lock_id
        self.event_id = event_id
        #: When the holder took the lock (known when the lock itself was read).
        self.since = since
        #: The holder's lock record, when it was looked up.
        self.lock = lock
        if not message:
            self.message = self._compose_message()
            self.args = (self.message,)

    def with_lock(self, lock: Lock) -> LockHeld:
        """A copy of this error completed with the holder's lock record."""
        fields = {**self._fields(), **_fields_from_lock(lock)}
        fields["message"] = ""  # composed again from the completed fields
        return type(self)(**fields)

    def _compose_message(self) -> str:
        what = _lock_name(self.service, self.environment, self.resource)
        return f"{what[0].upper()}{what[1:]} is {self.describe_holder()}"

    def _fields(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "status_code": self.status_code,
            "code": self.code,
            "details": self.details,
            "server_message": self.server_message,
            "url": self.url,
            "service": self.service,
            "environment": self.environment,
            "resource": self.resource,
            "holder": self.holder,
            "lock_id": self.lock_id,
            "event_id": self.event_id,
            "since": self.since,
            "lock": self.lock,
        }

    def describe_holder(self) -> str:
        """``held by W since T (lock L, event E)``, with whatever parts are known."""
        text = f"held by {self.holder}" if self.holder else "held by another deployment"
        if self.since is not None:
            text += f" since {self.since.strftime('%Y-%m-%d %H:%M:%SZ')}"
        ids = []
        if self.lock_id:
            ids.append(f"lock {self.lock_id}")
        if self.event_id:
            ids.append(f"event {self.event_id}")
        if ids:
            text += f" ({', '.join(ids)})"
        return text


class LockWaitTimeout(LockHeld):
    """The lock was still held when the time allowed for waiting ran out."""

    def __init__(self, message: str = "", *, waited: float = 0.0, **fields: Any) -> None:
        self.waited = waited  # before the base class composes the message
        super().__init__(message, **fields)

    def _fields(self) -> dict[str, Any]:
        return {**super()._fields(), "waited": self.waited}

    def _compose_message(self) -> str:
        what = _lock_name(self.service, self.environment, self.resource)
        return (
            f"gave up after waiting {self.waited:.0f}s for {what}: still "
            f"{self.describe_holder()}. Wait longer (--wait SECONDS) or release the lock "
            "if its deployment is dead."
        )

    @classmethod
    def from_held(cls, held: LockHeld, waited: float) -> LockWaitTimeout:
        """The timeout for ``held``, with a message naming the holder and the time waited."""
        fields = held._fields()
        fields["message"] = ""  # composed with the time waited
        return cls(waited=waited, **fields)


def _fields_from_lock(lock: Lock) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "service": lock.service,
        "environment": lock.environment,
        "resource": lock.resource,
        "holder": lock.who,
        "lock_id": lock.id,
        "event_id": lock.event_id,
        "since": lock.created_at,
        "lock": lock,
    }
    return {name: value for name, value in fields.items() if value not in ("", None)}


def _lock_name(service: str, environment: str, resource: str) -> str:
    text = f"the {resource or 'deployment'} lock"
    if service:
        text += f" of {service}"
    if environment:
        text += f" in {environment}"
    return text


# Upstream's two lock-conflict messages (CONTRACT.md), searched anywhere in the message
# because grpc-gateway may prefix it ("rpc error: ...", "cannot create lock: ...").
_EVENT_LOCKED = re.compile(
    r"service (?P<service>\S+) is already locked in (?P<environment>\S+?)\.? Please unlock"
)
_LOCK_LOCKED = re.compile(
    r"service (?P<service>\S+) is already locked for (?P<resource>\S+) in (?P<environment>\S+)"
    r" by (?P<holder>.*?) \(lock_id: (?P<lock_id>[^,)]*), event_id: (?P<event_id>[^)]*)\)"
)
# Upstream's handlers say "no event found in tracker for id ..." (events and locks alike).
_NOT_FOUND = re.compile(r"not found|no \w+ found\b|no documents?\b|no rows", re.IGNORECASE)
# Upstream's words for a search it refuses (no filter at all, or end before start).
_BAD_SEARCH = re.compile(r"no filter for search events|are inversed", re.IGNORECASE)


def _origin(response: httpx.Response) -> str:
    url = response.request.url
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def _where(response: httpx.Response) -> str:
    request = response.request
    return f"{request.method} {request.url.path}"


def _read_body(response: httpx.Response) -> tuple[int | None, str, list[Any], bool]:
    """(code, message, details, is_json) of an error body; tolerant of anything."""
    try:
        body = json.loads(response.content or b"")
    except (ValueError, UnicodeDecodeError):
        return None, "", [], False
    if not isinstance(body, dict):
        return None, "", [], False
    code = body.get("code")
    message = body.get("message") or body.get("error") or ""
    details = body.get("details") or []
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        str(message),
        details if isinstance(details, list) else [details],
        True,
    )


def _lock_from_details(details: list[Any]) -> dict[str, Any]:
    """Our server may put the holder's lock in the details; take what is there."""
    for item in details:
        if not isinstance(item, dict):
            continue
        nested = item.get("lock")
        record: dict[str, Any] = nested if isinstance(nested, dict) else item
        if "who" in record or "lockId" in record or "eventId" in record:
            from tracker_ci.models import Lock  # lazy: pydantic only when needed

            try:
                lock = Lock.model_validate(
                    {**record, "id": record.get("id") or record.get("lockId", "")}
                )
            except ValueError:
                continue
            return _fields_from_lock(lock)
    return {}


def _lock_held(
    response: httpx.Response, code: int | None, message: str, details: list[Any]
) -> LockHeld:
    fields: dict[str, Any] = {}
    match = _LOCK_LOCKED.search(message) or _EVENT_LOCKED.search(message)
    if match:
        fields.update({k: v.strip() for k, v in match.groupdict().items()})
    fields.update(_lock_from_details(details))
    return LockHeld(
        "",  # composed from the parsed fields
        status_code=response.status_code,
        code=code,
        details=details,
        server_message=message,
        url=_origin(response),
        **fields,
    )


def is_lock_conflict(status_code: int, code: int | None, message: str) -> bool:
    """Whether an error answer means "lock held", from our server or from upstream."""
    if status_code == 409 or code == GRPC_ALREADY_EXISTS:
        return True
    return "already locked" in message


def error_from_response(response: httpx.Response) -> APIError:
    """The APIError for an error answer of our server or of upstream's Go Tracker."""
    status = response.status_code
    origin = _origin(response)
    where = _where(response)
    code, server_message, details, is_json = _read_body(response)
    common: dict[str, Any] = {
        "status_code": status,
        "code": code,
        "details": details,
        "server_message": server_message,
        "url": origin,
    }
    if not is_json:
        snippet = " ".join(response.text.split())[:200] if response.content else "(empty)"
        hint = (
            "a proxy or load balancer may be answering instead of Tracker"
            if status >= 500
            else "check that TRACKER_URL points at a Tracker server"
        )
        message = (
            f"Tracker at {origin} answered {where} with HTTP {status} and a body that is "
            f"not JSON ({hint}): {snippet}"
        )
        if status >= 500:
            return ServerError(message, **common)
        return APIError(message, **common)

    said = server_message or "(no message)"
    if is_lock_conflict(status, code, server_message):
        return _lock_held(response, code, server_message, details)
    if status == 401 or code == GRPC_UNAUTHENTICATED:
        sent_token = "authorization" in response.request.headers
        advice = (
            "check TRACKER_TOKEN (or --token): it is unknown or revoked"
            if sent_token
            else "this server requires a token: set TRACKER_TOKEN (or --token)"
        )
        verb = "refused the token" if sent_token else "requires authentication"
        return AuthenticationFailed(
            f"Tracker at {origin} {verb} ({status}): {advice}. Server said: {said}", **common
        )
    if status == 403 or code == GRPC_PERMISSION_DENIED:
        return PermissionDenied(
            f"Tracker at {origin} denied {where} ({status}): the token may not do this "
            f"(scoped to other services, or not an admin token). Server said: {said}",
            **common,
        )
    if status == 404 or code == GRPC_NOT_FOUND or (status == 500 and _NOT_FOUND.search(said)):
        return NotFound(f"not found on Tracker at {origin} ({where}): {said}", **common)
    if status == 413 or code == GRPC_RESOURCE_EXHAUSTED:
        return PayloadTooLarge(
            f"Tracker at {origin} refused {where}: the request is too large ({status}). "
            f"Server said: {said}",
            **common,
        )
    if (
        status in (400, 422)
        or code == GRPC_INVALID_ARGUMENT
        or (status == 500 and _BAD_SEARCH.search(said))
    ):
        return InvalidRequest(
            f"Tracker at {origin} rejected {where} as invalid ({status}): {said}", **common
        )
    if status == 501 or code == GRPC_UNIMPLEMENTED:
        return ServerError(
            f"Tracker at {origin} does not implement {where} ({status}); an upstream "
            f"Tracker lacks some operations of the bundled server. Server said: {said}",
            **common,
        )
    if status >= 500:
        return ServerError(f"Tracker at {origin} failed on {where} ({status}): {said}", **common)
    return APIError(f"Tracker at {origin} answered {where} with HTTP {status}: {said}", **common)


def error_from_transport(
    exc: Exception, *, method: str, url: str, timeout: float, attempts: int = 1
) -> ServerUnreachable:
    """A ServerUnreachable for an httpx transport error, saying what most likely went wrong."""
    import httpx  # already imported by whoever made the request

    where = f"{method} {httpx.URL(url).path}"
    origin = httpx.URL(url).copy_with(path="/", query=None, fragment=None)
    base = str(origin).rstrip("/")
    if isinstance(exc, httpx.ConnectTimeout):
        text = f"cannot connect to Tracker at {base}: no answer within {timeout:g}s"
    elif isinstance(exc, httpx.TimeoutException):
        text = f"Tracker at {base} did not answer {where} within {timeout:g}s"
    elif isinstance(exc, httpx.ConnectError):
        text = f"cannot connect to Tracker at {base}: {exc or 'connection failed'}"
    elif isinstance(exc, httpx.RemoteProtocolError):
        text = (
            f"Tracker at {base} dropped the connection during {where} without answering "
            f"(an upstream Tracker does this when its handler crashes): {exc}"
        )
    else:
        text = f"Tracker at {base} could not be reached for {where}: {exc or type(exc).__name__}"
    if attempts > 1:
        text += f" ({attempts} attempts)"
    return ServerUnreachable(
        f"{text}. Check TRACKER_URL (or --url) and that the server is running.", url=base
    )
