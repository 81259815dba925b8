"""Helpers every router uses: wire responses (with freeze warnings), paging, single-valued
queries, :class:`DirectRoute` for a hot route. Dates are read by ``tracker_server.periods``
(the pages read them too)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterable
from typing import Annotated, Any, ClassVar

from fastapi import Header, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from tracker_server.domain import InvalidInput

JSON = "application/json"

#: The bounds of the paging parameters (a ``DirectRoute`` reading them itself keeps them).
MAX_PAGE, MAX_PER_PAGE, MAX_CURSOR = 1_000_000, 1000, 1000

Page = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, from 1.")]
PerPage = Annotated[
    int, Query(ge=1, le=MAX_PER_PAGE, description=f"Items per page (at most {MAX_PER_PAGE}).")
]
Cursor = Annotated[
    str,
    Query(
        max_length=MAX_CURSOR,
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


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class DirectRoute(APIRoute):
    """A hot route that reads its own inputs: :meth:`direct` gets the request (and its
    validated body, with a ``body_model``) in one call, instead of FastAPI resolving each
    dependency and parameter (about ten for a write, a quarter of a create's CPU).

    FastAPI still documents the route from its endpoint's signature (the OpenAPI document
    is unchanged), and still answers everything out of the ordinary with its own handler:
    another Content-Type than ``application/json`` (``JsonBodies`` relabels the others), a
    body that fails to arrive, is not JSON or does not validate, and whatever ``direct``
    declines (None) before it did anything; so every such 400 is its own. ``inputs`` names
    what the route declares (:func:`declared_inputs`, the router's dependencies included):
    the app does not start when they differ, so an input declared later cannot be skipped.
    """

    body_model: ClassVar[type[BaseModel] | None] = None
    inputs: ClassVar[frozenset[str]]

    async def direct(self, request: Request, body: Any) -> Response | None:
        """The answer, from the request and its validated body (``body_model``); None
        (having done nothing) when FastAPI's handler should answer instead."""
        raise NotImplementedError

    def get_route_handler(self) -> Handler:
        declared = declared_inputs(self.dependant)
        if declared != self.inputs:
            raise RuntimeError(
                f"{self.path}: {type(self).__name__} reads {sorted(self.inputs)} but the "
                f"route declares {sorted(declared)}: update its direct()"
            )
        standard: Handler = super().get_route_handler()
        model = self.body_model

        async def handle(request: Request) -> Response:
            if model is None:
                answer = await self.direct(request, None)
                return answer if answer is not None else await standard(request)
            if request.headers.get("content-type") != JSON:
                return await standard(request)
            try:
                raw = await request.body()
            except Exception as error:  # noqa: BLE001 - FastAPI answers it, as always
                return await standard(_failing_body(request, error))
            try:
                # What FastAPI does: json.loads, then the model's validation.
                body = model.model_validate(json.loads(raw)) if raw else None
            except Exception:  # noqa: BLE001 - not JSON, not UTF-8, invalid: FastAPI says
                body = None
            answer = await self.direct(request, body) if body is not None else None
            return answer if answer is not None else await standard(request)

        return handle


def _failing_body(request: Request, error: Exception) -> Request:
    """The request for FastAPI's handler, whose body read fails as ours did."""

    async def receive() -> dict[str, Any]:
        raise error

    return Request(request.scope, receive)


def declared_inputs(dependant: Any) -> frozenset[str]:
    """What a route declares (``fastapi.dependencies.models.Dependant``): each dependency's
    function (``depends:get_write``) and each parameter (``header:Idempotency-Key``,
    ``body:body``), through every level."""
    found = {
        f"{kind}:{param.alias}"
        for kind in ("path", "query", "header", "cookie", "body")
        for param in getattr(dependant, f"{kind}_params")
    }
    for sub in dependant.dependencies:
        call = sub.call
        found.add(f"depends:{getattr(call, '__name__', type(call).__name__)}")
        found |= declared_inputs(sub)
    return frozenset(found)
