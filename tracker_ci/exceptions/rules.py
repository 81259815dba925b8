"""ERROR_RULES: which TrackerError an error answer of a Tracker server becomes.

The rows are (HTTP status, gRPC code, message pattern), evaluated in order; the first row
whose every given field matches wins. A new refusal is one row, placed above the broad rows
(409, code 6, 400) it must not fall into. Our bundled server answers with proper statuses.
The upstream Go Tracker answers every handler error as HTTP 500 with gRPC code 2, so rows
also read its messages: a held lock is recognised by "already locked", a missing record by
"not found", "no event found" or "no document", a refused search by "no filter" or "are
inversed". Messages name the server and say what to do next.

:func:`error_from_response` reads an answer (any body: a proxy's HTML page too) and applies
the rows; :func:`error_from_transport` explains a request that got no answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracker_ci.exceptions.tree import (
    _FREEZE,
    _SUPERSEDED,
    APIError,
    AuthenticationFailed,
    FreezeRefused,
    GrpcCode,
    InvalidRequest,
    LockHeld,
    LockLost,
    NotATracker,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServerError,
    ServerUnreachable,
    Superseded,
    _Answer,
)

if TYPE_CHECKING:  # keep ``import tracker_ci.exceptions`` free of httpx
    import httpx

__all__ = [
    "ERROR_RULES",
    "ErrorRule",
    "error_class_for",
    "error_from_response",
    "error_from_transport",
    "is_lock_conflict",
]

# The messages the rows recognise (``re`` compiles each on first use; those the classes read
# their fields from, a freeze's and a superseded waiter's, are in the tree).
# Upstream's lock conflicts, whichever of its two messages (LockHeld reads both).
_ALREADY_LOCKED = r"already locked"
# Upstream's handlers say "no event found in tracker for id ..." (events and locks alike).
_NOT_FOUND = r"(?i)not found|no \w+ found\b|no documents?\b|no rows"
# Upstream's words for a search it refuses (no filter at all, or end before start).
_BAD_SEARCH = r"(?i)no filter for search events|are inversed"
# Our server's words for a lease that is gone.
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


def _not_json(response: httpx.Response, answer: _Answer) -> APIError:
    """The error for an answer whose body is not JSON: a proxy's page, an empty body."""
    status = answer.status
    snippet = " ".join(response.text.split())[:80] if response.content else "(empty)"
    hint = (
        "a proxy or load balancer may be answering for a Tracker that is down"
        if status >= 500
        else "another service answers there"
    )
    message = (
        f"{answer.origin} is not answering as a Tracker: {answer.where} got HTTP {status} "
        f"and a body that is not JSON ({hint}: {snippet}). Check TRACKER_URL (or --url): "
        "it must be the Tracker server's address, e.g. http://tracker.internal:8080"
    )
    return NotATracker(message, **answer.fields())


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
