"""The service catalog: entries stored in upstream's wire shape, one per service name, and
upstream's version compliance computed from them.

An entry is created or replaced whole by name (``PUT /catalog``), except what upstream
keeps on a replace: ``createdAt`` and the three version fields, which only
:func:`set_versions` changes. Refusals are domain errors.
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


# ----------------------------------------------------------------------- writes
def put_entry(conn: Connection, *, entry: Catalog, now: datetime) -> Catalog:
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
            return require_entry(conn, name=entry.name)
        except IntegrityError:  # created meanwhile by another request: replace it
            current = require_entry(conn, name=entry.name, for_update=True)
    kept = {name: getattr(current, name) for name in _KEPT_ON_REPLACE}
    return _replace(conn, entry.model_copy(update=kept), now=now)


def _replace(conn: Connection, entry: Catalog, *, now: datetime) -> Catalog:
    conn.execute(
        update(catalog)
        .where(catalog.c.name == entry.name)
        .values(**_row_values(entry), updated_at=now)
    )
    return require_entry(conn, name=entry.name)


def delete_entry(conn: Connection, *, name: str) -> Catalog:
    """Delete the entry named ``name``; the entry as it was."""
    entry = require_entry(conn, name=name, for_update=True)
    conn.execute(delete(catalog).where(catalog.c.name == name))
    return entry


def set_versions(
    conn: Connection,
    *,
    name: str,
    available_versions: Sequence[str],
    latest_version: str,
    reference_version: str,
    now: datetime,
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
    return _replace(conn, changed, now=now)


def set_dependencies(
    conn: Connection,
    *,
    name: str,
    dependencies_in: Sequence[str],
    dependencies_out: Sequence[str],
    now: datetime,
) -> Catalog:
    """Replace an entry's dependencies (in: it depends on; out: depend on it); the entry after."""
    entry = require_entry(conn, name=name, for_update=True)
    changed = entry.model_copy(
        update={
            "dependencies_in": list(dependencies_in),
            "dependencies_out": list(dependencies_out),
        }
    )
    return _replace(conn, changed, now=now)


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
