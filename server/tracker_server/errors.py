"""Errors: the exceptions routes raise, the ONE error body, and the handlers that map
every failure (bad input, missing ids, held locks, auth, oversize bodies, a database that
is down) to an HTTP status and ``{"code", "message", "details": []}``.

gRPC codes as upstream's gateway uses them: 3 invalid argument, 5 not found, 6 already
exists (a held lock), 7 permission denied, 8 resource exhausted (body too large),
12 unimplemented (method not allowed), 13 internal, 14 unavailable, 16 unauthenticated.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from tracker_ci.models import ErrorBody

logger = logging.getLogger("tracker_server.errors")

INVALID_ARGUMENT = 3
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16


class ApiError(Exception):
    """An error a route raises on purpose; it carries its HTTP status and gRPC code."""

    status_code = 500
    code = INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ApiError):
    """400: the request is wrong; the message says what to fix."""

    status_code, code = 400, INVALID_ARGUMENT


class Unauthenticated(ApiError):
    """401: no token, or an unknown or revoked one."""

    status_code, code = 401, UNAUTHENTICATED


class Forbidden(ApiError):
    """403: the token may not do this."""

    status_code, code = 403, PERMISSION_DENIED


class NotFound(ApiError):
    """404: no such event, lock or token."""

    status_code, code = 404, NOT_FOUND


class Conflict(ApiError):
    """409: the lock is held."""

    status_code, code = 409, ALREADY_EXISTS


class BodyTooLarge(ApiError):
    """413: the body is larger than ``max_body_bytes``."""

    status_code, code = 413, RESOURCE_EXHAUSTED


class DatabaseUnavailable(ApiError):
    """503: the database does not answer."""

    status_code, code = 503, UNAVAILABLE


# Statuses of routing errors raised by Starlette itself, mapped to gRPC codes.
_HTTP_STATUS_CODES = {
    400: INVALID_ARGUMENT,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: NOT_FOUND,
    405: UNIMPLEMENTED,
    409: ALREADY_EXISTS,
    413: RESOURCE_EXHAUSTED,
    503: UNAVAILABLE,
}


def error_body(code: int, message: str) -> dict[str, Any]:
    """THE error body of every failure: ``{"code", "message", "details": []}``."""
    return ErrorBody(code=code, message=message, details=[]).to_wire()


def error_response(status_code: int, code: int, message: str) -> Response:
    """A JSON response carrying :func:`error_body`."""
    body = ErrorBody(code=code, message=message, details=[]).model_dump_json(by_alias=True)
    return Response(body, status_code=status_code, media_type="application/json")


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One message naming each bad field and what to send instead."""
    parts: list[str] = []
    for error in errors[:5]:
        location = [str(p) for p in error.get("loc", ())]
        kind = error.get("type", "")
        where = location[0] if location else ""
        path = ".".join(location[1:])
        if kind == "json_invalid":
            reason = error.get("ctx", {}).get("error", "invalid JSON")
            parts.append(f"the request body is not valid JSON ({reason})")
            continue
        if where == "body" and not path:
            subject = "the request body"
        elif where == "body":
            subject = path
        elif where in ("query", "path", "header"):
            subject = f"{where} parameter {path}"
        else:
            subject = ".".join(location) or "the request"
        parts.append(f"{subject}: {_explain(kind, error)}")
    more = len(errors) - 5
    if more > 0:
        parts.append(f"and {more} more problem(s)")
    return "invalid request: " + "; ".join(parts)


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


def _database_error(exc: sa_exc.SQLAlchemyError) -> ApiError:
    """Decide what a database failure means for the client."""
    original = getattr(exc, "orig", None)
    if isinstance(exc, sa_exc.DataError) or isinstance(original, ValueError):
        # Values the database refuses (e.g. NUL characters in PostgreSQL text).
        return InvalidInput(f"invalid request: the database rejected a value ({original})")
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return DatabaseUnavailable(f"database unavailable: {_first_line(original or exc)}")
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return DatabaseUnavailable(f"database unavailable: {_first_line(original or exc)}")
    return ApiError(f"internal database error: {_first_line(original or exc)}")


def _first_line(value: object) -> str:
    return str(value).strip().splitlines()[0] if str(value).strip() else type(value).__name__


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the one error body; nothing escapes as a bare 500."""

    async def on_api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status_code, exc.code, exc.message)

    async def on_validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message = describe_validation_errors(exc.errors())
        return error_response(400, INVALID_ARGUMENT, message)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.__cause__, ApiError):
            # FastAPI wraps any failure while reading the body (our streamed size limit
            # included) in a generic 400: answer the real cause.
            return await on_api_error(request, exc.__cause__)
        code = _HTTP_STATUS_CODES.get(exc.status_code, INTERNAL)
        if exc.status_code == 404:
            message = f"no such route: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        response = error_response(exc.status_code, code, message)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def on_database_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, sa_exc.SQLAlchemyError)
        error = _database_error(exc)
        if error.status_code >= 500:
            logger.warning("%s", error.message)
        return error_response(error.status_code, error.code, error.message)

    async def on_unexpected(_request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error", exc_info=exc)
        response = error_response(500, INTERNAL, f"internal error: {exc.__class__.__name__}")
        # This answer is sent from outside our middleware: add the server header here.
        from tracker_server import __version__

        response.headers["X-Tracker-Server"] = f"tracker-ci/{__version__}"
        return response

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(sa_exc.SQLAlchemyError, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)


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
