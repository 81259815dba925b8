"""The one boundary where failures become answers: ``ERROR_STATUSES`` maps each domain
error (``domain.py``) to its HTTP status and gRPC code, :func:`error_body` builds the one
error body ``{"code", "message", "details": []}``, and :func:`install_error_handlers` makes
every failure (refusals, bad input FastAPI finds, unknown routes, a database that is down,
bugs) answer through them. Middleware answers through :func:`domain_error_response` too.

The gRPC codes are the client's ``GrpcCode`` (one vocabulary for both ends of the wire),
as upstream's gateway uses them: 3 invalid argument, 5 not found, 6 already exists (a held
lock), 7 permission denied, 8 resource exhausted (body too large), 9 failed precondition (a
hard freeze), 10 aborted (a superseded waiter), 12 unimplemented (method not allowed),
13 internal, 14 unavailable, 16 unauthenticated.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from tracker_ci.exceptions import GrpcCode
from tracker_ci.models import NO_SUCH_ROUTE, ErrorBody
from tracker_server.domain import (
    BodyTooLarge,
    DatabaseUnavailable,
    DomainError,
    Forbidden,
    FreezeBlocked,
    InternalError,
    InvalidInput,
    LockConflict,
    NotFound,
    QueueSuperseded,
    Unauthenticated,
)

logger = logging.getLogger("tracker_server.errors")

#: THE translation of a refusal: domain error class -> (HTTP status, gRPC code). A
#: subclass answers as its nearest ancestor listed here (EventNotFound as NotFound). A new
#: refusal is one row, e.g. ``Frozen: (400, 9)`` (GrpcCode.FAILED_PRECONDITION).
ERROR_STATUSES: dict[type[DomainError], tuple[int, int]] = {
    InvalidInput: (400, GrpcCode.INVALID_ARGUMENT),
    Unauthenticated: (401, GrpcCode.UNAUTHENTICATED),
    Forbidden: (403, GrpcCode.PERMISSION_DENIED),
    NotFound: (404, GrpcCode.NOT_FOUND),
    LockConflict: (409, GrpcCode.ALREADY_EXISTS),
    FreezeBlocked: (400, GrpcCode.FAILED_PRECONDITION),
    QueueSuperseded: (409, GrpcCode.ABORTED),
    BodyTooLarge: (413, GrpcCode.RESOURCE_EXHAUSTED),
    InternalError: (500, GrpcCode.INTERNAL),
    DatabaseUnavailable: (503, GrpcCode.UNAVAILABLE),
}

# Statuses of routing errors raised by Starlette itself (no domain error behind them).
_HTTP_STATUS_CODES = {
    400: GrpcCode.INVALID_ARGUMENT,
    401: GrpcCode.UNAUTHENTICATED,
    403: GrpcCode.PERMISSION_DENIED,
    404: GrpcCode.NOT_FOUND,
    405: GrpcCode.UNIMPLEMENTED,
    409: GrpcCode.ALREADY_EXISTS,
    413: GrpcCode.RESOURCE_EXHAUSTED,
    503: GrpcCode.UNAVAILABLE,
}


def error_body(code: int, message: str) -> dict[str, Any]:
    """THE error body of every failure: ``{"code", "message", "details": []}``."""
    return ErrorBody(code=code, message=message, details=[]).to_wire()


def error_response(
    status_code: int, code: int, message: str, *, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response carrying :func:`error_body` (compact, UTF-8)."""
    body = json.dumps(error_body(code, message), ensure_ascii=False, separators=(",", ":"))
    return Response(
        body, status_code=status_code, media_type="application/json", headers=dict(headers or {})
    )


def status_of(error: DomainError) -> tuple[int, int]:
    """(HTTP status, gRPC code) of a domain error, from :data:`ERROR_STATUSES`."""
    for cls in type(error).__mro__:
        if cls in ERROR_STATUSES:
            return ERROR_STATUSES[cls]
    return 500, GrpcCode.INTERNAL


#: Seconds a client should wait before repeating a request answered 503.
RETRY_AFTER_SECONDS = 1


