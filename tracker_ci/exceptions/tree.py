"""The TrackerError tree: one class per way a request can fail, each with its exit code.

The tree is drawn in ``tracker_ci.exceptions``' docstring, the package that re-exports every
name here; ``tracker_ci.exceptions.rules`` maps a server's error answer to one of these
classes. ``GrpcCode`` names the codes of the wire's error body ``{"code", "message",
"details"}``: the bundled server answers with the same codes.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from tracker_ci.exit_codes import ExitCode

if TYPE_CHECKING:  # keep ``import tracker_ci.exceptions`` free of httpx and pydantic
    from tracker_ci.models import Lock

__all__ = [
    "APIError",
    "AuthenticationFailed",
    "ConfigError",
    "FreezeRefused",
    "GrpcCode",
    "InvalidRequest",
    "LockHeld",
    "LockLost",
    "LockWaitTimeout",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "NotATracker",
    "NotApproved",
    "ServerError",
    "ServerUnreachable",
    "Superseded",
    "TrackerError",
    "UnexpectedResponse",
    "exit_code_for",
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


class NotApproved(TrackerError):
    """A deployment that required an approval was rejected, or not approved before
    ``--approval-timeout`` ran out: its command never ran. Raised by the lifecycle."""

    exit_code = ExitCode.NOT_APPROVED

    def __init__(self, message: str, *, event_id: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.event_id = event_id
        self.reason = reason


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


class NotATracker(ServerError):
    """An error answer that is not a Tracker's JSON error body: TRACKER_URL names another
    service, or a proxy answers for a server behind it that is down. Exit 4, as for a server
    that cannot be reached: either way no Tracker checked the lock."""

    exit_code = ExitCode.UNREACHABLE


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


# The messages the classes read their fields from (``re`` compiles each the first time
# an answer is matched against it: most commands never see an error).

# Upstream's two lock-conflict messages (CONTRACT.md), searched anywhere in the message
# because grpc-gateway may prefix it ("rpc error: ...", "cannot create lock: ...").
_EVENT_LOCKED = (
    r"service (?P<service>\S+) is already locked in (?P<environment>\S+?)\.? Please unlock"
)
_LOCK_LOCKED = (
    r"service (?P<service>\S+) is already locked for (?P<resource>\S+) in (?P<environment>\S+)"
    r" by (?P<holder>.*?) \(lock_id: (?P<lock_id>[^,)]*), event_id: (?P<event_id>[^)]*)\)"
)
# Our server's refusals of the deploy queue and of freeze windows.
_FREEZE = (
    r'Blocked by hard freeze:\s*(?:"(?P<title>[^"]*)"|(?P<bare>.*?))(?:\s+until\s+(?P<until>.+))?$'
)
_SUPERSEDED = r"superseded by (?P<who>.+?)(?:'s deploy\b.*)?\.?$"


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
