"""Freeze windows: stored in upstream's wire shape, with GitLab-style cron recurrence, and
enforced where a deployment opens (:func:`enforce_freezes`).

A window is in force at ``now`` when it is ``active``, ``now`` lies in
[startsAt, endsAt) (each bound optional), its scope matches, and, for a recurring window,
``now`` lies between a ``cronStart`` occurrence and the next ``cronEnd`` occurrence
(both 5-field cron read in ``timezone``, an IANA name). Domain scopes never match here:
the server knows no service's domain.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, delete, insert, select, update

from tracker_ci.models import (
    ChangelogEntry,
    ChangeType,
    FreezeScope,
    FreezeType,
    FreezeWindow,
    format_timestamp,
)
from tracker_server.domain import FreezeBlocked, InvalidInput, NotFound
from tracker_server.journal import FreezeCreated, FreezeDeleted, FreezeUpdated, GlassBroken, Journal
from tracker_server.store.locks import changelog_values
from tracker_server.tables import changelog, freeze_windows

# A cron start whose end comes later than this is a mistake, not a freeze.
_LONGEST_RECURRING = timedelta(days=366)


class FreezeNotFound(NotFound):
    """No freeze window with this id."""


@dataclass(frozen=True)
class InForce:
    """A window in force at a moment, and when that stretch of it ends (None: open)."""

    window: FreezeWindow
    until: datetime | None

    @property
    def hard(self) -> bool:
        return self.window.type is not FreezeType.FREEZE_TYPE_SOFT

    def until_text(self) -> str:
        return format_timestamp(self.until) if self.until else "further notice"


# ---------------------------------------------------------------- validation
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"invalid request: timezone {name!r} is not an IANA time zone (e.g. Europe/Paris, UTC)"
        ) from None


def _cron(expression: str, field: str, start: datetime, *, reverse: bool = False) -> Any:
    from cronsim import CronSim, CronSimError

    if len(expression.split()) != 5:
        raise InvalidInput(
            f"invalid request: {field} {expression!r} is not a 5-field cron expression "
            "(minute hour day-of-month month day-of-week)"
        )
    try:
        return CronSim(expression, start, reverse=reverse)
    except CronSimError as exc:
        raise InvalidInput(f"invalid request: {field} {expression!r}: {exc}") from None


def _check_schedule(window: FreezeWindow, now: datetime) -> ZoneInfo:
    zone = _zone(window.timezone)
    if bool(window.cron_start) != bool(window.cron_end):
        raise InvalidInput("invalid request: cronStart and cronEnd go together")
    local = now.astimezone(zone).replace(tzinfo=None)
    if window.cron_start:
        _cron(window.cron_start, "cronStart", local)
        _cron(window.cron_end, "cronEnd", local)
    elif window.ends_at is None:
        raise InvalidInput("invalid request: a freeze window needs endsAt or cronStart/cronEnd")
    return zone


def check_window(window: FreezeWindow, *, now: datetime) -> FreezeWindow:
    """The window as stored (defaults filled), or :class:`InvalidInput` saying what to fix."""
    if not window.title.strip():
        raise InvalidInput("invalid request: title is required")
    if len(window.title) > 200:
        raise InvalidInput("invalid request: title is longer than 200 characters")
    kind = window.type
    if kind is FreezeType.FREEZE_TYPE_UNSPECIFIED:
        kind = FreezeType.FREEZE_TYPE_HARD
    scope = window.scope_type
    if scope is FreezeScope.FREEZE_SCOPE_UNSPECIFIED:
        scope = FreezeScope.FREEZE_SCOPE_GLOBAL
    if scope is not FreezeScope.FREEZE_SCOPE_GLOBAL and not window.scope_ids:
        raise InvalidInput(f"invalid request: scopeType {scope.value} needs scopeIds")
    zone = _check_schedule(window, now)
    starts_at = window.starts_at
    if starts_at is None and not window.cron_start:
        starts_at = now
    if starts_at and window.ends_at and window.ends_at <= starts_at:
        raise InvalidInput(
            f"invalid request: endsAt {format_timestamp(window.ends_at)} is not after startsAt "
            f"{format_timestamp(starts_at)}"
        )
    return window.model_copy(
        update={
            "type": kind,
            "scope_type": scope,
            "starts_at": starts_at,
            "timezone": zone.key,
        }
    )


# ---------------------------------------------------------------- in force
def in_force(window: FreezeWindow, now: datetime) -> InForce | None:
    """The window's stretch covering ``now``, or None when it does not."""
    if not window.active:
        return None
    if window.starts_at and now < window.starts_at:
        return None
    if window.ends_at and now >= window.ends_at:
        return None
    until = window.ends_at
    if window.cron_start:
        zone = _zone(window.timezone)
        local = now.astimezone(zone).replace(tzinfo=None)
        # The latest start at or before now (cronsim's reverse iteration starts before it).
        began = next(
            _cron(window.cron_start, "cronStart", local + timedelta(minutes=1), reverse=True)
        )
        ends = next(_cron(window.cron_end, "cronEnd", began))
        if ends - began > _LONGEST_RECURRING or local >= ends:
            return None
        end = ends.replace(tzinfo=zone)
        until = min(end, window.ends_at) if window.ends_at else end
    return InForce(window=window, until=until)


