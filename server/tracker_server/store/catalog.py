"""The service catalog: entries stored in upstream's wire shape, one per service name, and
upstream's version compliance computed from them.

An entry is created or replaced whole by name (``PUT /catalog``), except what upstream
keeps on a replace: ``createdAt`` and the three version fields, which only
:func:`set_versions` changes. Every write is journalled in its transaction
(``catalog_set``, ``catalog_deleted``). Refusals are domain errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tracker_ci.models import (
    DELIVERABLE_TYPES,
    Catalog,
    CatalogType,
    ComplianceSummary,
    DeliverableComplianceStats,
    DeliverableUsage,
    ProjectCompliance,
    VersionComplianceResponse,
)
from tracker_server.domain import NotFound
from tracker_server.journal import CatalogEntryDeleted, CatalogEntrySet, Journal
from tracker_server.tables import catalog

#: What a replace keeps of the stored entry (upstream: versions move only through
#: ``PUT /catalog/{name}/versions``).
_KEPT_ON_REPLACE = ("available_versions", "latest_version", "reference_version")


class CatalogNotFound(NotFound):
    """No catalog entry with this name."""


def _row_values(entry: Catalog) -> dict[str, Any]:
    stored = entry.model_dump(mode="json", by_alias=True, exclude={"created_at", "updated_at"})
    return {"type": entry.type.value, "owner": entry.owner, "entry": stored}


def _row_to_entry(row: Any) -> Catalog:
    return Catalog.model_validate(
        {**row.entry, "createdAt": row.created_at, "updatedAt": row.updated_at}
    )


# ------------------------------------------------------------------------ reads
def get_entry(conn: Connection, *, name: str, for_update: bool = False) -> Catalog | None:
    """The entry named ``name``, or None."""
    query = select(catalog).where(catalog.c.name == name)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return _row_to_entry(row) if row else None


def require_entry(conn: Connection, *, name: str, for_update: bool = False) -> Catalog:
    """The entry named ``name``; :class:`CatalogNotFound` when there is none."""
    entry = get_entry(conn, name=name, for_update=for_update)
    if entry is None:
        raise CatalogNotFound(
            f"catalog entry {name!r} not found: create it with PUT /catalog "
            "(tracker-ci catalog set or import)"
        )
    return entry


def list_entries(conn: Connection) -> list[Catalog]:
    """Every entry, by name."""
    rows = conn.execute(select(catalog).order_by(catalog.c.name)).all()
    return [_row_to_entry(row) for row in rows]


def entries_named(conn: Connection, names: Iterable[str]) -> dict[str, Catalog]:
    """The entries of these services that have one, by name (one query per 500 names)."""
    wanted = sorted(set(names))
    found: dict[str, Catalog] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for row in conn.execute(select(catalog).where(catalog.c.name.in_(chunk))):
            found[row.name] = _row_to_entry(row)
    return found


def stored_entries(conn: Connection, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored JSON (the wire form, camelCase, without timestamps) of these services'
    entries, by name: what a page shows of many entries, without validating each."""
    wanted = sorted(set(names))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        query = select(catalog.c.name, catalog.c.entry).where(
            catalog.c.name.in_(wanted[start : start + 500])
        )
        found.update((row.name, dict(row.entry)) for row in conn.execute(query))
    return found


def names(conn: Connection) -> list[str]:
    """Every entry's name, sorted (the primary key alone: no entry is decoded)."""
    return list(conn.execute(select(catalog.c.name).order_by(catalog.c.name)).scalars())


def owners(conn: Connection) -> dict[str, str]:
    """Every entry's owner, by name (two columns: no entry is decoded)."""
    return {row.name: row.owner for row in conn.execute(select(catalog.c.name, catalog.c.owner))}


def naming(conn: Connection, name: str) -> tuple[list[str], list[str]]:
    """The other entries that name ``name`` in their dependencies: (those listing it in
    dependencies_in, i.e. depending on it; those listing it in dependencies_out, i.e. it
    depends on them). Read from the stored JSON, so the cost is one pass over the catalog."""
    depend_on_it: list[str] = []
    it_depends_on: list[str] = []
    rows = conn.execute(select(catalog.c.name, catalog.c.entry).where(catalog.c.name != name))
    for row in rows:
        stored = row.entry if isinstance(row.entry, dict) else {}
        if name in (stored.get("dependenciesIn") or ()):
            depend_on_it.append(row.name)
        if name in (stored.get("dependenciesOut") or ()):
            it_depends_on.append(row.name)
    return sorted(depend_on_it), sorted(it_depends_on)


def contact(entry: Catalog) -> dict[str, Any]:
    """What a notification says of a service with an entry: its name, owner and channel
    (the first of its communication channels, in its wire form; None without one)."""
    channels = entry.communication_channels
    return {
        "name": entry.name,
        "owner": entry.owner,
        "channel": channels[0].to_wire() if channels else None,
    }


