"""Helpers every router uses: wire responses (with freeze warnings), paging, single-valued
queries. Dates are read by ``tracker_server.periods`` (the pages read them too)."""

from __future__ import annotations

import json
from collections.abc import Iterable
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


def check_single_values(request: Request, names: Iterable[str]) -> None:
    """A 400 when a single-valued query parameter is repeated, as upstream's gateway does
    (keeping only one of the values would answer something nobody asked for)."""
    for name in names:
        if len(request.query_params.getlist(name)) > 1:
            raise InvalidInput(
                f"invalid request: query parameter {name} may be given only once; "
                "for several values make one request per value"
            )


def wire_with_warnings(model: BaseModel, warnings: list[str]) -> Response:
    """The wire answer plus ``warnings`` (soft freezes, broken glass) when there are any."""
    if not warnings:
        return wire(model)
    body = json.loads(model.model_dump_json(by_alias=True))
    body["warnings"] = warnings
    return Response(json.dumps(body), media_type=JSON)