def _in_scope(window: FreezeWindow, *, service: str, environment: str) -> bool:
    scope = window.scope_type
    if scope is FreezeScope.FREEZE_SCOPE_GLOBAL:
        return True
    if scope is FreezeScope.FREEZE_SCOPE_ENVIRONMENT:
        return environment.lower() in {s.lower() for s in window.scope_ids}
    if scope is FreezeScope.FREEZE_SCOPE_SERVICE:
        return service in window.scope_ids
    return False


def active_freezes(
    conn: Connection, now: datetime, *, service: str | None = None, environment: str | None = None
) -> list[InForce]:
    """The windows in force at ``now`` (for this service and environment when given)."""
    found = []
    for window in list_windows(conn):
        if service is not None and not _in_scope(
            window, service=service, environment=environment or ""
        ):
            continue
        stretch = in_force(window, now)
        if stretch is not None:
            found.append(stretch)
    return found


def blocked_message(stretch: InForce) -> str:
    """The refusal upstream's UI words: ``Blocked by hard freeze: "<title>" until <end>``."""
    return f'Blocked by hard freeze: "{stretch.window.title}" until {stretch.until_text()}'


def enforce_freezes(
    conn: Connection,
    *,
    service: str,
    environment: str,
    now: datetime,
    who: str,
    break_glass: str,
    may_break_glass: bool,
    journal: Journal,
    event_id: str = "",
) -> list[str]:
    """Refuse (:class:`FreezeBlocked`) what a hard window covers unless the glass is broken
    (with a reason, by a caller allowed to); the warnings of soft windows (and of broken
    glass) to send back."""
    warnings: list[str] = []
    for stretch in active_freezes(conn, now, service=service, environment=environment):
        if not stretch.hard:
            warnings.append(f'overlaps soft freeze "{stretch.window.title}"')
            continue
        if not break_glass.strip():
            raise FreezeBlocked(blocked_message(stretch))
        if not may_break_glass:
            raise FreezeBlocked(f"{blocked_message(stretch)}; breaking glass needs an admin token")
        journal.record(
            GlassBroken(
                window=stretch.window,
                who=who,
                reason=break_glass,
                service=service,
                environment=environment,
                event_id=event_id,
            )
        )
        if event_id:
            _glass_changelog(conn, stretch, event_id=event_id, who=who, reason=break_glass, now=now)
        warnings.append(f'broke glass through hard freeze "{stretch.window.title}": {break_glass}')
    return warnings


