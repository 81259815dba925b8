"""The service catalog in upstream's wire shapes (CONTRACT.md "Catalog", catalog.proto), on
both backends: create or replace, get, delete, list, versions, dependencies, compliance,
validation and who may write."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.helpers import API, assert_error

pytestmark = pytest.mark.server

ADMIN = {"Authorization": "Bearer admin-secret"}


def entry(name: str = "api", **fields: Any) -> dict[str, Any]:
    """A PUT /catalog body, snake_case as upstream's UI sends it."""
    return {"name": name, "owner": "team-a", "version": "1.0.0", "type": "project"} | fields


def put(client: Any, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    response = client.put(f"{API}/catalog", json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()["catalog"]


def test_an_entry_round_trips_in_upstreams_shape(client):
    body = entry(
        type=4,  # project, by number
        languages="golang",
        link="https://api.example.com",
        repository="https://github.com/acme/api",
        description="The public API",
        dependencies_in=["db"],
        dependencies_out=["web", "mobile"],
        sla={"level": "critical", "uptime_percentage": 99.95, "response_time_ms": 200},
        platform="kubernetes",
        used_deliverables=[{"name": "base-image", "type": "container", "version_used": "2"}],
        communication_channels=[
            {"type": "slack", "name": "#api", "url": "https://acme.slack.com/archives/C1"}
        ],
        dashboard_links=[{"type": 1, "name": "RED", "url": "https://grafana.acme.io/d/api"}],
        vulnerability_summary={"critical_count": 1, "total_count": 3},
        infrastructure_resources=[
            {"name": "users-db", "type": "database_postgresql", "endpoint": "postgres://db:5432"}
        ],
    )
    stored = put(client, body)
    assert stored["name"] == "api" and stored["type"] == "project"
    assert stored["languages"] == "golang" and stored["platform"] == "kubernetes"
    assert stored["dependenciesIn"] == ["db"] and stored["dependenciesOut"] == ["web", "mobile"]
    # The SLA's wrappers as plain values under their proto names (the UI reads those).
    assert stored["sla"] == {
        "level": "critical",
        "uptime_percentage": 99.95,
        "response_time_ms": 200,
        "description": "",
    }
    assert stored["usedDeliverables"] == [
        {"name": "base-image", "type": "container", "versionUsed": "2", "description": ""}
    ]
    assert stored["communicationChannels"][0]["type"] == "slack"
    assert stored["dashboardLinks"][0]["type"] == "grafana"
    assert stored["vulnerabilitySummary"]["criticalCount"] == 1
    assert stored["infrastructureResources"][0]["type"] == "database_postgresql"
    assert stored["createdAt"].endswith("Z") and stored["updatedAt"] == stored["createdAt"]
    read = client.get(f"{API}/catalog", params={"name": "api"})
    assert read.status_code == 200 and read.json() == {"catalog": stored}


def test_a_replace_keeps_created_at_and_versions(client):
    first = put(client, entry("lib", type="package"))
    versions = client.put(
        f"{API}/catalog/lib/versions",
        json={
            "available_versions": ["1.0.0", "1.1.0", "2.0.0"],
            "latest_version": "2.0.0",
            "reference_version": "1.1.0",
        },
    )
    assert versions.status_code == 200, versions.text
    assert versions.json()["catalog"]["referenceVersion"] == "1.1.0"
    # A replace naming other versions (or none) keeps the stored ones.
    replaced = put(client, entry("lib", type="package", owner="team-b", latest_version="9"))
    assert replaced["owner"] == "team-b"
    assert replaced["createdAt"] == first["createdAt"]
    assert replaced["availableVersions"] == ["1.0.0", "1.1.0", "2.0.0"]
    assert (replaced["latestVersion"], replaced["referenceVersion"]) == ("2.0.0", "1.1.0")
    # A new entry never takes versions from its body.
    fresh = put(client, entry("other", latest_version="3.0.0", available_versions=["3.0.0"]))
    assert fresh["latestVersion"] == "" and fresh["availableVersions"] == []


def test_dependencies_are_replaced_by_their_own_route(client):
    put(client, entry(dependencies_in=["db"]))
    answer = client.put(
        f"{API}/catalog/api/dependencies",
        json={"name": "api", "dependencies_in": ["db", "cache"], "dependencies_out": ["web"]},
    )
    assert answer.status_code == 200, answer.text
    stored = answer.json()["catalog"]
    assert stored["dependenciesIn"] == ["db", "cache"] and stored["dependenciesOut"] == ["web"]
    missing = client.put(f"{API}/catalog/nothing/dependencies", json={"dependencies_in": []})
    assert_error(missing, 404, 5, "nothing", "not found")


def test_list_answers_every_entry_by_name_unless_paged(client):
    for name in ("web", "api", "db"):
        put(client, entry(name))
    listed = client.get(f"{API}/catalogs/list").json()
    assert [c["name"] for c in listed["catalogs"]] == ["api", "db", "web"]
    assert listed["totalCount"] == 3
    page = client.get(f"{API}/catalogs/list", params={"perPage": 2, "page": 2}).json()
    assert [c["name"] for c in page["catalogs"]] == ["web"] and page["totalCount"] == 3
    # Upstream's UI asks for perPage=1000: everything.
    every = client.get(f"{API}/catalogs/list", params={"perPage": 1000}).json()
    assert len(every["catalogs"]) == 3


def test_delete_answers_the_name_then_the_entry_is_gone(client):
    put(client, entry())
    deleted = client.delete(f"{API}/catalog", params={"name": "api"})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"message": "catalog deleted", "name": "api"}
    assert_error(client.get(f"{API}/catalog", params={"name": "api"}), 404, 5, "api")
    assert_error(client.delete(f"{API}/catalog", params={"name": "api"}), 404, 5, "api")
    assert client.get(f"{API}/catalogs/list").json() == {"catalogs": [], "totalCount": 0}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"owner": "a", "version": "1"}, "name is required"),
        ({"name": "api", "version": "1"}, "owner is required"),
        ({"name": "api", "owner": "a"}, "version is required"),
        (entry(link="javascript:alert(1)"), "link"),
        (entry(repository="ftp://example.com/x"), "repository"),
        (
            entry(dashboard_links=[{"name": "x", "url": "javascript:alert(1)"}]),
            "dashboardLinks[0].url",
        ),
        (
            entry(communication_channels=[{"type": "slack", "url": "data:text/html,x"}]),
            "communicationChannels[0].url",
        ),
        (entry(type="spaceship"), "catalog type"),
        (entry(languages=14), "language"),  # upstream's proto has no 14 (groovy is 15)
        (entry(sla={"level": "high", "uptime_percentage": 101}), "uptime_percentage"),
        (entry(dependencies_in=["x"] * 101), "dependencies_in has 101 items"),
    ],
)
def test_a_bad_entry_is_a_400_saying_what_to_fix(client, body, fragment):
    response = client.put(f"{API}/catalog", json=body)
    assert_error(response, 400, 3, fragment)
    assert client.get(f"{API}/catalogs/list").json()["totalCount"] == 0


