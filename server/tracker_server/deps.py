"""Dependencies of the routes, as ``Annotated`` aliases.

Access is decided by :func:`tracker_server.auth.authorize` alone: ``require_reader`` for
reads, ``WriteDep`` for every write route (it carries the caller's rights into the
transaction, see ``writes.py``), ``Admin`` / ``AdminWriteDep`` for token management.
:func:`read_only` and :func:`read_and_write` resolve a reading router's read and write by
hand, for a hot route that reads its own inputs (``routes.common.DirectRoute``).

They are ``async def`` on purpose: a plain ``def`` dependency costs a trip through the
threadpool on every request, and these never block (the token look-up, the one that
touches the database, goes to the threadpool itself, and only when auth is on).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from tracker_server.auth import Principal, authorize, bearer_scheme, identify
from tracker_server.clock import Clock
from tracker_server.db import Database
from tracker_server.journal import Journal
from tracker_server.settings import ServerSettings
from tracker_server.validation import NEW_ENVIRONMENT_HEADER
from tracker_server.writes import REASON_HEADER, Write

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


async def get_database(request: Request) -> Database:
    """The app's database."""
    return request.app.state.database  # type: ignore[no-any-return]


async def get_settings(request: Request) -> ServerSettings:
    """The app's settings."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_now(request: Request) -> datetime:
    """The request's moment, read once from the app's clock (every dependency level costs
    FastAPI's machinery on each request: this one reads the clock itself)."""
    clock: Clock = request.app.state.clock
    return clock.now()


Now = Annotated[datetime, Depends(get_now)]


async def get_caller(request: Request, credentials: Credentials, now: Now) -> Principal | None:
    """The caller (None: no token sent); 401 for an unknown token (``auth.identify``)."""
    return await identify(request, credentials, now)


Caller = Annotated[Principal | None, Depends(get_caller)]


async def require_reader(request: Request, caller: Caller) -> Principal | None:
    """Reads are open with ``public_reads``; otherwise any valid token."""
    settings: ServerSettings = request.app.state.settings
    if settings.auth and not settings.public_reads:
        return authorize(caller, "read")
    return caller


async def require_admin(caller: Caller) -> Principal:
    """Managing tokens needs the admin token or an admin API token."""
    return authorize(caller, "manage tokens", admin=True)


def _write(request: Request, principal: Principal, now: datetime) -> Write:
    state = request.app.state
    return Write(
        principal=principal,
        database=state.database,
        journal=Journal(metrics=state.metrics, now=now, outbox=getattr(state, "outbox", None)),
        now=now,
        # An admin acting on a lock another token took must say why (audited).
        reason=request.headers.get(REASON_HEADER, "").strip(),
        upkeep=getattr(state, "upkeep", None),
        new_environment=request.headers.get(NEW_ENVIRONMENT_HEADER, "").strip() in ("1", "true"),
        approvers=state.settings.approvers,
    )


async def get_write(request: Request, caller: Caller, now: Now) -> Write:
    """A write by the caller: a valid token when auth is on."""
    return _write(request, authorize(caller, "write"), now)


async def read_only(request: Request) -> Principal | None:
    """``require_reader`` with its own dependencies, called by hand in the order FastAPI
    resolves them (``routes.common.DirectRoute``): the same functions, so the same
    refusals in the same order."""
    return (await _reader(request))[0]


async def read_and_write(request: Request) -> Write:
    """``require_reader`` then ``get_write``, called by hand as :func:`read_only`, for a
    write route of a reading router; the caller identified once and the clock read once,
    as FastAPI's per-request cache does."""
    caller, now = await _reader(request)
    return await get_write(request, caller, now)


async def _reader(request: Request) -> tuple[Principal | None, datetime]:
    now = await get_now(request)
    caller = await get_caller(request, await bearer_scheme(request), now)
    await require_reader(request, caller)
    return caller, now


async def get_admin_write(
    request: Request, admin: Annotated[Principal, Depends(require_admin)], now: Now
) -> Write:
    """A write by an admin (token management)."""
    return _write(request, admin, now)


DatabaseDep = Annotated[Database, Depends(get_database)]
Admin = Annotated[Principal, Depends(require_admin)]
WriteDep = Annotated[Write, Depends(get_write)]
AdminWriteDep = Annotated[Write, Depends(get_admin_write)]
