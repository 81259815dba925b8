"""The pages: board, timeline, event, locks, freezes, insights, and the live stream.

Reads go through ``require_reader`` like the API (``public_reads`` is respected). The few
forms (release a lock, add or remove a freeze) carry the session's CSRF token and, with
auth on, a token field; they build their write as the API does and call the same
operation (``operations.py``), then redirect back (303) with a message. Releasing and
removing ask first (a confirmation page whose form carries ``confirm=yes``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from tracker_ci.models import Environment, EventType, FreezeWindow, Status
from tracker_server import dora, operations
from tracker_server.auth import identify
from tracker_server.deps import DatabaseDep, Now, get_write, require_reader
from tracker_server.domain import (
    DomainError,
    EventNotFound,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from tracker_server.periods import dora_window, parse_query_time
from tracker_server.store import freezes as freeze_store
from tracker_server.store import locks as lock_store
from tracker_server.store import webhooks as webhook_store
from tracker_server.validation import parse_enum
from tracker_server.web import csrf, live, queries, render
from tracker_server.web.render import page
from tracker_server.writes import Write

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_reader)])
#: The live stream is read by pages that already passed the read check.
stream_router = APIRouter(include_in_schema=False, dependencies=[Depends(require_reader)])

Text = Annotated[str, Query()]


def _choices() -> dict[str, Any]:
    return {
        "environments": [e.value for e in Environment if e.value != "ENVIRONMENT_UNSPECIFIED"],
        "types": [t.value for t in EventType if t.value != "TYPE_UNSPECIFIED"],
        "statuses": [s.value for s in Status if s.value != "STATUS_UNSPECIFIED"],
    }


@router.get("/")
def board(request: Request, database: DatabaseDep, now: Now) -> Response:
    """The board: what needs a human first, then running deployments, the latest
    deployment per service x environment, locks and freezes."""
    with database.read() as conn:
        data = queries.board(conn, now)
        problems = queries.problems(conn, now, data)
        failing = webhook_store.failing_webhooks(conn)
    return page(
        request,
        "board.html",
        current="board",
        board=data,
        problems=problems,
        failing_webhooks=failing,
        now=now,
        journal_id=live.newest_journal_id(database),
    )


@router.get("/timeline")
def timeline(
    request: Request,
    database: DatabaseDep,
    service: Text = "",
    environment: Text = "",
    type: Text = "",
    status: Text = "",
    start_date: Text = "",
    end_date: Text = "",
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    """Events newest first, filtered, grouped by day, paged."""
    query = queries.TimelineQuery(
        service=service,
        environment=_enum(Environment, environment, "environment"),
        type=_enum(EventType, type, "type"),
        status=_enum(Status, status, "status"),
        start=parse_query_time(start_date, "start_date"),
        end=parse_query_time(end_date, "end_date", end_of_day=True),
        page=page_number,
    )
    with database.read() as conn:
        found_page = queries.timeline(conn, query)
        services = queries.services(conn)
        environments = queries.environments(conn, selected=query.environment)
    days: dict[str, list[Any]] = {}
    found, total = found_page.events, found_page.total
    for event in found:
        created = event.metadata.created_at
        day = render.utc(created).strftime("%A %d %B %Y (UTC)") if created else "—"
        days.setdefault(day, []).append(event)
    filters = {
        "service": service,
        "environment": environment,
        "type": type,
        "status": status,
        "start_date": start_date,
        "end_date": end_date,
    }
    kept = "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v)
    return page(
        request,
        "timeline.html",
        current="timeline",
        days=days,
        total=total,
        total_exact=found_page.total_exact,
        # From the rows read, not the count: an estimate must not hide older events.
        more=bool(found_page.next_cursor),
        query=query,
        filters=filters,
        kept=kept,
        services=services,
        pages=max((total + query.per_page - 1) // query.per_page, 1),
        journal_id=live.newest_journal_id(database),
        **(_choices() | {"environments": environments}),
    )


def _enum(cls: Any, value: str, name: str) -> str:
    parsed = parse_enum(cls, value, name)
    return "" if parsed is None or parsed.value.endswith("_UNSPECIFIED") else str(parsed.value)


@router.get("/events/{event_id}")
def event(
    request: Request, database: DatabaseDep, event_id: Annotated[str, Path(max_length=64)]
) -> Response:
    """Everything about one event: attributes, links, linked events, changelog, changes."""
    with database.read() as conn:
        found = queries.event_page(conn, event_id)
    if found is None:
        raise EventNotFound(f"event {event_id} not found: check the id (a UUID)")
    shown, linked = found
    return page(
        request,
        "event.html",
        current="timeline",
        event=shown,
        linked=linked,
        journal_id=live.newest_journal_id(database),
    )


@router.get("/locks")
def locks(request: Request, database: DatabaseDep, now: Now, message: Text = "") -> Response:
    """Held locks with their age and queue; release one with a token."""
    with database.read() as conn:
        held, queues_known = queries.held_locks(conn, now, with_waiters=True)
    return page(
        request,
        "locks.html",
        current="locks",
        locks=held,
        queues_known=queues_known,
        message=message,
        journal_id=live.newest_journal_id(database),
    )


@router.get("/freezes")
def freezes(request: Request, database: DatabaseDep, now: Now, message: Text = "") -> Response:
    """Freeze windows: in force now, every window; add or remove one with a token."""
    with database.read() as conn:
        windows = queries.all_freezes(conn)
        current = queries.freeze_windows(conn, now, upcoming=True)
    return page(
        request,
        "freezes.html",
        current="freezes",
        windows=windows,
        in_force={f.window.id: f for f in current or []},
        message=message,
        journal_id=live.newest_journal_id(database),
        **_choices(),
    )


@router.get("/insights")
def insights(
    request: Request,
    database: DatabaseDep,
    now: Now,
    service: Text = "",
    environment: Text = "production",
    start_date: Text = "",
    end_date: Text = "",
) -> Response:
    """DORA's four keys of a service and environment, with daily and weekly charts."""
    env = _enum(Environment, environment, "environment") or Environment.production.value
    # Whole days by default (the last 30, today included), so the API answers the same
    # numbers for the dates the form shows.
    end_date = end_date or now.strftime("%Y-%m-%d")
    start_date = start_date or (now - timedelta(days=29)).strftime("%Y-%m-%d")
    start, end = dora_window(start_date, end_date, now)
    with database.read() as conn:
        services = queries.services(conn)
        environments = queries.environments(conn, selected=env)
        service = service or (services[0] if services else "")
        found = None
        if service:
            found = dora.insights(conn, service=service, environment=env, start=start, end=end)
    return page(
        request,
        "insights.html",
        current="insights",
        report=found.report if found else None,
        charts=_charts(found) if found else [],
        services=services,
        service=service,
        environment=env,
        start_date=start_date,
        end_date=end_date,
        journal_id=live.newest_journal_id(database),
        **(_choices() | {"environments": environments}),
    )


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def _charts(found: dora.Insights) -> list[tuple[str, list[tuple[str, float | None]], str]]:
    """Deployments per day, and each key's trend per week: (title, points, unit)."""

    def label(report: Any) -> str:
        return str(report.start_date.strftime("%Y-%m-%d"))

    weeks = found.weekly
    return [
        (
            "Successful deployments per day",
            [(label(r), float(r.successful_deployments)) for r in found.daily],
            "",
        ),
        (
            "Deployment frequency per week (successful deployments per day)",
            [(label(r), r.deployments_per_day) for r in weeks],
            "/day",
        ),
        (
            "Lead time for changes per week (median, hours)",
            [(label(r), _hours(r.lead_time_seconds.p50)) for r in weeks],
            " h",
        ),
        (
            "Change failure rate per week (%)",
            [
                (label(r), None if r.change_failure_rate is None else r.change_failure_rate * 100)
                for r in weeks
            ],
            " %",
        ),
        (
            "Failed deployment recovery time per week (median, hours)",
            [(label(r), _hours(r.recovery_time_seconds.p50)) for r in weeks],
            " h",
        ),
    ]