def test_enums_are_read_by_name_or_number(client):
    by_number = put(client, entry("a", type=6, languages=15, platform=2, sla={"level": 1}))
    assert (by_number["type"], by_number["languages"], by_number["platform"]) == (
        "package",
        "groovy",
        "lambda",
    )
    assert by_number["sla"]["level"] == "critical"
    by_name = put(client, entry("b", type="chart", languages="Python"))
    assert (by_name["type"], by_name["languages"]) == ("chart", "python")


def test_get_without_a_name_is_a_400(client):
    assert_error(client.get(f"{API}/catalog"), 400, 3, "name")


def test_version_compliance_follows_upstream(client):
    for name, kind in (("lib", "package"), ("chart-x", "chart"), ("img", "container")):
        put(client, entry(name, type=kind))
    client.put(
        f"{API}/catalog/lib/versions",
        json={"latest_version": "2.0.0", "reference_version": "1.5.0"},
    ).raise_for_status()
    client.put(
        f"{API}/catalog/chart-x/versions",
        json={"latest_version": "3.0.0", "reference_version": "3.0.0"},
    ).raise_for_status()
    uses = [
        {"name": "lib", "type": "package", "version_used": "1.5.0"},
        {"name": "chart-x", "type": "chart", "version_used": "2.0.0"},
        {"name": "img", "type": "container", "version_used": "7"},  # no reference: not outdated
        {"name": "unknown", "type": "package", "version_used": "1"},  # not in the catalog
    ]
    put(client, entry("shop", used_deliverables=uses))
    put(client, entry("blog", used_deliverables=uses[:1]))
    put(client, entry("bare"))  # a project using nothing is not counted

    report = client.get(f"{API}/catalog/version-compliance").json()
    projects = {p["projectName"]: p for p in report["projects"]}
    assert set(projects) == {"shop", "blog"}
    shop = projects["shop"]
    assert (shop["outdatedCount"], shop["totalCount"]) == (1, 3)
    assert shop["compliancePercentage"] == pytest.approx(66.67)
    usage = {d["name"]: d for d in shop["deliverables"]}
    assert usage["chart-x"]["isOutdated"] is True and usage["chart-x"]["isLatest"] is False
    assert usage["lib"] == {
        "name": "lib",
        "type": "package",
        "currentVersion": "1.5.0",
        "latestVersion": "2.0.0",
        "referenceVersion": "1.5.0",
        "isOutdated": False,
        "isLatest": False,
    }
    summary = report["summary"]
    assert (summary["totalProjects"], summary["compliantProjects"]) == (2, 1)
    assert summary["nonCompliantProjects"] == 1
    assert summary["overallCompliancePercentage"] == 50.0
    stats = {s["name"]: s for s in summary["deliverableStats"]}
    assert (stats["lib"]["projectsUsing"], stats["lib"]["projectsOutdated"]) == (2, 0)
    assert (stats["chart-x"]["projectsUsing"], stats["chart-x"]["projectsOutdated"]) == (1, 1)

    charts_only = client.get(
        f"{API}/catalog/version-compliance", params=[("types", "chart"), ("types", "5")]
    ).json()
    assert [d["name"] for d in charts_only["projects"][0]["deliverables"]] == ["chart-x"]
    assert_error(
        client.get(f"{API}/catalog/version-compliance", params={"types": "boat"}), 400, 3, "types"
    )


