"""Dependencies of the routes, as ``Annotated`` aliases.

They are ``async def`` on purpose: a plain ``def`` dependency costs a trip through the
threadpool on every request, and these never block (the token look-up, the one that
touches the database, goes to the threadpool itself, and only when auth is on).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from tracker_server.auth import ANONYMOUS, Principal, bearer_scheme, identify, require_token
from tracker_server.db import Database
from tracker_server.errors import Forbidden
from tracker_server.journal import Journal
from tracker_server.settings import ServerSettings

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


async def get_database(request: Request) -> Database:
    """The app's database."""
    return request.app.state.database  # type: ignore[no-any-return]


async def get_settings(request: Request) -> ServerSettings:
    """The app's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_journal(request: Request) -> Journal:
    """A fresh journal for this request."""
    return Journal(metrics=request.app.state.metrics)


async def get_caller(request: Request, credentials: Credentials) -> Principal | None:
    """The caller (None: no token sent); 401 for an unknown token."""
    if not request.app.state.settings.auth:
        return ANONYMOUS
    return await run_in_threadpool(identify, request, credentials)


Caller = Annotated[Principal | None, Depends(get_caller)]


async def require_reader(request: Request, caller: Caller) -> Principal | None:
    """Reads are open with ``public_reads``; otherwise any valid token."""
    settings: ServerSettings = request.app.state.settings
    if settings.auth and not settings.public_reads:
        return require_token(caller, "read")
    return caller


async def require_writer(caller: Caller) -> Principal:
    """Writes need a valid token when auth is on."""
    return require_token(caller, "write")


async def require_admin(caller: Caller) -> Principal:
    """Managing tokens needs the admin token or an admin API token."""
    principal = require_token(caller, "manage tokens")
    if not principal.admin:
        raise Forbidden(f"token {principal.name!r} is not an admin token: it cannot manage tokens")
    return principal


DatabaseDep = Annotated[Database, Depends(get_database)]
JournalDep = Annotated[Journal, Depends(get_journal)]
Writer = Annotated[Principal, Depends(require_writer)]
Admin = Annotated[Principal, Depends(require_admin)]
