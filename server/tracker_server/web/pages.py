"""The pages: board, timeline, event, locks, freezes, insights, and the live stream.

Reads go through ``require_reader`` like the API (``public_reads`` is respected). The few
forms (release a lock, add or remove a freeze, approve or reject a deployment) carry the
session's CSRF token and, with auth on, a token field; they build their write as the API
does and call the same operation (``operations.py``), then redirect back (303) with a
message; bad input is refused on a page in the API's words and status. Releasing,
removing and rejecting ask first (a confirmation page whose form carries ``confirm=yes``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from tracker_ci.models import Environment, EventType, FreezeWindow, Status
from tracker_server import dora, errors, operations
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
from tracker_server.web import catalog_view, csrf, live, queries, render
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
        cards = catalog_view.board_cards(conn, data)
    return page(
        request,
        "board.html",
        current="board",
        board=data,
        cards=cards,
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
        services = catalog_view.service_choices(conn, selected=service)
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
        around = catalog_view.around(conn, found[0]) if found is not None else None
    if found is None:
        raise EventNotFound(f"event {event_id} not found: check the id (a UUID)")
    shown, linked = found
    return page(
        request,
        "event.html",
        current="timeline",
        event=shown,
        linked=linked,
        approval=queries.approval(shown),
        around=around,
        journal_id=live.newest_journal_id(database),
    )


@router.get("/locks")
def locks(request: Request, database: DatabaseDep, now: Now, message: Text = "") -> Response:
    """Held locks: holder, lease (last renewal, expiry), queue policy, and the queue with
    each place's expected wait; release one (it asks first)."""
    with database.read() as conn:
        found = queries.locks_page(conn, now)
    return page(
        request,
        "locks.html",
        current="locks",
        locks=found.held,
        states=found.states,
        free=found.free,
        policies=found.policies,
        queues_known=found.queues_known,
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
        # A recurring window's occurrence in force, else its next one (true UTC times).
        occurrences={w.id: queries.occurrence(w, now) for w in windows if w.cron_start},
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
        services = catalog_view.service_choices(conn, selected=service)
        environments = queries.environments(conn, selected=env)
        service = service or catalog_view.default_service(services)
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


def _refused(request: Request, back: str, refusal: DomainError, heading: str = "") -> Response:
    """The refusal on a page of its own, with the API's status and message."""
    status_code = errors.status_of(refusal)[0]
    return page(
        request,
        "refused.html",
        status_code=status_code,
        message=str(refusal),
        back=back,
        heading=heading,
    )


def _confirm_release(request: Request, lock_id: str, now: datetime) -> Response:
    with request.app.state.database.read() as conn:
        lock = lock_store.find_lock(conn, lock_id=lock_id, now=now)
        waiting = queries.lock_queue_of(conn, lock, now) if lock is not None else []
    if lock is None:
        return _back(request, "/locks", "no such lock (already free)")
    next_one = "nobody: the lock is free once released"
    if waiting:
        first = waiting[0]
        why = f" ({first.reason})" if first.reason else ""
        next_one = f"{first.who or 'someone'}{why}, first of {len(waiting)} waiting"
    expires = render.moment_from_now(lock.expires_at, now) if lock.expires_at else "never"
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
            ("Expires", expires),
            ("Event", lock.event_id),
            ("Next in the queue", next_one),
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
    recurs = ""
    if window.cron_start:
        recurs = f"{window.cron_start} to {window.cron_end} ({window.timezone})"
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
            ("Recurs", recurs),
            ("Description", window.description),
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
    except InvalidInput as refused:  # what to fix, in the API's words, on a page of its own
        return _refused(request, "/freezes", refused, "The freeze window was not added")
    except DomainError as refused:
        return _back(request, "/freezes", f"not added: {refused}")
    return _back(request, "/freezes", f'freeze "{added.title}" added')


def _window_from_form(form: dict[str, str]) -> FreezeWindow:
    from pydantic import ValidationError

    scope_ids = [s.strip() for s in form.get("scope_ids", "").split(",") if s.strip()]
    zone = form.get("timezone", "").strip() or "UTC"
    try:
        return FreezeWindow.model_validate(
            {
                "title": form.get("title", "").strip(),
                "description": form.get("description", "").strip(),
                "type": form.get("type") or "FREEZE_TYPE_HARD",
                "scopeType": form.get("scope_type") or "FREEZE_SCOPE_GLOBAL",
                "scopeIds": scope_ids,
                "startsAt": _form_time(form.get("starts_at", ""), zone),
                "endsAt": _form_time(form.get("ends_at", ""), zone),
                "timezone": zone,
                "cronStart": " ".join(form.get("cron_start", "").split()),
                "cronEnd": " ".join(form.get("cron_end", "").split()),
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _form_time(value: str, zone: str) -> str | None:
    """A ``datetime-local`` field (``2026-03-01T10:00``), read in the form's time zone, as an
    RFC 3339 UTC timestamp. A value or zone that does not read is passed on as it is (as
    UTC): the window's own check refuses it in the API's words."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    value = value.strip()
    if not value:
        return None
    try:
        local = datetime.fromisoformat(value.removesuffix("Z"))
    except ValueError:
        return value
    if local.tzinfo is None:
        try:
            local = local.replace(tzinfo=ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            local = local.replace(tzinfo=UTC)
    return render.iso(local)


# ------------------------------------------------------------------- approvals
# An event waiting for approval (docs/approvals.md): Approve is a form on the event page,
# Reject asks first (it stops the deployment); both call ``operations.decide_approval``,
# as POST /event/{id}/approve|reject do. With auth on, the token field names who decides:
# the token that asked may not (no self-approval) unless it is an admin's.
def _confirm_reject(request: Request, event_id: str, comment: str = "") -> Response:
    with request.app.state.database.read() as conn:
        found = queries.find_event(conn, event_id)
    if found is None:
        raise EventNotFound(f"event {event_id} not found: check the id (a UUID)")
    back = f"/events/{found.metadata.id}"
    gate = queries.approval(found)
    if gate is None or not gate.waiting:  # decided meanwhile: the event page says how
        return _to_event(request, found.metadata.id)
    now = request.app.state.clock.now()
    a = found.attributes
    return page(
        request,
        "confirm.html",
        current="timeline",
        heading=f'Reject the deployment "{found.title or found.metadata.id}"?',
        details=[
            ("Service", a.service),
            ("Environment", a.environment.value),
            ("Asked by", gate.requested_by),
            ("Asked", render.moment_from_now(gate.requested_at, now)),
        ],
        warning="Rejected, the deployment stops (exit 10, “not approved”) and its command "
        "never runs; it can only be started again as a new deployment.",
        fields=[("comment", "Comment (optional: why)", comment)],
        asks_reason=False,
        action=f"{back}/reject",
        button="Reject the deployment",
        back=back,
    )


@router.get("/events/{event_id}/reject")
def confirm_reject(request: Request, event_id: Annotated[str, Path(max_length=64)]) -> Response:
    """Ask before rejecting a deployment waiting for approval: the form here rejects it."""
    return _confirm_reject(request, event_id)


async def _decide(request: Request, event_id: str, now: datetime, *, approved: bool) -> Response:
    from tracker_server.validation import MAX_TITLE, check_text

    event_id = event_id.lower()  # as the API's UUID path parameter reads it
    back = f"/events/{quote(event_id)}"
    heading = "Not approved" if approved else "Not rejected"
    try:
        form = await _checked_form(request)
    except Forbidden as refused:
        return _refused(request, back, refused, heading)
    comment = form.get("comment", "").strip()
    if not approved and form.get("confirm") != "yes":
        return await run_in_threadpool(_confirm_reject, request, event_id, comment)
    try:
        check_text(comment, "comment", max_length=MAX_TITLE)  # as the API checks it
        write = await _form_write(request, form, now)
        await run_in_threadpool(
            operations.decide_approval, write, event_id, approved=approved, comment=comment
        )
    except DomainError as refused:
        return _refused(request, back, refused, heading)
    return _to_event(request, event_id)


def _to_event(request: Request, event_id: str) -> RedirectResponse:
    """Back to the event page, at its approval section (which says the decision)."""
    root = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(f"{root}/events/{quote(event_id)}#approval", status_code=303)


@router.post("/events/{event_id}/approve")
async def approve_event(
    request: Request, event_id: Annotated[str, Path(max_length=64)], now: Now
) -> Response:
    """Approve a deployment waiting for approval (``operations.decide_approval``, as the
    API): it queues for its lock and runs."""
    return await _decide(request, event_id, now, approved=True)


@router.post("/events/{event_id}/reject")
async def reject_event(
    request: Request, event_id: Annotated[str, Path(max_length=64)], now: Now
) -> Response:
    """Reject a deployment waiting for approval (asks first; ``operations.decide_approval``,
    as the API): it stops without running."""
    return await _decide(request, event_id, now, approved=False)
