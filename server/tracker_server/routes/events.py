"""Events: create, read, replace, delete, search, stats and the changelog."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from tracker_ci.models import (
    API_PREFIX,
    FINISH_STATUSES,
    ApprovalRequest,
    ChangelogListResponse,
    ChangelogRequest,
    CloseEventRequest,
    CreateEventRequest,
    DeleteEventResponse,
    Environment,
    EventListResponse,
    EventResponse,
    EventType,
    MonthlyStat,
    MonthlyStatsResponse,
    Priority,
    SlackIdRequest,
    StatsResponse,
    Status,
    UpdateEventRequest,
    format_timestamp,
    takes_lock,
)
from tracker_server import operations
from tracker_server.db import Database
from tracker_server.deps import (
    DatabaseDep,
    Now,
    WriteDep,
    read_and_write,
    read_only,
    require_reader,
)
from tracker_server.domain import EventNotFound, InvalidInput
from tracker_server.errors import CONFLICT_RESPONSE, ERROR_RESPONSES, NOT_FOUND_RESPONSE
from tracker_server.operations import open_event
from tracker_server.periods import check_date_order, parse_query_time
from tracker_server.routes.common import (
    MAX_CURSOR,
    MAX_PAGE,
    MAX_PER_PAGE,
    Cursor,
    DirectRoute,
    IdempotencyKey,
    Page,
    PerPage,
    check_single_values,
    wire,
    wire_with_warnings,
)
from tracker_server.store import events as event_store
from tracker_server.store.events import EventFilter, Order
from tracker_server.tables import events as events_table
from tracker_server.validation import (
    CHECKED_BY_CHECK_EVENT,
    MAX_MESSAGE,
    MAX_NAME,
    MAX_TITLE,
    check_changelog_entry,
    check_event,
    check_text,
    check_urls,
    is_uuid,
    parse_enum,
    require_uuid,
)

router = APIRouter(prefix=API_PREFIX, tags=["events"], dependencies=[Depends(require_reader)])

EventId = Annotated[uuid.UUID, Path(description="The event's id (a UUID).")]
EnumQuery = Annotated[
    str | None, Query(description="A name or its number; 0 (the unspecified name) means any.")
]


async def create_event(
    body: CreateEventRequest, write: WriteDep, idempotency_key: IdempotencyKey = None
) -> Response:
    """Create an event. A deployment or operation that starts takes its lock first (409 if
    held, and then nothing is created); a ``relatedId`` sets the duration since that event."""
    # Checked on the event loop (pure computation); written in a transaction shared with
    # the other creates arriving meanwhile (``Write.grouped``), answered once committed.
    check_event(body.title, body.attributes, body.links, body.slack_id)
    check_urls(body, checked=CHECKED_BY_CHECK_EVENT)  # jobUrl
    write.allow(body.attributes.service)

    def work(conn: Connection) -> Response:
        event, warnings = open_event(conn, body, write)
        return wire_with_warnings(EventResponse(event=event), warnings)

    return await write.grouped_once(
        scope=f"POST /event {write.principal.token_id}",
        key=idempotency_key,
        body=body,
        work=work,
        # Taking no lock, it only inserts new rows: it may share a PostgreSQL transaction.
        shares_freely=not takes_lock(body.attributes.type, body.attributes.status),
    )


#: What every route of this router declares (its ``require_reader``), as
#: ``DirectRoute.inputs`` names it.
_READER_INPUTS = frozenset(
    {"depends:require_reader", "depends:get_caller", "depends:HTTPBearer", "depends:get_now"}
)
#: A write of this router with a JSON body and an ``Idempotency-Key``.
_KEYED_WRITE_INPUTS = _READER_INPUTS | {"depends:get_write", "header:Idempotency-Key", "body:body"}


class _CreateEventRoute(DirectRoute):
    """POST /event, ingest's hot path: its inputs read by hand (``DirectRoute``)."""

    body_model = CreateEventRequest
    inputs = _KEYED_WRITE_INPUTS

    async def direct(self, request: Request, body: CreateEventRequest) -> Response:
        write = await read_and_write(request)
        return await create_event(body, write, request.headers.get("Idempotency-Key"))


