"""Insights: DORA's four keys of a service and environment, computed on the server."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from tracker_ci.models import API_PREFIX, DoraReport, Environment
from tracker_server.deps import DatabaseDep, Now, require_reader
from tracker_server.domain import InvalidInput
from tracker_server.dora import dora_report
from tracker_server.errors import ERROR_RESPONSES
from tracker_server.periods import dora_window
from tracker_server.routes.common import check_single_values, wire
from tracker_server.validation import parse_enum

router = APIRouter(prefix=API_PREFIX, tags=["insights"], dependencies=[Depends(require_reader)])


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
    """DORA's four keys of a service and environment over a window (extension), counted
    as DORA, fourkeys and GitLab count them (docs/dora.md).

    A deployment is a ``deployment`` event that ended (success, failure or error) within
    ``[start_date, end_date]`` (a bare date is a whole day, both ends inclusive).

    * Deployment frequency (``deploymentsPerDay``): successful deployments per day;
      ``deployments`` counts every ended one (success, failure, error).
    * Lead time for changes: each change (by id) once, from its commit to the end of the
      first successful deployment that shipped it; a change committed after that end is
      left out and counted in ``changesCommittedAfterDeployment`` (a data problem).
    * Change failure rate: failed deployments (failure or error) / ``deployments``.
    * Failed deployment recovery time: per failure episode, from the first failed
      deployment of a run to the next successful one (``failureEpisodes`` counts them).

    ``keys`` rates each key by the 2023 Accelerate State of DevOps report (elite, high,
    medium, low) and gives its value over the previous period of the same length and the
    change; ``level`` is the lowest rating. ``incidentRecoverySeconds`` is a second,
    incident-based figure (not rated): incidents resolved in the window, opened to resolved
    (``incidentsResolved`` counts them)."""
    check_single_values(request, ("service", "environment", "start_date", "end_date"))
    if not service or not environment:
        raise InvalidInput(
            "invalid request: service and environment are required "
            "(e.g. ?service=api&environment=production)"
        )
    env = parse_enum(Environment, environment, "environment")
    try:
        start, end = dora_window(start_date, end_date, now)
    except OverflowError:  # the default start (end_date - 30 days) is before the year 1
        raise InvalidInput(
            "invalid request: end_date is less than 30 days after 0001-01-01: give start_date too"
        ) from None
    with database.read() as conn:
        report = dora_report(conn, service=service, environment=env.value, start=start, end=end)
    return wire(report)
