"""What the pages show of the service catalog (no HTTP here).

* The service pickers: every catalog entry's name merged with every service events carry
  (``queries.services``), each saying whether it has an entry.
* A service's card: its owner, lifecycle, links, dashboards and channels. Stored URLs
  reach the templates as they are: the ``link`` macro makes a link of an http(s) one
  only (``safe_url``), and autoescaping shows any text as text.
* An event's surroundings: its service's card, its blast radius (what depends on the
  service and what it depends on, from both sides of the catalog's dependencies) and what
  else deployed in the hour before it started.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from tracker_ci.models import Catalog, Event, EventType
from tracker_server.store import catalog as catalog_store
from tracker_server.tables import events
from tracker_server.web import queries

#: "What else deployed before this": how far back from the event's start, and how many.
DEPLOYED_BEFORE = timedelta(hours=1)
DEPLOYED_BEFORE_LIMIT = 20


# ---------------------------------------------------------------- service pickers
@dataclass(frozen=True)
class ServiceChoice:
    """One service of a picker: in the catalog (with its owner), seen in events, or both."""

    name: str
    in_catalog: bool
    seen: bool
    owner: str = ""


def service_choices(conn: Connection, *, selected: str = "") -> list[ServiceChoice]:
    """Catalog entries and the services events carry, by name; ``selected`` too when it is
    neither, so a picker always holds the service it shows."""
    owners = catalog_store.owners(conn)
    seen = set(queries.services(conn))
    names = set(owners) | seen | ({selected} if selected else set())
    return [
        ServiceChoice(
            name=name, in_catalog=name in owners, seen=name in seen, owner=owners.get(name, "")
        )
        for name in sorted(names)
    ]


def default_service(choices: Iterable[ServiceChoice]) -> str:
    """The first service with events (a report of a service without any is empty), else
    the first at all, else ""."""
    listed = list(choices)
    for choice in listed:
        if choice.seen:
            return choice.name
    return listed[0].name if listed else ""


# --------------------------------------------------------------------- the cards
@dataclass(frozen=True)
class Link:
    """A labelled URL (shown as a link only when it is http(s): the ``link`` macro)."""

    label: str
    url: str
    note: str = ""


@dataclass(frozen=True)
class ServiceCard:
    """A service's catalog entry as the board and the event page show it."""

    name: str
    owner: str
    description: str = ""
    lifecycle: str = ""
    links: list[Link] = field(default_factory=list)
    dashboards: list[Link] = field(default_factory=list)
    channels: list[Link] = field(default_factory=list)


def _kind(value: Any) -> str:
    text = str(value or "")
    return "" if text.endswith("UNSPECIFIED") else text


def _named(kind: str) -> str:
    """A dashboard without a name, called by its kind: ``Grafana``, ``Newrelic``."""
    return kind.replace("_", " ").capitalize() or "Dashboard"


