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
    ├── FreezeRefused              400 / code 9 "Blocked by hard freeze: ..."; .window_title
    │                              .until .ends_at
    ├── Superseded                 409 / code 10 "... superseded by ..."; .superseded_by
    ├── LockLost                   the lease is gone (410, or code 10 "lease"/"lock lost");
    │                              .service .environment .resource .lock_id
    ├── ServerError                5xx
    └── UnexpectedResponse         a 2xx answer that is not the JSON we expect
```

Every class carries its CLI exit code (``exit_code``, meanings in ``tracker_ci.exit_codes``)
and whether the open fail policy lets a deploy go on untracked through it (``outage``):
``exit_code_for`` and ``is_outage`` read them.

``ERROR_RULES`` maps an error answer to its class: rows of (HTTP status, gRPC code, message
pattern), evaluated in order, the first row whose every given field matches wins. A new
refusal is one row, placed above the broad rows (409, code 6, 400) it must not fall into.
Our bundled server answers with proper statuses. The upstream Go Tracker answers every
handler error as HTTP 500 with gRPC code 2, so rows also read its messages: a held lock is
recognised by "already locked", a missing record by "not found", "no event found" or
"no document", a refused search by "no filter" or "are inversed". Messages name the server
and say what to do next.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from tracker_ci.exit_codes import ExitCode

if TYPE_CHECKING:  # keep ``import tracker_ci.exceptions`` free of httpx and pydantic
    import httpx

    from tracker_ci.models import Lock

__all__ = [
    "ERROR_RULES",
    "APIError",
    "AuthenticationFailed",
    "ConfigError",
    "ErrorRule",
    "FreezeRefused",
    "GrpcCode",
    "InvalidRequest",
    "LockHeld",
    "LockLost",
    "LockWaitTimeout",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ServerError",
    "ServerUnreachable",
    "Superseded",
    "TrackerError",
    "UnexpectedResponse",
    "error_class_for",
    "error_from_response",
    "error_from_transport",
    "exit_code_for",
    "is_lock_conflict",
    "is_outage",
]


class GrpcCode(enum.IntEnum):
    """The gRPC status codes error bodies carry (``{"code": N, ...}``), by their names."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# The names before GrpcCode, kept so that code importing them goes on working.
GRPC_UNKNOWN = GrpcCode.UNKNOWN
GRPC_INVALID_ARGUMENT = GrpcCode.INVALID_ARGUMENT
GRPC_NOT_FOUND = GrpcCode.NOT_FOUND
GRPC_ALREADY_EXISTS = GrpcCode.ALREADY_EXISTS
GRPC_PERMISSION_DENIED = GrpcCode.PERMISSION_DENIED
GRPC_RESOURCE_EXHAUSTED = GrpcCode.RESOURCE_EXHAUSTED
GRPC_UNIMPLEMENTED = GrpcCode.UNIMPLEMENTED
GRPC_UNAVAILABLE = GrpcCode.UNAVAILABLE
GRPC_UNAUTHENTICATED = GrpcCode.UNAUTHENTICATED


class TrackerError(Exception):
    """Base of every error the tracker-ci library raises."""

    #: The CLI's exit code for this error (meanings: ``tracker_ci.exit_codes``).
    exit_code: ClassVar[int] = ExitCode.ERROR
    #: Whether the open fail policy lets a deploy go on untracked through this error: the
    #: server is down or broken, not refusing this deploy.
    outage: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ServerUnreachable(TrackerError):
    """The server could not be reached or dropped the connection (after retries)."""

    exit_code = ExitCode.UNREACHABLE
    outage = True

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class ConfigError(TrackerError):
    """A bad config file or option value, found before anything is sent."""

    exit_code = ExitCode.USAGE


class APIError(TrackerError):
    """The server answered with an error status."""

    #: How ``error_from_response`` explains an answer mapped to this class (a row of
    #: ERROR_RULES may give its own): str.format with origin, where, status and said.
    explanation: ClassVar[str] = "Tracker at {origin} answered {where} with HTTP {status}: {said}"

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

    @classmethod
    def _from_answer(cls, answer: _Answer, explanation: str = "") -> APIError:
        """This error for an answer that a row of ERROR_RULES mapped to it."""
        return cls((explanation or cls.explanation).format(**answer.words()), **answer.fields())


class InvalidRequest(APIError):
    """The server rejected the request as bad input (400, gRPC code 3)."""

    exit_code = ExitCode.USAGE
    explanation = "Tracker at {origin} rejected {where} as invalid ({status}): {said}"


class PayloadTooLarge(InvalidRequest):
    """The request body is larger than the server accepts (413, gRPC code 8)."""

    explanation = (
        "Tracker at {origin} refused {where}: the request is too large ({status}). "
        "Server said: {said}"
    )


class AuthenticationFailed(APIError):
    """No token, or a token the server does not know or has revoked (401)."""

    exit_code = ExitCode.AUTH

    @classmethod
    def _from_answer(cls, answer: _Answer, explanation: str = "") -> APIError:
        if answer.sent_token:
            said = "refused the token ({status}): check TRACKER_TOKEN (or --token): it is "
            said += "unknown or revoked"
        else:
            said = "requires authentication ({status}): this server requires a token: set "
            said += "TRACKER_TOKEN (or --token)"
        return super()._from_answer(answer, "Tracker at {origin} " + said + ". Server said: {said}")


class PermissionDenied(APIError):
    """The token is valid but may not do this (403), e.g. scoped to other services."""

    exit_code = ExitCode.AUTH
    explanation = (
        "Tracker at {origin} denied {where} ({status}): the token may not do this "
        "(scoped to other services, or not an admin token). Server said: {said}"
    )


class NotFound(APIError):
    """The event, lock or token does not exist (404, or upstream's "not found")."""

    exit_code = ExitCode.NOT_FOUND
    explanation = "not found on Tracker at {origin} ({where}): {said}"


class ServerError(APIError):
    """The server failed (5xx) in a way that is not a lock conflict nor a missing record."""

    outage = True
    explanation = "Tracker at {origin} failed on {where} ({status}): {said}"


class UnexpectedResponse(APIError):
    """A success status whose body is not the JSON the contract promises."""

    outage = True


class FreezeRefused(APIError):
    """A hard freeze window covers this deployment: the server refused to open it.

    Our server answers 400 with gRPC code 9 (FAILED_PRECONDITION) and the message
    ``Blocked by hard freeze: "<title>" until <end>``; ``window_title`` and ``ends_at`` are
    read from it when present (``until`` keeps the end as the server wrote it).
    """

    exit_code = ExitCode.FROZEN
    explanation = (
        "Tracker at {origin} refused {where} ({status}): {said}. Nothing was started; "
        "deploy once the freeze window has ended"
    )

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 400,
        code: int | None = GrpcCode.FAILED_PRECONDITION,
        window_title: str = "",
        until: str = "",
        ends_at: datetime | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, **fields)
        self.window_title = window_title
        self.until = until
        self.ends_at = ends_at

    @classmethod
    def _from_answer(cls, answer: _Answer, explanation: str = "") -> APIError:
        error = super()._from_answer(answer, explanation)
        match = re.search(_FREEZE, answer.message)
        if isinstance(error, FreezeRefused) and match:
            error.window_title = match["title"] or (match["bare"] or "").strip()
            error.until = (match["until"] or "").strip().rstrip(".")
            error.ends_at = _parse_time(error.until)
        return error


class Superseded(APIError):
    """A newer deploy waiting for the same lock took this one's place (the ``newest`` policy).

    Our server answers 409 with gRPC code 10 (ABORTED) and a message saying ``superseded by
    <who>``; ``superseded_by`` is that who.
    """

    exit_code = ExitCode.SUPERSEDED
    explanation = (
        "Tracker at {origin} ended the wait of {where} ({status}): {said}. The newer deploy "
        "goes instead; nothing was started"
    )

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 409,
        code: int | None = GrpcCode.ABORTED,
        superseded_by: str = "",
        **fields: Any,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code, **fields)
        self.superseded_by = superseded_by

    @classmethod
    def _from_answer(cls, answer: _Answer, explanation: str = "") -> APIError:
        error = super()._from_answer(answer, explanation)
        match = re.search(_SUPERSEDED, answer.message)
        if isinstance(error, Superseded) and match:
            error.superseded_by = match["who"].strip()
        return error


class LockLost(APIError):
    """The lock this deployment held is gone: its lease expired or someone released it.

    Raised by the lifecycle when renewing the lease finds it gone (the answer is then 404
    or 410), and mapped from an answer 410 Gone or gRPC code 10 (ABORTED) that speaks of
    the lease or of a lost lock. ``status_code`` is 410 when no answer said otherwise.
    """

    exit_code = ExitCode.LOCK_LOST
    explanation = "Tracker at {origin} says the lock is lost ({where}, {status}): {said}"

    def __init__(
        self,
        message: str = "",
        *,
        status_code: int = 410,
        code: int | None = None,
        service: str = "",
        environment: str = "",
        resource: str = "",
        lock_id: str = "",
        **fields: Any,
    ) -> None:
        self.service = service
        self.environment = environment
        self.resource = resource
        self.lock_id = lock_id
        if not message:
            what = _lock_name(service, environment, resource)
            message = f"{what[0].upper()}{what[1:]} was lost"
            message += f" (lock {lock_id})" if lock_id else ""
            message += ": its lease expired or it was released while the deploy ran"
        super().__init__(message, status_code=status_code, code=code, **fields)


class LockHeld(APIError):
    """The deployment lock for (service, environment, resource) is held by someone else."""

    exit_code = ExitCode.LOCKED

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 409,
        code: int | None = GrpcCode.ALREADY_EXISTS,
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

    @classmethod
    def _from_answer(cls, answer: _Answer, explanation: str = "") -> APIError:
        fields: dict[str, Any] = {}
        match = re.search(_LOCK_LOCKED, answer.message) or re.search(_EVENT_LOCKED, answer.message)
        if match:
            fields.update({k: v.strip() for k, v in match.groupdict().items()})
        fields.update(_lock_from_details(answer.details))
        return cls("", **answer.fields(), **fields)  # the message composed from the fields

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


# The patterns below are compiled the first time an answer is matched against them (re
# caches them): most commands never see an error.

# Upstream's two lock-conflict messages (CONTRACT.md), searched anywhere in the message
# because grpc-gateway may prefix it ("rpc error: ...", "cannot create lock: ...").
_EVENT_LOCKED = (
    r"service (?P<service>\S+) is already locked in (?P<environment>\S+?)\.? Please unlock"
)
_LOCK_LOCKED = (
    r"service (?P<service>\S+) is already locked for (?P<resource>\S+) in (?P<environment>\S+)"
    r" by (?P<holder>.*?) \(lock_id: (?P<lock_id>[^,)]*), event_id: (?P<event_id>[^)]*)\)"
)
_ALREADY_LOCKED = r"already locked"
# Upstream's handlers say "no event found in tracker for id ..." (events and locks alike).
_NOT_FOUND = r"(?i)not found|no \w+ found\b|no documents?\b|no rows"
# Upstream's words for a search it refuses (no filter at all, or end before start).
_BAD_SEARCH = r"(?i)no filter for search events|are inversed"
# Our server's refusals of the deploy queue and of freeze windows.
_FREEZE = (
    r'Blocked by hard freeze:\s*(?:"(?P<title>[^"]*)"|(?P<bare>.*?))(?:\s+until\s+(?P<until>.+))?$'
)
_SUPERSEDED = r"superseded by (?P<who>.+?)(?:'s deploy\b.*)?\.?$"
_LEASE_LOST = r"(?i)\blease\b|lock lost"


@dataclass(frozen=True)
class ErrorRule:
    """One row of ERROR_RULES: an answer that matches every given field becomes ``error``.

    ``status`` and ``code`` match when the answer's is among them, ``message`` when the
    pattern is found in the server's message; a field left empty matches anything.
    ``explanation`` replaces the class's own for this row.
    """

    error: type[APIError]
    status: Collection[int] = ()
    code: Collection[int] = ()
    message: str | None = None
    explanation: str = ""

    def matches(self, status_code: int, code: int | None, message: str) -> bool:
        """Whether an answer with this status, gRPC code and message falls under the row."""
        return (
            (not self.status or status_code in self.status)
            and (not self.code or code in self.code)
            and (self.message is None or re.search(self.message, message) is not None)
        )


_NOT_IMPLEMENTED = (
    "Tracker at {origin} does not implement {where} ({status}); an upstream Tracker lacks "
    "some operations of the bundled server. Server said: {said}"
)

#: (HTTP status, gRPC code, message) -> error class, first matching row wins. The rows of a
#: refusal that shares a status or code with a broader one (a freeze's 400, a superseded
#: waiter's 409) come first. An answer no row matches is a plain APIError.
ERROR_RULES: tuple[ErrorRule, ...] = (
    ErrorRule(FreezeRefused, code=[GrpcCode.FAILED_PRECONDITION], message=_FREEZE),
    ErrorRule(Superseded, code=[GrpcCode.ABORTED], message=_SUPERSEDED),
    ErrorRule(LockLost, code=[GrpcCode.ABORTED], message=_LEASE_LOST),
    ErrorRule(LockLost, status=[410]),
    ErrorRule(LockHeld, status=[409]),
    ErrorRule(LockHeld, code=[GrpcCode.ALREADY_EXISTS]),
    ErrorRule(LockHeld, message=_ALREADY_LOCKED),  # upstream: any status (500)
    ErrorRule(AuthenticationFailed, status=[401]),
    ErrorRule(AuthenticationFailed, code=[GrpcCode.UNAUTHENTICATED]),
    ErrorRule(PermissionDenied, status=[403]),
    ErrorRule(PermissionDenied, code=[GrpcCode.PERMISSION_DENIED]),
    ErrorRule(NotFound, status=[404]),
    ErrorRule(NotFound, code=[GrpcCode.NOT_FOUND]),
    ErrorRule(NotFound, status=[500], message=_NOT_FOUND),  # upstream
    ErrorRule(PayloadTooLarge, status=[413]),
    ErrorRule(PayloadTooLarge, code=[GrpcCode.RESOURCE_EXHAUSTED]),
    ErrorRule(InvalidRequest, status=[400, 422]),
    ErrorRule(InvalidRequest, code=[GrpcCode.INVALID_ARGUMENT]),
    ErrorRule(InvalidRequest, status=[500], message=_BAD_SEARCH),  # upstream
    ErrorRule(ServerError, status=[501], explanation=_NOT_IMPLEMENTED),
    ErrorRule(ServerError, code=[GrpcCode.UNIMPLEMENTED], explanation=_NOT_IMPLEMENTED),
    ErrorRule(ServerError, status=range(500, 1000)),
)
_FALLBACK = ErrorRule(APIError)


def _rule_for(status_code: int, code: int | None, message: str) -> ErrorRule:
    return next(
        (rule for rule in ERROR_RULES if rule.matches(status_code, code, message)), _FALLBACK
    )


def error_class_for(status_code: int, code: int | None, message: str) -> type[APIError]:
    """The class ERROR_RULES gives an error answer with this status, gRPC code and message."""
    return _rule_for(status_code, code, message).error


def is_lock_conflict(status_code: int, code: int | None, message: str) -> bool:
    """Whether an error answer means "lock held", from our server or from upstream."""
    return issubclass(error_class_for(status_code, code, message), LockHeld)


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of a TrackerError (1 for anything else)."""
    if isinstance(exc, TrackerError):
        return int(exc.exit_code)
    return int(ExitCode.ERROR)


def is_outage(exc: BaseException) -> bool:
    """Whether the open fail policy tolerates ``exc``: the server is down or broken.

    A refusal (a held lock, a freeze, a bad token or request) is never an outage.
    """
    return isinstance(exc, TrackerError) and exc.outage


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


@dataclass(frozen=True)
class _Answer:
    """What an error answer said, as the rows and the classes read it."""

    status: int
    code: int | None
    message: str
    details: list[Any]
    origin: str
    where: str
    sent_token: bool

    def words(self) -> dict[str, Any]:
        """The fields an explanation may name."""
        return {
            "origin": self.origin,
            "where": self.where,
            "status": self.status,
            "said": self.message or "(no message)",
        }

    def fields(self) -> dict[str, Any]:
        """The APIError keyword arguments of this answer."""
        return {
            "status_code": self.status,
            "code": self.code,
            "details": self.details,
            "server_message": self.message,
            "url": self.origin,
        }


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


def _not_json(response: httpx.Response, answer: _Answer) -> APIError:
    """The error for an answer whose body is not JSON: a proxy's page, an empty body."""
    status = answer.status
    snippet = " ".join(response.text.split())[:200] if response.content else "(empty)"
    hint = (
        "a proxy or load balancer may be answering instead of Tracker"
        if status >= 500
        else "check that TRACKER_URL points at a Tracker server"
    )
    message = (
        f"Tracker at {answer.origin} answered {answer.where} with HTTP {status} and a body "
        f"that is not JSON ({hint}): {snippet}"
    )
    cls = ServerError if status >= 500 else APIError
    return cls(message, **answer.fields())


def error_from_response(response: httpx.Response) -> APIError:
    """The APIError for an error answer of our server or of upstream's Go Tracker."""
    code, message, details, is_json = _read_body(response)
    answer = _Answer(
        status=response.status_code,
        code=code,
        message=message,
        details=details,
        origin=_origin(response),
        where=_where(response),
        sent_token="authorization" in response.request.headers,
    )
    if not is_json:
        return _not_json(response, answer)
    rule = _rule_for(answer.status, code, message)
    return rule.error._from_answer(answer, rule.explanation)


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