def test_writes_need_a_token_for_the_service_or_an_admin(make_client):
    secured = make_client(auth=True, admin_token="admin-secret")

    def token(**body: Any) -> dict[str, str]:
        made = secured.post(f"{API}/tokens", json={"name": "ci"} | body, headers=ADMIN)
        assert made.status_code == 201, made.text
        return {"Authorization": f"Bearer {made.json()['secret']}"}

    api_token = token(services=["api"])
    assert_error(secured.put(f"{API}/catalog", json=entry()), 401, 16)
    put(secured, entry(), api_token)
    assert_error(secured.put(f"{API}/catalog", json=entry("web"), headers=api_token), 403, 7)
    put(secured, entry("web"), ADMIN)
    for response in (
        secured.put(f"{API}/catalog/web/versions", json={}, headers=api_token),
        secured.put(f"{API}/catalog/web/dependencies", json={}, headers=api_token),
        secured.delete(f"{API}/catalog", params={"name": "web"}, headers=api_token),
    ):
        assert_error(response, 403, 7, "'web'")
    # Reads stay open (public reads), as for events.
    assert secured.get(f"{API}/catalogs/list").json()["totalCount"] == 2
    deleted = secured.delete(f"{API}/catalog", params={"name": "api"}, headers=api_token)
    assert deleted.status_code == 200, deleted.text


def test_puts_racing_to_create_one_name_all_succeed_and_leave_one_entry(client):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    racers = 8
    barrier = threading.Barrier(racers)

    def one(n: int) -> Any:
        barrier.wait(timeout=30)
        return client.put(f"{API}/catalog", json=entry("raced", owner=f"team-{n}"))

    with ThreadPoolExecutor(racers) as pool:
        answers = list(pool.map(one, range(racers)))
    assert [a.status_code for a in answers] == [200] * racers, [a.text for a in answers]
    listed = client.get(f"{API}/catalogs/list").json()
    assert [c["name"] for c in listed["catalogs"]] == ["raced"]
    created = {a.json()["catalog"]["createdAt"] for a in answers}
    assert len(created) == 1  # one creation; the others replaced it