router.add_api_route(
    "/event",
    create_event,
    methods=["POST"],
    response_model=EventResponse,
    responses={**ERROR_RESPONSES, **CONFLICT_RESPONSE},
    route_class_override=_CreateEventRoute,
)


@router.put(
    "/event",
    response_model=EventResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def update_event(body: UpdateEventRequest, write: WriteDep) -> Response:
    """Replace an event's title, attributes and links; answers the event AFTER the change.
    Moving to success or failure sets its duration; success, failure or done releases
    its lock."""
    event_id = require_uuid(body.id, "id")
    check_event(body.title, body.attributes, body.links, body.slack_id)
    event = operations.update_event(write, event_id, body)
    return wire(EventResponse(event=event))


def get_event(
    id: Annotated[str, Path(description="The event's id (UUID) or its Slack message id.")],
    database: DatabaseDep,
) -> Response:
    """One event, by its id or (for anything that is not a UUID) by its Slack id."""
    check_text(id, "path parameter id", max_length=MAX_NAME, required=True)
    with database.read() as conn:
        event = event_store.find_event(conn, key=id)
    if event is None:
        raise EventNotFound(
            f"event {id} not found (looked up by {'id' if is_uuid(id) else 'slackId'})"
        )
    return wire(EventResponse(event=event))


class _GetEventRoute(DirectRoute):
    """GET /event/{id}, a lifecycle's look-up: its inputs read by hand (``DirectRoute``)."""

    inputs = _READER_INPUTS | {"depends:get_database", "path:id"}

    async def direct(self, request: Request, body: None) -> Response:
        await read_only(request)
        database = request.app.state.database
        return await run_in_threadpool(get_event, request.path_params["id"], database)


router.add_api_route(
    "/event/{id}",
    get_event,
    methods=["GET"],
    response_model=EventResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
    route_class_override=_GetEventRoute,
)


@router.delete(
    "/event/{id}",
    response_model=DeleteEventResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def delete_event(id: EventId, write: WriteDep) -> Response:
    """Delete an event, its changelog and the locks it holds (an event holding a lock:
    only the lock's token, or an admin giving ``X-Tracker-Reason``)."""
    event = operations.delete_event(write, str(id))
    return wire(DeleteEventResponse(id=event.metadata.id, slack_id=event.metadata.slack_id))


@router.get("/events/list", response_model=EventListResponse, responses=ERROR_RESPONSES)
def list_events(
    database: DatabaseDep, page: Page = 1, per_page: PerPage = 50, cursor: Cursor = ""
) -> Response:
    """All events, newest first, one page at a time."""
    return _event_page(database, where=[], page=page, per_page=per_page, cursor=cursor)


@router.get("/events/today", response_model=EventListResponse, responses=ERROR_RESPONSES)
def today_events(
    database: DatabaseDep, now: Now, page: Page = 1, per_page: PerPage = 50, cursor: Cursor = ""
) -> Response:
    """Events whose startDate falls within the current UTC day, newest startDate first."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    where = [
        events_table.c.start_date >= midnight,
        events_table.c.start_date < midnight + timedelta(days=1),
    ]
    return _event_page(
        database, where=where, page=page, per_page=per_page, cursor=cursor, order=Order.STARTED
    )


def _event_page(
    database: Database,
    *,
    where: list[Any],
    page: int,
    per_page: int,
    cursor: str,
    order: Order = Order.CREATED,
) -> Response:
    """A page of list, today or search: by ``cursor`` (keyset) or by ``page`` (offset)."""
    if cursor and page != 1:
        raise InvalidInput(
            "invalid request: give either cursor or page, not both; the cursor already names "
            "where its page starts"
        )
    with database.read() as conn:
        found = event_store.find_page(
            conn, where=where, page=page, per_page=per_page, cursor=cursor, order=order
        )
    return wire(
        EventListResponse(
            events=found.events,
            total_count=found.total,
            total_count_exact=found.total_exact,
            next_cursor=found.next_cursor,
        )
    )


#: The most a search that names no paging answers at once (upstream answers every match;
#: its UI never pages a search, and no window it asks for comes near this). Beyond it the
#: answer says so: ``nextCursor`` goes on, ``totalCount`` counts every match.
UNPAGED_SEARCH_CAP = 10_000

SEARCH_PARAMETERS = (
    "source",
    "type",
    "priority",
    "status",
    "service",
    "environment",
    "start_date",
    "end_date",
    "impact",
    "slack_id",
    "page",
    "per_page",
    "cursor",
)


def search_events(
    request: Request,
    database: DatabaseDep,
    source: str | None = None,
    type: EnumQuery = None,
    priority: EnumQuery = None,
    status: EnumQuery = None,
    service: str | None = None,
    environment: EnumQuery = None,
    start_date: Annotated[str | None, Query(description="On startDate, inclusive.")] = None,
    end_date: Annotated[str | None, Query(description="On startDate, inclusive.")] = None,
    impact: bool | None = None,
    slack_id: str | None = None,
    page: Page | None = None,
    per_page: PerPage | None = None,
    cursor: Cursor = "",
) -> Response:
    """Events matching every filter given (exact matches), newest first: newest startDate
    first when start_date or end_date is given, newest createdAt first otherwise; at least
    one filter is required. Without page, per_page and cursor, every match (as upstream,
    whose UI never pages a search) up to 10,000, beyond which nextCursor goes on."""
    check_single_values(request, SEARCH_PARAMETERS)
    for name, value in (("source", source), ("service", service), ("slack_id", slack_id)):
        if value is not None:
            check_text(value, f"query parameter {name}", max_length=MAX_NAME)
    filters = EventFilter(
        source=source or None,
        service=service or None,
        slack_id=slack_id or None,
        impact=impact,
        types=_one(parse_enum(EventType, type, "type")),
        priorities=_one(parse_enum(Priority, priority, "priority")),
        statuses=_one(parse_enum(Status, status, "status")),
        environments=_one(parse_enum(Environment, environment, "environment")),
    )
    start = parse_query_time(start_date, "start_date")
    end = parse_query_time(end_date, "end_date", end_of_day=True)
    check_date_order(start, end)
    if filters.is_empty() and start is None and end is None:
        raise InvalidInput(
            "invalid request: a search needs at least one filter: source, type, priority, "
            "status, service, environment, start_date, end_date, impact or slack_id"
        )
    where = filters.clauses() + event_store.start_date_between(start, end)
    # A date window is read along the start_date index, in its order (docs/search.md).
    order = Order.CREATED if start is None and end is None else Order.STARTED
    if page is None and per_page is None and not cursor:
        per_page = UNPAGED_SEARCH_CAP
    return _event_page(
        database, where=where, page=page or 1, per_page=per_page or 50, cursor=cursor, order=order
    )


#: The search parameters a direct search takes as sent: the text filters (the lifecycle's
#: look-up of its open deployment, ``tracker_ci.deploy``, names service, environment, type
#: and status) and the cursor; the page numbers when plain digits in their bounds. Dates,
#: impact, a repeat or anything else: FastAPI's handler reads them.
_DIRECT_SEARCH_TEXT = frozenset(
    {"source", "type", "priority", "status", "service", "environment", "slack_id", "cursor"}
)
_DIRECT_SEARCH_NUMBERS = {"page": MAX_PAGE, "per_page": MAX_PER_PAGE}


class _SearchEventsRoute(DirectRoute):
    """GET /events/search, the open deployment's look-up: its inputs read by hand."""

    inputs = (
        _READER_INPUTS | {"depends:get_database"} | {f"query:{name}" for name in SEARCH_PARAMETERS}
    )

    async def direct(self, request: Request, body: None) -> Response | None:
        given: dict[str, Any] = {}
        for name, value in request.query_params.multi_items():
            if name in given:
                return None
            if name in _DIRECT_SEARCH_TEXT and (name != "cursor" or len(value) <= MAX_CURSOR):
                given[name] = value
            elif (
                name in _DIRECT_SEARCH_NUMBERS
                and value.isascii()
                and value.isdigit()
                and 1 <= int(value) <= _DIRECT_SEARCH_NUMBERS[name]
            ):
                given[name] = int(value)
            else:
                return None
        await read_only(request)
        database = request.app.state.database
        return await run_in_threadpool(search_events, request, database, **given)


router.add_api_route(
    "/events/search",
    search_events,
    methods=["GET"],
    response_model=EventListResponse,
    responses=ERROR_RESPONSES,
    route_class_override=_SearchEventsRoute,
)


def _one(member: Any) -> tuple[Any, ...]:
    # An unspecified enum (0) is "any", as upstream: proto3 cannot tell it from "not sent".
    return () if member is None or member.number == 0 else (member,)


STATS_PARAMETERS = ("start_date", "end_date", "impact", "source", "service", "group_by_service")


class _StatsQuery:
    """The shared query of the two stats endpoints (filters on createdAt)."""

    def __init__(
        self,
        request: Request,
        start_date: Annotated[str, Query(description="Lower bound on createdAt, inclusive.")],
        end_date: Annotated[str, Query(description="Upper bound on createdAt, inclusive.")],
        environments: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies it
        priorities: Annotated[list[str], Query()] = [],  # noqa: B006
        types: Annotated[list[str], Query()] = [],  # noqa: B006
        statuses: Annotated[list[str], Query()] = [],  # noqa: B006
        impact: bool | None = None,
        source: str | None = None,
        service: str | None = None,
    ) -> None:
        check_single_values(request, STATS_PARAMETERS)
        start = parse_query_time(start_date, "start_date")
        end = parse_query_time(end_date, "end_date", end_of_day=True)
        if start is None or end is None:
            raise InvalidInput("invalid request: start_date and end_date are both required")
        check_date_order(start, end)
        for name, value in (("source", source), ("service", service)):
            if value is not None:
                check_text(value, f"query parameter {name}", max_length=MAX_NAME)
        self.start, self.end = start, end
        self.filters = EventFilter(
            source=source or None,
            service=service or None,
            impact=impact,
            environments=[parse_enum(Environment, v, "environments") for v in environments if v],
            priorities=[parse_enum(Priority, v, "priorities") for v in priorities if v],
            types=[parse_enum(EventType, v, "types") for v in types if v],
            statuses=[parse_enum(Status, v, "statuses") for v in statuses if v],
        )

    def where(self) -> list[object]:
        return [
            *self.filters.clauses(),
            events_table.c.created_at >= self.start,
            events_table.c.created_at <= self.end,
        ]


StatsQuery = Annotated[_StatsQuery, Depends()]


@router.get("/events/stats", response_model=StatsResponse, responses=ERROR_RESPONSES)
def event_stats(database: DatabaseDep, query: StatsQuery) -> Response:
    """How many events were created in the range (createdAt, inclusive) and match."""
    with database.read() as conn:
        total = event_store.count_events(conn, where=query.where())
    return wire(
        StatsResponse(
            total_count=total,
            start_date=format_timestamp(query.start),
            end_date=format_timestamp(query.end),
        )
    )


@router.get("/events/stats/monthly", response_model=MonthlyStatsResponse, responses=ERROR_RESPONSES)
def monthly_event_stats(
    database: DatabaseDep, query: StatsQuery, group_by_service: bool = False
) -> Response:
    """Matching events per UTC month of createdAt (and per service when asked)."""
    with database.read() as conn:
        rows = event_store.monthly_counts(
            conn, where=query.where(), group_by_service=group_by_service
        )
    stats = [
        MonthlyStat(year=year, month=month, count=count, service=service)
        for year, month, service, count in rows
    ]
    return wire(
        MonthlyStatsResponse(
            stats=stats,
            total_count=sum(stat.count for stat in stats),
            start_date=format_timestamp(query.start),
            end_date=format_timestamp(query.end),
        )
    )


@router.post(
    "/event/{id}/changelog",
    response_model=EventResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def add_changelog_entry(id: EventId, body: ChangelogRequest, write: WriteDep) -> Response:
    """Append a changelog entry; answers the event after the change."""
    check_changelog_entry(body.entry)
    with write.transaction() as conn:
        write.owned_event(conn, str(id))
        event = event_store.add_changelog_entry(
            conn, event_id=str(id), entry=body.entry, now=write.now, journal=write.journal
        )
    return wire(EventResponse(event=event))


@router.get(
    "/event/{id}/changelog",
    response_model=ChangelogListResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def get_changelog(
    id: EventId, database: DatabaseDep, page: Page = 1, per_page: PerPage = 50
) -> Response:
    """An event's changelog, oldest first, one page at a time."""
    with database.read() as conn:
        event_store.require_event(conn, event_id=str(id))
        entries, total = event_store.get_changelog(
            conn, event_id=str(id), page=page, per_page=per_page
        )
    return wire(ChangelogListResponse(changelog=entries, total_count=total))


@router.post(
    "/event/{id}/approve",
    response_model=EventResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def approve_event(id: EventId, write: WriteDep, body: ApprovalRequest | None = None) -> Response:
    """Approve a deployment waiting for approval (status ``open`` after: it may start);
    not by the token that opened it, unless an admin. The event after."""
    return _decide(write, id, body, approved=True)


@router.post(
    "/event/{id}/reject",
    response_model=EventResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def reject_event(id: EventId, write: WriteDep, body: ApprovalRequest | None = None) -> Response:
    """Reject a deployment waiting for approval (closed as ``failure``); not by the token
    that opened it, unless an admin. The event after."""
    return _decide(write, id, body, approved=False)


def _decide(
    write: WriteDep, id: EventId, body: ApprovalRequest | None, *, approved: bool
) -> Response:
    """Approve or reject (``operations.decide_approval``) with the body's checked comment."""
    comment = body.comment if body is not None else ""
    check_text(comment, "comment", max_length=MAX_TITLE)
    event = operations.decide_approval(write, str(id), approved=approved, comment=comment)
    return wire(EventResponse(event=event))


def close_event(
    id: EventId,
    body: CloseEventRequest,
    write: WriteDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Close an event in one step (our server): ``status`` (success, failure, warning,
    error, close or done), ``message`` appended to its message, its end date now unless it
    has one; then as ``PUT /event`` with that body (the duration; success, failure and done
    release its lock). No read before the write, and nothing changed meanwhile is lost. A
    repeat with the same ``Idempotency-Key`` answers the first close again."""
    status = body.status.value
    if status not in FINISH_STATUSES:
        raise InvalidInput(
            f"status {status!r} does not close an event; use one of: {', '.join(FINISH_STATUSES)}"
        )
    check_text(body.message, "message", max_length=MAX_MESSAGE)
    event_id = str(id)

    def work(conn: Connection) -> Response:
        event = operations.close_event(write, conn, event_id, status, body.message)
        return wire(EventResponse(event=event))

    return write.once(
        scope=f"POST /event/{event_id}/close", key=idempotency_key, body=body, work=work
    )


class _CloseEventRoute(DirectRoute):
    """POST /event/{id}/close, a deploy's last request (its successor waits on it): its
    inputs read by hand (``DirectRoute``)."""

    body_model = CloseEventRequest
    inputs = _KEYED_WRITE_INPUTS | {"path:id"}

    async def direct(self, request: Request, body: CloseEventRequest) -> Response | None:
        given = request.path_params["id"]
        if not _CANONICAL_UUID.fullmatch(given):
            return None  # FastAPI's handler reads it (or says why not)
        write = await read_and_write(request)
        key = request.headers.get("Idempotency-Key")
        return await run_in_threadpool(close_event, uuid.UUID(given), body, write, key)


#: A UUID as the lifecycle writes it; any other spelling goes to FastAPI's handler.
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")

router.add_api_route(
    "/event/{id}/close",
    close_event,
    methods=["POST"],
    response_model=EventResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
    route_class_override=_CloseEventRoute,
)


@router.post(
    "/event/{id}/slack",
    response_model=EventResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def set_slack_id(id: EventId, body: SlackIdRequest, write: WriteDep) -> Response:
    """Attach a Slack message id to an event; answers the event after the change."""
    check_text(body.slack_id, "slackId", max_length=MAX_NAME, required=True)
    with write.transaction() as conn:
        write.owned_event(conn, str(id))
        event = event_store.set_slack_id(
            conn, event_id=str(id), slack_id=body.slack_id, journal=write.journal
        )
    return wire(EventResponse(event=event))