def _items(stored: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    found = stored.get(key)
    return [item for item in found if isinstance(item, Mapping)] if isinstance(found, list) else []


def card(stored: Mapping[str, Any]) -> ServiceCard:
    """The card of an entry in its wire form (as stored, or ``Catalog.to_wire()``): its
    link and repository, dashboards, channels. Read as JSON, not validated again: the
    board may show thousands."""

    def text(item: Mapping[str, Any], key: str) -> str:
        value = item.get(key)
        return value if isinstance(value, str) else ""

    links = [
        Link(label, url)
        for label, url in (
            ("Home", text(stored, "link")),
            ("Repository", text(stored, "repository")),
        )
        if url
    ]
    dashboards = [
        Link(text(d, "name") or _named(_kind(d.get("type"))), text(d, "url"), _kind(d.get("type")))
        for d in _items(stored, "dashboardLinks")
        if text(d, "url") or text(d, "name")
    ]
    channels = [
        Link(text(c, "name") or text(c, "url"), text(c, "url"), _kind(c.get("type")))
        for c in _items(stored, "communicationChannels")
        if text(c, "url") or text(c, "name")
    ]
    return ServiceCard(
        name=text(stored, "name"),
        owner=text(stored, "owner"),
        description=text(stored, "description"),
        lifecycle=text(stored, "lifecycle"),
        links=links,
        dashboards=dashboards,
        channels=channels,
    )


def cards(conn: Connection, names: Iterable[str]) -> dict[str, ServiceCard]:
    """The cards of these services that have an entry, by name."""
    return {
        name: card(stored) for name, stored in catalog_store.stored_entries(conn, names).items()
    }


def board_cards(conn: Connection, board: queries.Board) -> dict[str, ServiceCard]:
    """The cards of the services the board shows (running and latest deployments)."""
    shown = {row.service for row in board.latest}
    shown |= {run.event.attributes.service for run in board.running}
    return cards(conn, shown - {""})


# ------------------------------------------------------------- around an event
@dataclass(frozen=True)
class Neighbour:
    """A service next to another in the catalog's dependencies."""

    name: str
    in_catalog: bool
    owner: str = ""


@dataclass(frozen=True)
class BlastRadius:
    """Who a change to a service can hurt, and what it relies on (catalog.proto:
    ``dependencies_out`` depend on it, ``dependencies_in`` it depends on; an entry naming
    it on the other side counts too)."""

    depend_on_it: list[Neighbour] = field(default_factory=list)
    it_depends_on: list[Neighbour] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return bool(self.depend_on_it or self.it_depends_on)


@dataclass(frozen=True)
class DeployedBefore:
    """Another service's deployment started in the hour before an event."""

    id: str
    title: str
    service: str
    environment: str
    status: str
    owner: str
    started_at: datetime
    #: "depends on this", "this depends on it" or "" (no catalog dependency).
    relation: str = ""


@dataclass(frozen=True)
class Around:
    """What the event page shows around an event: its service's card (None without an
    entry), its blast radius, what else deployed in the hour before it started."""

    service: str
    card: ServiceCard | None
    radius: BlastRadius
    deployed_before: list[DeployedBefore]
    since: datetime | None
    until: datetime | None


def blast_radius(conn: Connection, service: str, entry: Catalog | None) -> BlastRadius:
    """The services that depend on ``service`` and those it depends on."""
    if not service:
        return BlastRadius()
    depend_on_it, it_depends_on = catalog_store.naming(conn, service)
    if entry is not None:
        depend_on_it = [*entry.dependencies_out, *depend_on_it]
        it_depends_on = [*entry.dependencies_in, *it_depends_on]
    wanted = sorted({*depend_on_it, *it_depends_on} - {service, ""})
    owners = {name: e.owner for name, e in catalog_store.entries_named(conn, wanted).items()}

    def neighbours(names: list[str]) -> list[Neighbour]:
        unique = sorted(set(names) - {service, ""})
        return [Neighbour(n, n in owners, owners.get(n, "")) for n in unique]

    return BlastRadius(
        depend_on_it=neighbours(depend_on_it), it_depends_on=neighbours(it_depends_on)
    )


def _deployed_between(since: datetime, until: datetime, event: Event, *, by_start: bool) -> Any:
    """One index range: deployments whose startDate is in the window (``by_start``), or,
    for those without one, whose createdAt is."""
    moment = events.c.start_date if by_start else events.c.created_at
    query = select(
        events.c.id,
        events.c.title,
        events.c.service,
        events.c.environment,
        events.c.status,
        events.c.owner,
        func.coalesce(events.c.start_date, events.c.created_at).label("started_at"),
    ).where(
        moment >= since,
        moment <= until,
        events.c.type == EventType.deployment.value,
        events.c.id != event.id,
    )
    # Each range in its index's own order (no sort; with LIMIT the planner keeps to it).
    if by_start:
        query = query.order_by(
            events.c.start_date.desc(), events.c.created_at.desc(), events.c.id.desc()
        )
    else:
        query = query.order_by(events.c.created_at.desc(), events.c.id.desc())
    if not by_start:
        query = query.where(events.c.start_date.is_(None))
    if event.attributes.service:
        query = query.where(events.c.service != event.attributes.service)
    return query


def deployed_before(
    conn: Connection,
    event: Event,
    *,
    until: datetime,
    window: timedelta = DEPLOYED_BEFORE,
    limit: int = DEPLOYED_BEFORE_LIMIT,
) -> list[Any]:
    """Other services' deployments that started in ``window`` before ``until`` (their
    startDate, else their createdAt), newest first, at most ``limit``. Two bounded index
    ranges (startDate; createdAt of those without one), merged: an event recorded after
    the fact with its real startDate counts when it started, not when it was written."""
    since = until - window
    found = [
        row
        for by_start in (True, False)
        for row in conn.execute(
            _deployed_between(since, until, event, by_start=by_start).limit(limit)
        )
    ]
    found.sort(key=lambda row: (row.started_at, row.id), reverse=True)
    return found[:limit]


def around(conn: Connection, event: Event) -> Around:
    """The service card, blast radius and earlier deployments of an event's page."""
    service = event.attributes.service
    entry = catalog_store.get_entry(conn, name=service) if service else None
    radius = blast_radius(conn, service, entry)
    start = event.attributes.start_date or event.metadata.created_at
    relation = {n.name: "depends on this" for n in radius.depend_on_it}
    relation |= {n.name: "this depends on it" for n in radius.it_depends_on}
    before = []
    if start is not None:
        before = [
            DeployedBefore(
                id=row.id,
                title=row.title or row.id,
                service=row.service,
                environment=row.environment,
                status=row.status,
                owner=row.owner,
                started_at=row.started_at,
                relation=relation.get(row.service, ""),
            )
            for row in deployed_before(conn, event, until=start)
        ]
    return Around(
        service=service,
        card=card(entry.to_wire()) if entry is not None else None,
        radius=radius,
        deployed_before=before,
        since=start - DEPLOYED_BEFORE if start is not None else None,
        until=start,
    )
