"""Freeze windows (upstream's freeze-branch wire shape).

Managing windows needs an admin token when auth is on (the rule lives in
``operations.py``, which the freezes page calls too). Opening a deployment or operation
(or taking a deployment lock) during a hard window is refused by
``operations.enforce_freezes``; soft windows come back as ``warnings`` in the answer.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from tracker_ci.models import (
    API_PREFIX,
    ActiveFreeze,
    ActiveFreezesResponse,
    FreezeWindow,
    FreezeWindowListResponse,
    FreezeWindowResponse,
    UnlockResponse,
)
from tracker_server import operations
from tracker_server.deps import DatabaseDep, Now, WriteDep, require_reader
from tracker_server.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from tracker_server.routes.common import Page, PerPage, wire
from tracker_server.store import freezes as freeze_store

router = APIRouter(prefix=API_PREFIX, tags=["freezes"], dependencies=[Depends(require_reader)])

WindowId = Annotated[uuid.UUID, Path(description="The freeze window's id (a UUID).")]


@router.post("/freeze-window", response_model=FreezeWindowResponse, responses=ERROR_RESPONSES)
def create_window(body: FreezeWindow, write: WriteDep) -> Response:
    """Create a freeze window (admin); 400 for an end before its start, a bad cron or
    time zone."""
    window = operations.add_freeze(write, body)
    return wire(FreezeWindowResponse(freeze_window=window))


@router.get(
    "/freeze-window/{id}",
    response_model=FreezeWindowResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def get_window(id: WindowId, database: DatabaseDep) -> Response:
    """One freeze window."""
    with database.read() as conn:
        window = freeze_store.require_window(conn, window_id=str(id))
    return wire(FreezeWindowResponse(freeze_window=window))


@router.put(
    "/freeze-window/{id}",
    response_model=FreezeWindowResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def update_window(id: WindowId, body: FreezeWindow, write: WriteDep) -> Response:
    """Replace a freeze window (admin); answers the window AFTER the change."""
    window = operations.update_freeze(write, str(id), body)
    return wire(FreezeWindowResponse(freeze_window=window))


@router.delete(
    "/freeze-window/{id}",
    response_model=UnlockResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def delete_window(id: WindowId, write: WriteDep) -> Response:
    """Delete a freeze window (admin; upstream's answer: message, id, count "1")."""
    operations.remove_freeze(write, str(id))
    return wire(UnlockResponse(message="freeze window deleted", id=str(id), count=1))


@router.get(
    "/freeze-windows/list", response_model=FreezeWindowListResponse, responses=ERROR_RESPONSES
)
def list_windows(database: DatabaseDep, page: Page = 1, per_page: PerPage = 50) -> Response:
    """Freeze windows, newest first, one page."""
    with database.read() as conn:
        windows = freeze_store.list_windows(conn)
    start = (page - 1) * per_page
    return wire(
        FreezeWindowListResponse(
            freeze_windows=windows[start : start + per_page], total_count=len(windows)
        )
    )


@router.get(
    "/freeze-windows/active", response_model=ActiveFreezesResponse, responses=ERROR_RESPONSES
)
def active_windows(
    database: DatabaseDep, now: Now, service: str | None = None, environment: str | None = None
) -> Response:
    """The windows in force now (extension); with ``service`` (and ``environment``), only
    those whose scope covers that deploy."""
    with database.read() as conn:
        stretches = freeze_store.active_freezes(conn, now, service=service, environment=environment)
    return wire(
        ActiveFreezesResponse(
            freezes=[ActiveFreeze(freeze_window=s.window, until=s.until) for s in stretches]
        )
    )