def domain_error_response(error: DomainError) -> Response:
    """The answer to a domain error: its status and code from the table, its message.
    A 503 says when to come back (``Retry-After``); a 500 closes the connection, so a
    client never reuses a connection the server may be tearing down."""
    status_code, code = status_of(error)
    headers: dict[str, str] = {}
    if status_code == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    elif status_code >= 500:
        headers["Connection"] = "close"
    return error_response(status_code, code, error.message, headers=headers)


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One message naming each bad field and what to send instead."""
    parts = [_describe_one(error) for error in errors[:5]]
    more = len(errors) - 5
    if more > 0:
        parts.append(f"and {more} more problem(s)")
    return "invalid request: " + "; ".join(parts)


def _describe_one(error: Any) -> str:
    location = [str(p) for p in error.get("loc", ())]
    kind = error.get("type", "")
    if kind == "json_invalid":
        reason = error.get("ctx", {}).get("error", "invalid JSON")
        return f"the request body is not valid JSON ({reason})"
    where = location[0] if location else ""
    path = ".".join(location[1:])
    if where == "body" and not path:
        subject = "the request body"
    elif where == "body":
        subject = path
    elif where in ("query", "path", "header"):
        subject = f"{where} parameter {path}"
    else:
        subject = ".".join(location) or "the request"
    return f"{subject}: {_explain(kind, error)}"


def _explain(kind: str, error: Any) -> str:
    message = str(error.get("msg", "is invalid"))
    if kind == "missing":
        return "is required"
    if kind == "uuid_parsing" or kind == "uuid_type":
        return "must be a UUID (e.g. 3f2b8a4e-1c9d-4b7a-9e2f-5d6c7b8a9e0f)"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        if isinstance(error.get("input"), (bytes, str)):
            return "must be a JSON object (send it with Content-Type: application/json)"
        return "must be a JSON object"
    message = message.removeprefix("Value error, ")
    return message[0].lower() + message[1:] if message else "is invalid"


def database_error(exc: sa_exc.SQLAlchemyError) -> DomainError:
    """Decide what a database failure means for the client."""
    original = getattr(exc, "orig", None)
    if isinstance(exc, sa_exc.DataError) or isinstance(original, ValueError):
        # Values the database refuses (e.g. NUL characters in PostgreSQL text).
        return InvalidInput(f"invalid request: the database rejected a value ({original})")
    unavailable = isinstance(
        exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
    ) or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)
    if unavailable:
        # The driver's words name the database's host, port and name: the log keeps them,
        # the answer does not.
        logger.warning("database unavailable: %s", _first_line(original or exc))
        return DatabaseUnavailable(_unavailable_message(original or exc))
    return InternalError(f"internal database error: {_first_line(original or exc)}")


#: Driver words that locate the database (host, port, socket, database or user name).
_LOCATING = re.compile(r"connection to server|host|port|socket|database \"|user \"|@", re.I)


def _unavailable_message(error: object) -> str:
    said = _first_line(error)
    if _LOCATING.search(said):
        said = "the database does not answer"
    return f"database unavailable: {said}; retry shortly"


def _first_line(value: object) -> str:
    return str(value).strip().splitlines()[0] if str(value).strip() else type(value).__name__


# ------------------------------------------------------------------- handlers
async def _on_domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return domain_error_response(exc)


async def _on_validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return domain_error_response(InvalidInput(describe_validation_errors(exc.errors())))


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, DomainError):
        # FastAPI wraps any failure while reading the body (our streamed size limit
        # included) in a generic 400: answer the real cause.
        return domain_error_response(exc.__cause__)
    if exc.status_code == 404:
        message = f"{NO_SUCH_ROUTE}: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    code = _HTTP_STATUS_CODES.get(exc.status_code, GrpcCode.INTERNAL)
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _on_database_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, sa_exc.SQLAlchemyError)
    error = database_error(exc)
    if status_of(error)[0] == 500:
        logger.warning("%s", error.message)
    return domain_error_response(error)


async def _on_unexpected(_request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error", exc_info=exc)
    # This answer is sent from outside our middleware: add the server header here.
    from tracker_server import __version__

    return error_response(
        500,
        GrpcCode.INTERNAL,
        f"internal error: {exc.__class__.__name__}",
        headers={"X-Tracker-Server": f"tracker-ci/{__version__}", "Connection": "close"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the one error body; nothing escapes as a bare 500."""
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(sa_exc.SQLAlchemyError, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)


# ------------------------------------------------------------- OpenAPI documents
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad input (code 3): the message says what to fix"},
    401: {"model": ErrorBody, "description": "No valid token (code 16), with auth on"},
    403: {"model": ErrorBody, "description": "The token may not do this (code 7)"},
    413: {"model": ErrorBody, "description": "Body larger than max_body_bytes (code 8)"},
    503: {"model": ErrorBody, "description": "Database unavailable (code 14)"},
}
NOT_FOUND_RESPONSE: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such record (code 5)"}
}
CONFLICT_RESPONSE: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "The lock is held (code 6)"}
}
