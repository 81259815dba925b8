"""One function per write the API and the pages share, with its permission inside it.

Each operation takes a :class:`~tracker_server.writes.Write` (who asks, the journal, now),
decides whether the caller may act (``Write.allow``, ``Write.check_holder``, the admin
rule of :func:`~tracker_server.auth.authorize`), changes the stores inside
``write.transaction()`` and answers the result. The API routes (``routes/*.py``) and the
page forms (``web/pages.py``) both call these and neither copies the other, so a form can
never do what the API refuses. Refusals are domain errors; each surface translates them
once (the API through ``errors.py``, the pages into a redirect with the message).

The two building blocks that run inside a caller's transaction (``open_event`` and
``enforce_freezes``, for ``POST /event``, the batch and ``POST /lock``) live here too, so
routes never import each other.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from tracker_ci.models import (
    Catalog,
    ChangelogEntry,
    ChangeType,
    CreateEventRequest,
    Event,
    FreezeScope,
    FreezeWindow,
    Lock,
    Status,
    UpdateEventRequest,
    takes_lock,
)
from tracker_ci.wire.vocabulary import close_attributes, format_timestamp, replacing_body
from tracker_server.auth import authorize
from tracker_server.domain import Forbidden, InvalidInput
from tracker_server.store import catalog as catalog_store
from tracker_server.store import events as event_store
from tracker_server.store import freezes as freeze_store
from tracker_server.store import locks as lock_store
from tracker_server.validation import UPSTREAM_ENVIRONMENTS, check_environment_name, check_event
from tracker_server.writes import Write

#: The lock resources a freeze window covers (deployments and operations).
FROZEN_RESOURCES = ("deployment", "operation")
#: What managing freeze windows is called in a refusal.
MANAGE_FREEZES = "manage freeze windows"


# ---------------------------------------------------------------- environments
def check_environment(conn: Connection, write: Write, *, service: str, environment: str) -> None:
    """Refuse a misspelled environment name (``validation.check_environment_name``) in a
    write that names one: an event, a lock, a queue ticket, a freeze window (``service``
    "": every service's names). Unless the caller says the name is new
    (``X-Tracker-New-Environment``) or the service's catalog entry lists it."""
    if write.new_environment or environment in UPSTREAM_ENVIRONMENTS:
        return
    known = set(_known_environments(conn, service))
    if environment in known:
        return
    if service:
        entry = catalog_store.get_entry(conn, name=service)
        if entry is not None:
            known.update(entry.environments)
    subject = f"for service {service}" if service else "on this server"
    check_environment_name(environment, known=known, subject=subject)


# Distinct names by index seeks (a loose index scan), one per name: cheap at any number of
# events. Events are read through ix_events_service_environment_created_at (or
# ix_events_environment_created_at for every service); lock_fences keeps one row per key
# ever locked, and the queue's rows are few.
_ENVIRONMENTS_OF_SERVICE = text(
    """
    WITH RECURSIVE names(name) AS (
        SELECT MIN(environment) FROM events WHERE service = :service
        UNION ALL
        SELECT (SELECT MIN(environment) FROM events
                WHERE service = :service AND environment > names.name)
        FROM names WHERE names.name IS NOT NULL
    )
    SELECT name FROM names WHERE name IS NOT NULL
    UNION SELECT environment FROM lock_fences WHERE service = :service
    UNION SELECT environment FROM lock_queue WHERE service = :service
    """
)
_ENVIRONMENTS = text(
    """
    WITH RECURSIVE names(name) AS (
        SELECT MIN(environment) FROM events
        UNION ALL
        SELECT (SELECT MIN(environment) FROM events WHERE environment > names.name)
        FROM names WHERE names.name IS NOT NULL
    )
    SELECT name FROM names WHERE name IS NOT NULL
    UNION SELECT environment FROM lock_fences
    """
)


def _known_environments(conn: Connection, service: str) -> list[str]:
    """Every environment name the service (or any service, ``""``) has used."""
    if service:
        return list(conn.execute(_ENVIRONMENTS_OF_SERVICE, {"service": service}).scalars())
    return list(conn.execute(_ENVIRONMENTS).scalars())


# ----------------------------------------------------------------------- locks
def release_lock(write: Write, lock_id: str) -> int:
    """Release a lock by id: 1 when a live lock was released, 0 when there was none.
    Only the token that took it (or an admin giving a reason) may release it."""
    with write.transaction() as conn:
        write.owned_lock_if_any(conn, lock_id)
        return lock_store.release_lock(conn, lock_id=lock_id, now=write.now, journal=write.journal)


def release_lock_by_key(
    write: Write,
    *,
    service: str,
    environment: str,
    resource: str,
    who: str,
    lock_id: str,
    event_id: str,
) -> tuple[Lock, int]:
    """Release the lock on a key the caller holds (``who`` and the lock's or its event's
    id must match); the holder and the count."""
    write.allow(service)
    with write.transaction() as conn:
        current = lock_store.find_lock_by_key(
            conn, service=service, environment=environment, resource=resource, now=write.now
        )
        if current is not None and current.id == (lock_id or current.id):
            # Named right: it is released only if this token took it (or an admin says why).
            write.check_holder(conn, current, "release")
        return lock_store.release_lock_by_key(
            conn,
            service=service,
            environment=environment,
            resource=resource,
            who=who,
            lock_id=lock_id,
            event_id=event_id,
            now=write.now,
            journal=write.journal,
        )


# --------------------------------------------------------------------- catalog
# A catalog entry is its service's: with auth on, a token that may write that service (or
# an admin) may create, replace, version or delete it; anyone who may read may read it.
def put_catalog(write: Write, entry: Catalog) -> Catalog:
    """Create or replace the entry of ``entry.name`` (keeping its createdAt and versions)."""
    write.allow(entry.name)
    with write.transaction() as conn:
        return catalog_store.put_entry(conn, entry=entry, now=write.now, journal=write.journal)


def delete_catalog(write: Write, name: str) -> Catalog:
    """Delete a service's catalog entry; the entry as it was."""
    write.allow(name)
    with write.transaction() as conn:
        return catalog_store.delete_entry(conn, name=name, journal=write.journal)


def set_catalog_versions(
    write: Write, name: str, *, available: list[str], latest: str, reference: str
) -> Catalog:
    """Set a deliverable's available, latest and reference versions; the entry after."""
    write.allow(name)
    with write.transaction() as conn:
        return catalog_store.set_versions(
            conn,
            name=name,
            available_versions=available,
            latest_version=latest,
            reference_version=reference,
            now=write.now,
            journal=write.journal,
        )


def set_catalog_dependencies(
    write: Write, name: str, *, dependencies_in: list[str], dependencies_out: list[str]
) -> Catalog:
    """Set what a service depends on (in) and what depends on it (out); the entry after."""
    write.allow(name)
    with write.transaction() as conn:
        return catalog_store.set_dependencies(
            conn,
            name=name,
            dependencies_in=dependencies_in,
            dependencies_out=dependencies_out,
            now=write.now,
            journal=write.journal,
        )


# --------------------------------------------------------------------- freezes
def add_freeze(write: Write, window: FreezeWindow) -> FreezeWindow:
    """Create a freeze window (admin only when auth is on)."""
    authorize(write.principal, MANAGE_FREEZES, admin=True)
    with write.transaction() as conn:
        if window.scope_type == FreezeScope.FREEZE_SCOPE_ENVIRONMENT:
            for name in window.scope_ids:
                check_environment(conn, write, service="", environment=name)
        return freeze_store.create_window(
            conn,
            window=window,
            created_by=write.principal.name,
            now=write.now,
            journal=write.journal,
        )


def update_freeze(write: Write, window_id: str, window: FreezeWindow) -> FreezeWindow:
    """Replace a freeze window (admin only when auth is on); the window after."""
    authorize(write.principal, MANAGE_FREEZES, admin=True)
    with write.transaction() as conn:
        return freeze_store.update_window(
            conn, window_id=window_id, window=window, now=write.now, journal=write.journal
        )


def remove_freeze(write: Write, window_id: str) -> FreezeWindow:
    """Delete a freeze window (admin only when auth is on); the window as it was."""
    authorize(write.principal, MANAGE_FREEZES, admin=True)
    with write.transaction() as conn:
        return freeze_store.delete_window(conn, window_id=window_id, journal=write.journal)


def enforce_freezes(
    conn: Connection,
    write: Write,
    *,
    service: str,
    environment: str,
    who: str,
    break_glass: str,
    event_id: str = "",
) -> list[str]:
    """Refuse what a hard window covers (unless an admin caller breaks glass); the warnings.
    Runs inside the caller's transaction, after its change (a refusal rolls it back)."""
    return freeze_store.enforce_freezes(
        conn,
        service=service,
        environment=environment,
        now=write.now,
        who=who,
        break_glass=break_glass,
        may_break_glass=write.principal.admin,
        journal=write.journal,
        event_id=event_id,
    )


# ---------------------------------------------------------------------- events
def open_event(
    conn: Connection,
    body: CreateEventRequest,
    write: Write,
    grant: lock_store.Grant | None = None,
) -> tuple[Event, list[str]]:
    """Create an event as ``POST /event`` does (the batch and the queue's grant too), inside
    the caller's transaction: its automatic lock belongs to the caller's token (and is the
    queue's ``grant`` when given), the freeze windows are enforced, a broken glass joins its
    changelog. Answers the event and the warnings."""
    check_environment(
        conn, write, service=body.attributes.service, environment=body.attributes.environment.value
    )
    # The automatic lock belongs to the token that opened the event.
    event = event_store.create_event(
        conn,
        request=body,
        now=write.now,
        journal=write.journal,
        token_id=write.principal.lock_owner,
        grant=grant,
    )
    warnings = _enforce_event_freezes(conn, body, event.metadata.id, write)
    if body.attributes.status == Status.waiting_approval and write.principal.token_id:
        event = _request_approval(conn, write, event.metadata.id)
    if body.break_glass and warnings:  # the glass entry joined its changelog
        event = event_store.require_event(conn, event_id=event.metadata.id)
    return event, warnings


def _enforce_event_freezes(
    conn: Connection, body: CreateEventRequest, event_id: str, write: Write
) -> list[str]:
    # Only what opens a deployment or an operation is frozen.
    attributes = body.attributes
    if not takes_lock(attributes.type, attributes.status):
        return []
    return enforce_freezes(
        conn,
        write,
        service=attributes.service,
        environment=attributes.environment.value,
        who=attributes.owner or write.principal.name,
        break_glass=body.break_glass,
        event_id=event_id,
    )


def update_event(write: Write, event_id: str, body: UpdateEventRequest) -> Event:
    """Replace an event (closing it releases its lock); the event after the change.
    An event holding a lock is the lock's: only the token that took it (or an admin
    giving a reason) may change it."""
    write.allow(body.attributes.service)
    with write.transaction() as conn:
        before = write.owned_event(conn, event_id)
        _check_event_locks(conn, write, event_id, "update the event holding")
        # Unchanged names pass (the event itself uses them); a new one is checked.
        check_environment(
            conn,
            write,
            service=body.attributes.service,
            environment=body.attributes.environment.value,
        )
        return event_store.update_event(
            conn,
            request=body,
            event_id=event_id,
            now=write.now,
            journal=write.journal,
            before=before,
        )


def close_event(write: Write, conn: Connection, event_id: str, status: str, message: str) -> Event:
    """Close an event in the write's transaction (``POST /event/{id}/close``): ``status``,
    its message with ``message`` appended, its end date now unless it has one, by the one
    rule of closing (``close_attributes``); then as ``PUT /event`` with that body (the
    duration, its lock released, the journal), with nothing changed meanwhile lost."""
    event = write.owned_event(conn, event_id)
    _check_event_locks(conn, write, event_id, "close the event holding")
    stored = event.to_wire()
    closed = close_attributes(stored["attributes"], status, message, format_timestamp(write.now))
    body = UpdateEventRequest.model_validate(replacing_body(stored, closed))
    check_event(body.title, body.attributes, body.links, body.slack_id)  # the message's length
    return event_store.update_event(
        conn, request=body, event_id=event_id, now=write.now, journal=write.journal, before=event
    )


def delete_event(write: Write, event_id: str) -> Event:
    """Delete an event, its changelog and the locks it holds; the event as it was.
    Its locks' ownership applies: another token of the service may not delete it."""
    with write.transaction() as conn:
        write.owned_event(conn, event_id)
        _check_event_locks(conn, write, event_id, "delete the event holding")
        return event_store.delete_event(
            conn, event_id=event_id, now=write.now, journal=write.journal
        )


def _check_event_locks(conn: Connection, write: Write, event_id: str, action: str) -> None:
    """The ownership rule of every live lock the event holds (``Write.check_holder``)."""
    for lock, owner in lock_store.event_locks(conn, event_id=event_id, now=write.now):
        write.check_holder(conn, lock, action, owner=owner)


# ------------------------------------------------------------------- approvals
#: The changelog field naming the token that asked for an approval (its id, not a secret).
APPROVAL_REQUESTED_BY = "approvalRequestedBy"


def _request_approval(conn: Connection, write: Write, event_id: str) -> Event:
    """Record which token opened an event waiting for approval: it may not approve it."""
    entry = ChangelogEntry(
        timestamp=write.now,
        user=write.principal.name,
        change_type=ChangeType.commented,
        field=APPROVAL_REQUESTED_BY,
        new_value=write.principal.token_id,
        comment=f"Approval requested by {write.principal.name}",
    )
    return event_store.add_changelog_entry(
        conn, event_id=event_id, entry=entry, now=write.now, journal=write.journal
    )


def decide_approval(write: Write, event_id: str, *, approved: bool, comment: str = "") -> Event:
    """Approve or reject an event waiting for approval; the event after. With auth on, the
    token that opened it may not decide (no self-approval) unless it is an admin; the
    caller must be allowed to write the event's service."""
    action = "approve" if approved else "reject"
    with write.transaction() as conn:
        event = write.owned_event(conn, event_id)
        status = event.attributes.status
        if status != Status.waiting_approval:
            raise InvalidInput(
                f"event {event_id} is {status.value}, not waiting_approval: only an event "
                f"waiting for approval can be {action}d"
            )
        caller = write.principal
        requester = {
            entry.new_value for entry in event.changelog if entry.field == APPROVAL_REQUESTED_BY
        }
        if caller.token_id and caller.token_id in requester and not caller.admin:
            raise Forbidden(
                f"the token that opened event {event_id} may not {action} it: "
                "another token (or an admin) must"
            )
        if write.approvers == "catalog-owner" and not caller.admin:
            _check_owner(conn, caller.name, event.attributes.service, action)
        return event_store.decide_approval(
            conn,
            event_id=event_id,
            approved=approved,
            by=caller.name,
            comment=comment,
            now=write.now,
            journal=write.journal,
        )


def is_owner_token(token_name: str, owner: str) -> bool:
    """Whether a token speaks for a catalog owner: named as the owner (``team-payments``)
    or as one of its members (``team-payments/alice``), in any case."""
    name, owner = token_name.casefold(), owner.casefold()
    return bool(owner) and (name == owner or name.startswith(owner + "/"))


def _check_owner(conn: Connection, token_name: str, service: str, action: str) -> None:
    """With ``--approvers catalog-owner``: only the service's catalog owner decides."""
    entry = catalog_store.get_entry(conn, name=service)
    owner = entry.owner if entry is not None else ""
    if not owner:
        raise Forbidden(
            f"only the catalog owner of {service} may {action} its deployments, and "
            f"{service} has no catalog entry: an admin must (or: tracker-ci catalog set "
            f"{service} --owner ...)"
        )
    if not is_owner_token(token_name, owner):
        raise Forbidden(
            f"only the catalog owner of {service} ({owner}) may {action} its deployments: "
            f"token {token_name!r} is not {owner!r} nor {owner}/..., and not an admin"
        )
