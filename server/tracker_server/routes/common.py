"""Helpers every router uses: wire responses, paging, dates, single-valued queries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from tracker_server.domain import InvalidInput

JSON = "application/json"

Page = Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")]
PerPage = Annotated[int, Query(ge=1, le=1000, description="Items per page (at most 1000).")]
Cursor = Annotated[
    str,
    Query(
        max_length=1000,
        description="Extension (keyset paging): the nextCursor of the previous page; the "
        "page after it, read from the index instead of skipping rows. Not with page.",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="A repeat with the same key (and body) answers the first result and "
        "writes nothing; the same key with another body is a 400.",
    ),
]


def wire(model: BaseModel, status_code: int = 200) -> Response:
    """A JSON response of a wire model: camelCase, enums by name, every field present."""
    return Response(model.model_dump_json(by_alias=True), status_code=status_code, media_type=JSON)


def parse_query_time(value: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    """An RFC 3339 timestamp (or a bare date) from a query parameter; 400 otherwise.

    A bare date as an upper bound means the end of that day, so bounds stay inclusive.
    """
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.min, tzinfo=UTC)
            return moment + timedelta(days=1, microseconds=-1) if end_of_day else moment
        from tracker_ci.models import EventMetadata

        parsed = EventMetadata.model_validate({"created_at": text}).created_at
    except ValueError as exc:
        if "out of range" in str(exc):
            raise InvalidInput(
                f"invalid request: query parameter {name}: {value!r} is out of range once "
                "converted to UTC (years 1 to 9999 in UTC)"
            ) from None
        raise InvalidInput(
            f"invalid request: query parameter {name}: {value!r} is not an RFC 3339 timestamp "
            "(e.g. 2026-01-31T12:00:00Z) or a date (2026-01-31)"
        ) from None
    assert parsed is not None
    return parsed


def check_single_values(request: Request, names: Iterable[str]) -> None:
    """A 400 when a single-valued query parameter is repeated, as upstream's gateway does
    (keeping only one of the values would answer something nobody asked for)."""
    for name in names:
        if len(request.query_params.getlist(name)) > 1:
            raise InvalidInput(
                f"invalid request: query parameter {name} may be given only once; "
                "for several values make one request per value"
            )


def check_date_order(start: datetime | None, end: datetime | None) -> None:
    """A 400 when the range is inverted."""
    if start is not None and end is not None and start > end:
        raise InvalidInput(
            "invalid request: start_date is after end_date; swap them (both are inclusive)"
        )