def _glass_changelog(
    conn: Connection, stretch: InForce, *, event_id: str, who: str, reason: str, now: datetime
) -> None:
    entry = ChangelogEntry(
        timestamp=now,
        user=who or "system",
        change_type=ChangeType.updated,
        field="freeze",
        old_value=stretch.window.id,
        new_value="break-glass",
        comment=f'Broke glass through hard freeze "{stretch.window.title}": {reason}',
    )
    conn.execute(insert(changelog), changelog_values(event_id, entry))


def hard_freeze_now(
    conn: Connection, *, service: str, environment: str, now: datetime
) -> InForce | None:
    """The first hard window in force for this service and environment."""
    for stretch in active_freezes(conn, now, service=service, environment=environment):
        if stretch.hard:
            return stretch
    return None


# ---------------------------------------------------------------- storage
def row_to_window(row: Any) -> FreezeWindow:
    """The wire model of a ``freeze_windows`` row."""
    return FreezeWindow(
        id=row.id,
        title=row.title,
        description=row.description,
        type=FreezeType(row.type),
        scope_type=FreezeScope(row.scope_type),
        scope_ids=list(row.scope_ids or []),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        timezone=row.timezone,
        cron_start=row.cron_start,
        cron_end=row.cron_end,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        active=row.active,
    )


def _values(window: FreezeWindow) -> dict[str, Any]:
    return {
        "title": window.title,
        "description": window.description,
        "type": window.type.value,
        "scope_type": window.scope_type.value,
        "scope_ids": list(window.scope_ids),
        "starts_at": window.starts_at,
        "ends_at": window.ends_at,
        "timezone": window.timezone,
        "cron_start": window.cron_start,
        "cron_end": window.cron_end,
        "active": window.active,
    }


#: Built once (see store/events.py): every grant and deploy reads the windows.
_WINDOWS = select(freeze_windows).order_by(freeze_windows.c.created_at.desc(), freeze_windows.c.id)


def list_windows(conn: Connection) -> list[FreezeWindow]:
    """Every window, newest first."""
    return [row_to_window(row) for row in conn.execute(_WINDOWS)]


def require_window(conn: Connection, *, window_id: str) -> FreezeWindow:
    """The window with this id, or :class:`FreezeNotFound`."""
    row = conn.execute(select(freeze_windows).where(freeze_windows.c.id == window_id)).first()
    if row is None:
        raise FreezeNotFound(f"freeze window {window_id} not found")
    return row_to_window(row)


def create_window(
    conn: Connection, *, window: FreezeWindow, created_by: str, now: datetime, journal: Journal
) -> FreezeWindow:
    """Store a checked window."""
    stored = check_window(window, now=now).model_copy(
        update={
            "id": str(uuid.uuid4()),
            "created_by": window.created_by or created_by,
            "created_at": now,
            "updated_at": now,
        }
    )
    conn.execute(
        insert(freeze_windows),
        {
            **_values(stored),
            "id": stored.id,
            "created_by": stored.created_by,
            "created_at": now,
            "updated_at": now,
        },
    )
    journal.record(FreezeCreated(window=stored))
    return stored


def update_window(
    conn: Connection, *, window_id: str, window: FreezeWindow, now: datetime, journal: Journal
) -> FreezeWindow:
    """Replace a window (a full replace, as upstream); the window after the change."""
    before = require_window(conn, window_id=window_id)
    checked = check_window(window, now=now)
    conn.execute(
        update(freeze_windows)
        .where(freeze_windows.c.id == window_id)
        .values(**_values(checked), updated_at=now)
    )
    after = require_window(conn, window_id=window_id)
    journal.record(FreezeUpdated(before=before, after=after))
    return after


def delete_window(conn: Connection, *, window_id: str, journal: Journal) -> FreezeWindow:
    """Delete a window; the window as it was."""
    window = require_window(conn, window_id=window_id)
    conn.execute(delete(freeze_windows).where(freeze_windows.c.id == window_id))
    journal.record(FreezeDeleted(window=window))
    return window
