"""The service catalog (upstream's ``CatalogService``, ``catalog.proto``): create or
replace, read, delete, list, version compliance, versions and dependencies.

Reads need what every read needs. A write changes one service's entry, so with auth on it
needs a token that may write that service, or an admin (the rule lives in
``operations.py``), and is journalled in its transaction like every other write
(``catalog_set``, ``catalog_deleted``). Entries are validated here: name, owner and version
are required, links are http(s) URLs, enums are read by name or number.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from tracker_ci.models import (
    API_PREFIX,
    Catalog,
    CatalogListResponse,
    CatalogResponse,
    CatalogType,
    DeleteCatalogResponse,
    UpdateDependenciesRequest,
    UpdateVersionsRequest,
    VersionComplianceResponse,
)
from tracker_server import operations
from tracker_server.deps import DatabaseDep, WriteDep, require_reader
from tracker_server.domain import InvalidInput
from tracker_server.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from tracker_server.routes.common import Page, PerPage, wire
from tracker_server.store import catalog as catalog_store
from tracker_server.validation import (
    MAX_LINK,
    MAX_MESSAGE,
    MAX_NAME,
    check_list,
    check_text,
    check_urls,
    check_web_url,
    parse_enum,
)

router = APIRouter(prefix=API_PREFIX, tags=["catalog"], dependencies=[Depends(require_reader)])

CatalogName = Annotated[str, Query(description="The service's name, as in its entry.")]
PathName = Annotated[str, Path(description="The service's name, as in its entry.")]
#: Versions a deliverable lists; more is a mistake, not a catalog.
MAX_VERSIONS = 1000


def _check_name(name: str, what: str = "name") -> str:
    check_text(name, what, max_length=MAX_NAME, required=True)
    if name != name.strip():
        raise InvalidInput(f"invalid request: {what} {name!r} has leading or trailing spaces")
    return name


def check_entry(entry: Catalog) -> None:
    """The rules of an entry: name, owner and version required; links http(s) only."""
    _check_name(entry.name)
    check_text(entry.owner, "owner", max_length=MAX_NAME, required=True)
    check_text(entry.version, "version", max_length=MAX_NAME, required=True)
    check_text(entry.description, "description", max_length=MAX_MESSAGE)
    check_text(entry.lifecycle, "lifecycle", max_length=MAX_NAME)
    for value, what in ((entry.link, "link"), (entry.repository, "repository")):
        check_text(value, what, max_length=MAX_LINK)
        check_web_url(value, what)
    check_urls(entry)  # communicationChannels[].url, dashboardLinks[].url...
    check_list(entry.dependencies_in, "dependencies_in")
    check_list(entry.dependencies_out, "dependencies_out")


@router.put("/catalog", response_model=CatalogResponse, responses=ERROR_RESPONSES)
def put_catalog(body: Catalog, write: WriteDep) -> Response:
    """Create the entry, or replace the one of the same name (its createdAt and its
    versions are kept: ``PUT /catalog/{name}/versions`` sets those); 400 without name,
    owner or version."""
    check_entry(body)
    return wire(CatalogResponse(catalog=operations.put_catalog(write, body)))


@router.get(
    "/catalog",
    response_model=CatalogResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def get_catalog(database: DatabaseDep, name: CatalogName = "") -> Response:
    """The entry of one service (404 when it has none)."""
    _check_name(name, "query parameter name")
    with database.read() as conn:
        entry = catalog_store.require_entry(conn, name=name)
    return wire(CatalogResponse(catalog=entry))


@router.delete(
    "/catalog",
    response_model=DeleteCatalogResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def delete_catalog(write: WriteDep, name: CatalogName = "") -> Response:
    """Delete a service's entry (404 when it has none)."""
    _check_name(name, "query parameter name")
    operations.delete_catalog(write, name)
    return wire(DeleteCatalogResponse(message="catalog deleted", name=name))


@router.get("/catalogs/list", response_model=CatalogListResponse, responses=ERROR_RESPONSES)
def list_catalogs(
    database: DatabaseDep, page: Page | None = None, per_page: PerPage | None = None
) -> Response:
    """Entries by name: every one when neither page nor per_page is given (as upstream,
    which ignores them), else that page."""
    with database.read() as conn:
        entries = catalog_store.list_entries(conn)
    shown = entries
    if page is not None or per_page is not None:
        size = per_page or 50
        start = ((page or 1) - 1) * size
        shown = entries[start : start + size]
    return wire(CatalogListResponse(catalogs=shown, total_count=len(entries)))


@router.get(
    "/catalog/version-compliance",
    response_model=VersionComplianceResponse,
    responses=ERROR_RESPONSES,
)
def version_compliance(
    database: DatabaseDep,
    types: Annotated[
        list[str] | None,
        Query(
            description="Deliverable types (name or number; default: package, chart, "
            "container, module). Repeat the key for several."
        ),
    ] = None,
) -> Response:
    """Each project's deliverables against their reference versions, and a summary."""
    wanted = [parse_enum(CatalogType, value, "types") for value in types or ()]
    with database.read() as conn:
        entries = catalog_store.list_entries(conn)
    return wire(catalog_store.version_compliance(entries, [t for t in wanted if t is not None]))


@router.put(
    "/catalog/{name}/versions",
    response_model=CatalogResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def update_versions(name: PathName, body: UpdateVersionsRequest, write: WriteDep) -> Response:
    """Set a deliverable's available, latest and reference versions."""
    _check_name(name)
    if len(body.available_versions) > MAX_VERSIONS:
        raise InvalidInput(
            f"invalid request: available_versions has {len(body.available_versions)} items; "
            f"at most {MAX_VERSIONS}"
        )
    for index, version in enumerate(body.available_versions):
        check_text(version, f"available_versions[{index}]", max_length=MAX_NAME)
    check_text(body.latest_version, "latest_version", max_length=MAX_NAME)
    check_text(body.reference_version, "reference_version", max_length=MAX_NAME)
    entry = operations.set_catalog_versions(
        write,
        name,
        available=body.available_versions,
        latest=body.latest_version,
        reference=body.reference_version,
    )
    return wire(CatalogResponse(catalog=entry))


@router.put(
    "/catalog/{name}/dependencies",
    response_model=CatalogResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def update_dependencies(
    name: PathName, body: UpdateDependenciesRequest, write: WriteDep
) -> Response:
    """Set what a service depends on (dependencies_in) and what depends on it
    (dependencies_out)."""
    _check_name(name)
    check_list(body.dependencies_in, "dependencies_in")
    check_list(body.dependencies_out, "dependencies_out")
    entry = operations.set_catalog_dependencies(
        write,
        name,
        dependencies_in=body.dependencies_in,
        dependencies_out=body.dependencies_out,
    )
    return wire(CatalogResponse(catalog=entry))
