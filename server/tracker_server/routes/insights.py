"""Insights: DORA's four keys of a service and environment, computed on the server."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from tracker_ci.models import API_PREFIX, DoraReport, Environment
from tracker_server.deps import DatabaseDep, Now, require_reader
from tracker_server.domain import InvalidInput
from tracker_server.dora import dora_report
from tracker_server.errors import ERROR_RESPONSES
from tracker_server.routes.common import (
    check_date_order,
    check_single_values,
    parse_query_time,
    wire,
)
from tracker_server.validation import parse_enum

router = APIRouter(prefix=API_PREFIX, tags=["insights"], dependencies=[Depends(require_reader)])

#: Without a start_date, the window is this long (ending at end_date, else now).
DEFAULT_WINDOW = timedelta(days=30)


def dora_window(
    start_date: str | None, end_date: str | None, now: datetime
) -> tuple[datetime, datetime]:
    """The window of a DORA request: bare dates are whole days; 30 days up to now by default."""
    end = parse_query_time(end_date, "end_date", end_of_day=True) or now
    start = parse_query_time(start_date, "start_date") or end - DEFAULT_WINDOW
    check_date_order(start, end)
    return start, end


@router.get("/insights/dora", response_model=DoraReport, responses=ERROR_RESPONSES)
def get_dora(
    request: Request,
    database: DatabaseDep,
    now: Now,
    service: Annotated[str, Query(description="The service (required).")] = "",
    environment: Annotated[str, Query(description="The environment name (required).")] = "",
    start_date: Annotated[
        str | None, Query(description="Window start (default end - 30 d).")
    ] = None,
    end_date: Annotated[
        str | None, Query(description="Window end, inclusive (default now).")
    ] = None,
) -> Response:
    """Deployment frequency, lead time for changes, change failure rate and failed
    deployment recovery time of a service and environment over a window (extension)."""
    check_single_values(request, ("service", "environment", "start_date", "end_date"))
    if not service or not environment:
        raise InvalidInput(
            "invalid request: service and environment are required "
            "(e.g. ?service=api&environment=production)"
        )
    env = parse_enum(Environment, environment, "environment")
    start, end = dora_window(start_date, end_date, now)
    with database.read() as conn:
        report = dora_report(conn, service=service, environment=env.value, start=start, end=end)
    return wire(report)