def service_contacts(conn: Connection, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """:func:`contact` of each of these services that has an entry, by name."""
    return {name: contact(entry) for name, entry in entries_named(conn, names).items()}


# ----------------------------------------------------------------------- writes
def put_entry(conn: Connection, *, entry: Catalog, now: datetime, journal: Journal) -> Catalog:
    """Create the entry, or replace the one of the same name (keeping its createdAt and
    versions); the entry as stored."""
    current = get_entry(conn, name=entry.name, for_update=True)
    if current is None:
        created = entry.model_copy(
            update={
                name: Catalog.model_fields[name].get_default(call_default_factory=True)
                for name in _KEPT_ON_REPLACE
            }
        )
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(catalog),
                    {
                        "name": entry.name,
                        **_row_values(created),
                        "created_at": now,
                        "updated_at": now,
                    },
                )
            stored = require_entry(conn, name=entry.name)
            journal.record(CatalogEntrySet(before=None, after=stored))
            return stored
        except IntegrityError:  # created meanwhile by another request: replace it
            current = require_entry(conn, name=entry.name, for_update=True)
    kept = {name: getattr(current, name) for name in _KEPT_ON_REPLACE}
    return _replace(conn, current, entry.model_copy(update=kept), now=now, journal=journal)


def _replace(
    conn: Connection, before: Catalog, entry: Catalog, *, now: datetime, journal: Journal
) -> Catalog:
    conn.execute(
        update(catalog)
        .where(catalog.c.name == entry.name)
        .values(**_row_values(entry), updated_at=now)
    )
    stored = require_entry(conn, name=entry.name)
    journal.record(CatalogEntrySet(before=before, after=stored))
    return stored


def delete_entry(conn: Connection, *, name: str, journal: Journal) -> Catalog:
    """Delete the entry named ``name``; the entry as it was."""
    entry = require_entry(conn, name=name, for_update=True)
    conn.execute(delete(catalog).where(catalog.c.name == name))
    journal.record(CatalogEntryDeleted(entry=entry))
    return entry


def set_versions(
    conn: Connection,
    *,
    name: str,
    available_versions: Sequence[str],
    latest_version: str,
    reference_version: str,
    now: datetime,
    journal: Journal,
) -> Catalog:
    """Replace a deliverable's available, latest and reference versions; the entry after."""
    entry = require_entry(conn, name=name, for_update=True)
    changed = entry.model_copy(
        update={
            "available_versions": list(available_versions),
            "latest_version": latest_version,
            "reference_version": reference_version,
        }
    )
    return _replace(conn, entry, changed, now=now, journal=journal)


def set_dependencies(
    conn: Connection,
    *,
    name: str,
    dependencies_in: Sequence[str],
    dependencies_out: Sequence[str],
    now: datetime,
    journal: Journal,
) -> Catalog:
    """Replace an entry's dependencies (in: it depends on; out: depend on it); the entry after."""
    entry = require_entry(conn, name=name, for_update=True)
    changed = entry.model_copy(
        update={
            "dependencies_in": list(dependencies_in),
            "dependencies_out": list(dependencies_out),
        }
    )
    return _replace(conn, entry, changed, now=now, journal=journal)


# ------------------------------------------------------------------- compliance
def _usage(used: Any, deliverable: Catalog) -> DeliverableUsage:
    reference, latest = deliverable.reference_version, deliverable.latest_version
    return DeliverableUsage(
        name=deliverable.name,
        type=deliverable.type,
        current_version=used.version_used,
        latest_version=latest,
        reference_version=reference,
        is_outdated=bool(reference) and used.version_used != reference,
        is_latest=bool(latest) and used.version_used == latest,
    )


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 100.0


def version_compliance(
    entries: Iterable[Catalog], types: Sequence[CatalogType] = ()
) -> VersionComplianceResponse:
    """Upstream's compliance: each project's uses of deliverables (of ``types``; default
    package, chart, container, module) against their reference versions. A use is outdated
    when the deliverable has a reference version and the version used differs from it."""
    wanted = set(types) or set(DELIVERABLE_TYPES)
    entries = list(entries)
    deliverables = {e.name: e for e in entries if e.type in wanted}
    stats = {
        name: DeliverableComplianceStats(
            name=name,
            type=d.type,
            latest_version=d.latest_version,
            reference_version=d.reference_version,
        )
        for name, d in deliverables.items()
    }
    projects: list[ProjectCompliance] = []
    for project in entries:
        if project.type is not CatalogType.project:
            continue
        usages = [
            _usage(used, deliverables[used.name])
            for used in project.used_deliverables
            if used.name in deliverables
        ]
        if not usages:
            continue
        outdated = sum(usage.is_outdated for usage in usages)
        for usage in usages:
            stats[usage.name].projects_using += 1
            stats[usage.name].projects_outdated += usage.is_outdated
        projects.append(
            ProjectCompliance(
                project_name=project.name,
                deliverables=usages,
                outdated_count=outdated,
                total_count=len(usages),
                compliance_percentage=_percent(len(usages) - outdated, len(usages)),
            )
        )
    compliant = sum(1 for p in projects if p.outdated_count == 0)
    return VersionComplianceResponse(
        projects=projects,
        summary=ComplianceSummary(
            total_projects=len(projects),
            compliant_projects=compliant,
            non_compliant_projects=len(projects) - compliant,
            overall_compliance_percentage=_percent(compliant, len(projects)),
            deliverable_stats=[s for s in stats.values() if s.projects_using],
        ),
    )