@stream_router.get("/live")
async def live_changes(
    request: Request, after: Annotated[int, Query(ge=0)] = 0
) -> StreamingResponse:
    """Server-sent ``change`` events for every journal entry after ``after``."""
    database = request.app.state.database
    # A reconnecting EventSource says the last change it saw: resume after it.
    resumed = request.headers.get("last-event-id", "")
    if resumed.isdigit():
        after = max(after, int(resumed))
    return StreamingResponse(
        live.changes(database, after=after, disconnected=request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# ----------------------------------------------------------------------- forms
# Every form, in this order: its CSRF token (web/csrf.py), a confirmation for what cannot
# be undone (confirm=yes), the write built as the API builds it (the token field plays
# the Authorization header, the reason field X-Tracker-Reason), then THE operation of
# operations.py that the API route calls too. A refusal comes back as a message.
async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


async def _form_write(request: Request, form: dict[str, str], now: datetime) -> Write:
    """The write of a form, built as ``WriteDep`` builds the API's."""
    token = form.get("token", "").strip()
    credentials = (
        HTTPAuthorizationCredentials(scheme="Bearer", credentials=token) if token else None
    )
    caller = await identify(request, credentials, now)
    if caller is None:  # what get_write refuses, in the words of a form
        raise Unauthenticated("this server requires a token to write: fill in the Token field")
    write = await get_write(request, caller, now)
    write.reason = form.get("reason", "").strip() or write.reason
    return write


def _back(request: Request, where: str, message: str) -> RedirectResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(f"{root}{where}?message={quote(message)}", status_code=303)


async def _checked_form(request: Request) -> dict[str, str]:
    """The posted form, once its CSRF token matches the browser's (Forbidden otherwise)."""
    form = await _form(request)
    csrf.check(request, form)
    return form


def _refused(request: Request, back: str, refusal: DomainError) -> Response:
    return page(request, "refused.html", status_code=403, message=str(refusal), back=back)


def _confirm_release(request: Request, lock_id: str, now: datetime) -> Response:
    with request.app.state.database.read() as conn:
        lock = lock_store.find_lock(conn, lock_id=lock_id, now=now)
    if lock is None:
        return _back(request, "/locks", "no such lock (already free)")
    return page(
        request,
        "confirm.html",
        current="locks",
        heading=f"Release the lock of {lock.service} in {lock.environment}?",
        details=[
            ("Resource", lock.resource),
            ("Holder", lock.who),
            ("Reason", lock.reason),
            ("Taken", render.moment_from_now(lock.created_at, now)),
            ("Event", lock.event_id),
        ],
        warning="The holder's deployment may still be running: release only a lock you "
        "know is stale. The next in the queue gets it.",
        action=f"/locks/{lock_id}/release",
        button="Release the lock",
        back="/locks",
    )


@router.get("/locks/{lock_id}/release")
def confirm_release_lock(
    request: Request, lock_id: Annotated[str, Path(max_length=64)], now: Now
) -> Response:
    """Ask before releasing a lock: the form on this page releases it."""
    return _confirm_release(request, lock_id, now)


@router.post("/locks/{lock_id}/release")
async def release_lock(
    request: Request, lock_id: Annotated[str, Path(max_length=64)], now: Now
) -> Response:
    """Release a lock from the locks page (``operations.release_lock``, as the API)."""
    try:
        form = await _checked_form(request)
    except Forbidden as refused:
        return _refused(request, "/locks", refused)
    if form.get("confirm") != "yes":
        return await run_in_threadpool(_confirm_release, request, lock_id, now)
    try:
        write = await _form_write(request, form, now)
        count = await run_in_threadpool(operations.release_lock, write, lock_id)
    except DomainError as refused:
        return _back(request, "/locks", f"not released: {refused}")
    return _back(request, "/locks", "lock released" if count else "no such lock (already free)")


def _confirm_remove(request: Request, window_id: str) -> Response:
    now = request.app.state.clock.now()
    try:
        with request.app.state.database.read() as conn:
            window = freeze_store.require_window(conn, window_id=window_id)
    except NotFound:
        return _back(request, "/freezes", "no such freeze window (already removed)")
    return page(
        request,
        "confirm.html",
        current="freezes",
        heading=f'Remove the freeze window "{window.title}"?',
        details=[
            ("Type", window.type.value.replace("FREEZE_TYPE_", "").lower()),
            ("Scope", window.scope_type.value.replace("FREEZE_SCOPE_", "").lower()),
            ("Covers", ", ".join(window.scope_ids)),
            ("Starts", render.moment_from_now(window.starts_at, now)),
            ("Ends", render.moment_from_now(window.ends_at, now)),
        ],
        warning="Deployments it holds back can start as soon as it is removed.",
        action=f"/freezes/{window_id}/delete",
        button="Remove the freeze window",
        back="/freezes",
    )


@router.get("/freezes/{window_id}/delete")
def confirm_delete_freeze(
    request: Request, window_id: Annotated[str, Path(max_length=64)]
) -> Response:
    """Ask before removing a freeze window: the form on this page removes it."""
    return _confirm_remove(request, window_id)


@router.post("/freezes/{window_id}/delete")
async def delete_freeze(
    request: Request, window_id: Annotated[str, Path(max_length=64)], now: Now
) -> Response:
    """Remove a freeze window (``operations.remove_freeze``: admin only, as the API)."""
    try:
        form = await _checked_form(request)
    except Forbidden as refused:
        return _refused(request, "/freezes", refused)
    if form.get("confirm") != "yes":
        return await run_in_threadpool(_confirm_remove, request, window_id)
    try:
        write = await _form_write(request, form, now)
        removed = await run_in_threadpool(operations.remove_freeze, write, window_id)
    except DomainError as refused:
        return _back(request, "/freezes", f"not removed: {refused}")
    return _back(request, "/freezes", f'freeze "{removed.title}" removed')


@router.post("/freezes")
async def add_freeze(request: Request, now: Now) -> Response:
    """Add a freeze window (``operations.add_freeze``: admin only, as the API)."""
    try:
        form = await _checked_form(request)
    except Forbidden as refused:
        return _refused(request, "/freezes", refused)
    try:
        write = await _form_write(request, form, now)
        window = _window_from_form(form)
        added = await run_in_threadpool(operations.add_freeze, write, window)
    except DomainError as refused:
        return _back(request, "/freezes", f"not added: {refused}")
    return _back(request, "/freezes", f'freeze "{added.title}" added')


def _window_from_form(form: dict[str, str]) -> FreezeWindow:
    from pydantic import ValidationError

    scope_ids = [s.strip() for s in form.get("scope_ids", "").split(",") if s.strip()]
    try:
        return FreezeWindow.model_validate(
            {
                "title": form.get("title", "").strip(),
                "description": form.get("description", ""),
                "type": form.get("type") or "FREEZE_TYPE_HARD",
                "scopeType": form.get("scope_type") or "FREEZE_SCOPE_GLOBAL",
                "scopeIds": scope_ids,
                "startsAt": _form_time(form.get("starts_at", "")),
                "endsAt": _form_time(form.get("ends_at", "")),
                "timezone": form.get("timezone") or "UTC",
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _form_time(value: str) -> str | None:
    """A ``datetime-local`` field (``2026-03-01T10:00``) as an RFC 3339 UTC timestamp."""
    value = value.strip()
    if not value:
        return None
    return value + (":00Z" if len(value) == 16 else "Z" if not value.endswith("Z") else "")
