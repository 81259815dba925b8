"""Operational endpoints at the root: health and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from tracker_ci.models import ErrorBody, HealthResponse
from tracker_server import __version__
from tracker_server.deps import DatabaseDep, Now
from tracker_server.domain import DatabaseUnavailable
from tracker_server.routes.common import wire

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": ErrorBody, "description": "Database unavailable (code 14)"}},
)
def health(database: DatabaseDep) -> Response:
    """200 when the server and its database answer; 503 when the database does not."""
    try:
        database.ping()
    except Exception as exc:  # any failure of the database means: not healthy
        raise DatabaseUnavailable(f"database unavailable: {exc.__class__.__name__}") from None
    return wire(HealthResponse(status="ok", database="ok", version=__version__))


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, database: DatabaseDep, now: Now) -> PlainTextResponse:
    """Prometheus metrics (text format): events and deployments counted by this process;
    locks held, queue lengths and freezes in force read from the database."""
    from tracker_server.metrics import database_gauges

    with database.read() as conn:
        gauges = database_gauges(conn, now)
    return PlainTextResponse(
        request.app.state.metrics.render() + gauges, media_type="text/plain; version=0.0.4"
    )
