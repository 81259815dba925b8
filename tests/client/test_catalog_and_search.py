"""TrackerClient against the real bundled server: the catalog methods, and a search that
pages by default but asks for every match when told (upstream's way)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.names import unique
from tests.support.servers import RunningServer
from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import InvalidRequest, NotFound
from tracker_ci.models import Catalog, CatalogType, CreateEventRequest

pytestmark = pytest.mark.server


@pytest.fixture
def tracker(sqlite_server: RunningServer) -> Iterator[TrackerClient]:
    with TrackerClient(base_url=sqlite_server.url, retries=0) as client:
        yield client


def test_catalog_round_trip(tracker: TrackerClient) -> None:
    lib, app = unique("lib"), unique("app")
    with pytest.raises(NotFound):
        tracker.get_catalog(lib)
    with pytest.raises(InvalidRequest, match="owner is required"):
        tracker.put_catalog(Catalog(name=lib, version="1"))
    made = tracker.put_catalog(
        Catalog(name=lib, owner="platform", version="2", type=CatalogType.package)
    )
    assert made.created_at is not None and made.type is CatalogType.package
    versioned = tracker.set_catalog_versions(lib, available=["1", "2"], latest="2", reference="2")
    assert versioned.available_versions == ["1", "2"] and versioned.reference_version == "2"
    tracker.put_catalog(
        Catalog.model_validate(
            {
                "name": app,
                "owner": "shop",
                "version": "1",
                "type": "project",
                "used_deliverables": [{"name": lib, "type": "package", "version_used": "1"}],
            }
        )
    )
    wired = tracker.set_catalog_dependencies(app, dependencies_in=[lib])
    assert wired.dependencies_in == [lib] and wired.dependencies_out == []
    assert {lib, app} <= {entry.name for entry in tracker.list_catalogs()}
    report = tracker.catalog_compliance(types=["package"])
    [project] = [p for p in report.projects if p.project_name == app]
    assert project.outdated_count == 1 and project.deliverables[0].reference_version == "2"
    tracker.delete_catalog(app)
    with pytest.raises(NotFound):
        tracker.delete_catalog(app)


def test_search_pages_by_default_and_answers_every_match_when_asked(
    tracker: TrackerClient,
) -> None:
    service = unique()
    for n in range(55):
        tracker.create_event(
            CreateEventRequest.model_validate(
                {
                    "title": f"drift {n}",
                    "attributes": {"type": "drift", "status": "warning", "service": service},
                    "links": {},
                }
            )
        )
    assert len(tracker.search_events(service=service).events) == 50
    every = tracker.search_events(service=service, per_page=None)
    assert len(every.events) == 55 and every.total_count == 55
