"""Freeze windows (upstream's freeze-branch wire shape) and their enforcement helper.

Managing windows needs an admin token when auth is on. Opening a deployment or operation
(or taking a deployment lock) during a hard window is refused by :func:`enforce`, called
by the event and lock routes; soft windows come back as ``warnings`` in the answer.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import Connection

from tracker_ci.models import (
    API_PREFIX,
    ActiveFreeze,
    ActiveFreezesResponse,
    FreezeWindow,
    FreezeWindowListResponse,
    FreezeWindowResponse,
    UnlockResponse,
)
from tracker_server.deps import AdminWriteDep, DatabaseDep, Now, require_reader
from tracker_server.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from tracker_server.routes.common import Page, PerPage, wire
from tracker_server.store import freezes as freeze_store
from tracker_server.writes import Write

router = APIRouter(prefix=API_PREFIX, tags=["freezes"], dependencies=[Depends(require_reader)])

WindowId = Annotated[uuid.UUID, Path(description="The freeze window's id (a UUID).")]
JSON = "application/json"


def enforce(
    conn: Connection,
    write: Write,
    *,
    service: str,
    environment: str,
    who: str,
    break_glass: str,
    event_id: str = "",
) -> list[str]:
    """Refuse what a hard window covers (unless an admin caller breaks glass); the warnings."""
    return freeze_store.enforce_freezes(
        conn,
        service=service,
        environment=environment,
        now=write.now,
        who=who,
        break_glass=break_glass,
        may_break_glass=write.principal.admin,
        journal=write.journal,
        event_id=event_id,
    )


def wire_with_warnings(model: BaseModel, warnings: list[str]) -> Response:
    """The wire answer plus ``warnings`` (soft freezes, broken glass) when there are any."""
    if not warnings:
        return wire(model)
    body = json.loads(model.model_dump_json(by_alias=True))
    body["warnings"] = warnings
    return Response(json.dumps(body), media_type=JSON)


@router.post("/freeze-window", response_model=FreezeWindowResponse, responses=ERROR_RESPONSES)
def create_window(body: FreezeWindow, write: AdminWriteDep) -> Response:
    """Create a freeze window; 400 for an end before its start, a bad cron or time zone."""
    with write.transaction() as conn:
        window = freeze_store.create_window(
            conn,
            window=body,
            created_by=write.principal.name,
            now=write.now,
            journal=write.journal,
        )
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
def update_window(id: WindowId, body: FreezeWindow, write: AdminWriteDep) -> Response:
    """Replace a freeze window; answers the window AFTER the change."""
    with write.transaction() as conn:
        window = freeze_store.update_window(
            conn, window_id=str(id), window=body, now=write.now, journal=write.journal
        )
    return wire(FreezeWindowResponse(freeze_window=window))


@router.delete(
    "/freeze-window/{id}",
    response_model=UnlockResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def delete_window(id: WindowId, write: AdminWriteDep) -> Response:
    """Delete a freeze window (upstream's answer: message, id, count "1")."""
    with write.transaction() as conn:
        freeze_store.delete_window(conn, window_id=str(id), journal=write.journal)
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
