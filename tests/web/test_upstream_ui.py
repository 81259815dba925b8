"""Upstream's own built web UI (``../shared/upstream-tracker/web-dist``) in real Chromium
against our server, served from one origin as upstream deploys it (tests/web/upstream_ui.py).
Its API calls, not its looks, are ours to satisfy: every route loads with no failing API
call, the catalog pages show what our CLI stored, Approve shows "Approved", and Insights
counts every event of its window."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.support.servers import run_server
from tests.support.waiting import eventually
from tests.web.upstream_ui import ROOT, serve_upstream_ui
from tracker_ci.cli import cli

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not ROOT.is_dir(), reason=f"upstream's built UI is absent: {ROOT}"),
]

API = "/api/v1alpha1"

BACKSTAGE = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: api
  description: The public API
  links:
    - url: https://api.example.com
      title: Home
spec:
  type: service
  lifecycle: production
  owner: team-a
  dependsOn: [component:db]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: db
spec:
  type: service
  lifecycle: production
  owner: team-b
"""

#: Every route of upstream's UI worth visiting (its README), ``{event}`` an event's id.
ROUTES = [
    "/dashboard",
    "/events/timeline",
    "/events/streamline",
    "/events/calendar",
    "/events/overlaps",
    "/events/create",
    "/events/{event}",
    "/catalog",
    "/catalog/create",
    "/catalog/api",
    "/catalog/api/events",
    "/catalog/dependencies",
    "/catalog/version-compliance",
    "/catalog/edit/api",
    "/drifts",
    "/rpa",
    "/locks",
    "/locks/create",
    "/insights",
]


def _cli(url: str, *args: str) -> None:
    result = CliRunner().invoke(cli, ["--url", url, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _seed(url: str, folder: Path) -> dict[str, str]:
    """The catalog through our CLI (a Backstage import, versions), events through the API."""
    info = folder / "catalog-info.yaml"
    info.write_text(BACKSTAGE, encoding="utf-8")
    _cli(url, "catalog", "import", str(info), "--version", "1.0")
    _cli(url, "catalog", "set", "base-image", "--owner", "platform", "--version", "2",
         "--type", "container", "--reference-version", "2", "--latest-version", "2")  # fmt: skip
    with httpx.Client(base_url=url) as http:
        project = http.get(f"{API}/catalog", params={"name": "api"}).json()["catalog"]
        project["usedDeliverables"] = [
            {"name": "base-image", "type": "container", "version_used": "1"}
        ]
        http.put(f"{API}/catalog", json=project).raise_for_status()
        now = datetime.now(UTC)

        def event(title: str, **attributes: Any) -> dict[str, Any]:
            base = {"type": "deployment", "status": "success", "service": "api", "owner": "alice"}
            base |= {"environment": "production", "priority": "P3", "source": "ci"}
            return {"title": title, "attributes": base | attributes, "links": {}}

        # 60 deployments in the last 30 days: Insights must count them all (it counted 50).
        items = [
            event(f"deploy {n}", startDate=(now - timedelta(hours=5 * n)).isoformat())
            for n in range(60)
        ]
        http.post(f"{API}/events/batch", json={"events": items}).raise_for_status()
        waiting = event("needs approval", status="waiting_approval", environment="UAT")
        waiting["attributes"]["startDate"] = now.isoformat()
        answer = http.post(f"{API}/event", json=waiting)
        answer.raise_for_status()
        return {"event": answer.json()["event"]["metadata"]["id"]}


@pytest.fixture(scope="module")
def upstream_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The UI's origin, in front of a server of our own with the seeded catalog and events."""
    folder = tmp_path_factory.mktemp("upstream-ui")
    with run_server(
        f"sqlite:///{folder / 'tracker.db'}", log_dir=folder, extra_args=["--log-level", "warning"]
    ) as server:
        seeded = _seed(server.url, folder)
        with serve_upstream_ui(server.url) as origin:
            yield origin, seeded


class UiPage:
    """A page of the UI with its API answers recorded; other hosts (CDN fonts) blocked."""

    def __init__(self, browser: Any, origin: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith(origin) else route.abort()
            ),
        )
        self.origin = origin
        self.page = self.context.new_page()
        self.calls: list[tuple[int | str, str, str]] = []
        self.errors: list[str] = []
        self.page.on("response", self._answered)
        self.page.on("requestfailed", self._failed)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _answered(self, response: Any) -> None:
        if f"{API}/" in response.url:
            path = response.url.split(API, 1)[1]
            self.calls.append((response.status, response.request.method, path))

    def _failed(self, request: Any) -> None:
        if f"{API}/" in request.url:
            self.calls.append((str(request.failure), request.method, request.url))

    def open(self, path: str) -> str:
        """Go to ``path``, wait for its API calls; the text of its main content. The UI's
        script may start asking only after the network was idle once (a loaded machine
        runs it slowly): wait for its first API answer, then for the network to settle."""
        before = len(self.calls)
        self.page.goto(self.origin + path)
        deadline = time.monotonic() + 20
        while len(self.calls) == before and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)  # lets the page's events arrive
        self.page.wait_for_load_state("networkidle", timeout=20_000)
        main = self.page.query_selector("main")
        return str(main.inner_text() if main else self.page.inner_text("body"))

    def failing(self) -> list[tuple[int | str, str, str]]:
        """The API calls that failed: an error status, or no answer. A request the browser
        itself cancelled (the UI navigated away after a save: ``net::ERR_ABORTED``) is not
        a failure of the server."""
        return [
            call
            for call in self.calls
            if (isinstance(call[0], int) and call[0] >= 400)
            or (not isinstance(call[0], int) and "ERR_ABORTED" not in call[0])
        ]

    def close(self) -> None:
        self.page.remove_listener("requestfailed", self._failed)
        self.context.close()


@pytest.fixture
def ui(browser: Any, upstream_ui: tuple[str, dict[str, str]]) -> Iterator[UiPage]:
    page = UiPage(browser, upstream_ui[0])
    yield page
    page.close()


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_loads_with_no_failing_api_call(ui, upstream_ui, route):
    ui.open(route.format(**upstream_ui[1]))
    assert ui.calls, "the page asked nothing of the API"
    assert ui.failing() == [], ui.calls
    assert ui.errors == []


def test_the_catalog_pages_show_what_our_cli_stored(ui):
    listed = ui.open("/catalog")
    for shown in ("api", "db", "base-image", "team-a", "team-b", "platform"):
        assert shown in listed, listed
    entry = ui.open("/catalog/api")
    assert "team-a" in entry and "db" in entry, entry  # its owner and what it depends on
    dependencies = ui.open("/catalog/dependencies")
    assert "api" in dependencies and "db" in dependencies, dependencies
    compliance = ui.open("/catalog/version-compliance")
    assert "api" in compliance and "Non-Compliant" in compliance, compliance
    ui.open("/catalog/edit/api")
    assert ui.page.locator("input[value='team-a']").count() == 1
    assert ui.failing() == []


def test_approve_shows_approved(ui):
    ui.open("/events/timeline")
    ui.page.get_by_text("needs approval").first.click()
    ui.page.get_by_role("button", name="Approve").first.click()
    ui.page.get_by_placeholder("e.g., john.doe").fill("bob")
    ui.page.get_by_role("button", name="Approve").last.click()
    ui.page.get_by_role("button", name="Approved").first.wait_for(timeout=10_000)
    assert ("PUT", "/event") in [(method, path) for _, method, path in ui.calls]
    assert ui.failing() == []


def test_insights_count_every_event_of_the_window(ui):
    ui.open("/insights")

    def deployments_counted() -> bool:
        text = ui.page.inner_text("main")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        assert "DEPLOYMENTS" in lines, lines[:40]
        assert lines[lines.index("DEPLOYMENTS") + 1] == "61", lines[:40]  # 60 + the waiting one
        return True

    eventually(deployments_counted)


def test_a_service_created_and_edited_in_the_ui_is_stored(ui, upstream_ui):
    ui.open("/catalog/create")
    ui.page.get_by_placeholder("e.g., auth-service, payment-api").fill("made-in-ui")
    ui.page.get_by_placeholder("e.g., team-backend, john.doe").fill("team-ui")
    ui.page.get_by_placeholder("e.g., v1.2.3, 2.0.0").fill("0.1.0")
    ui.page.get_by_role("button", name="Create Service").click()
    ui.page.wait_for_url("**/catalog", timeout=10_000)
    backend = upstream_ui[0]  # the UI's origin passes /api/v1alpha1 to our server
    stored = httpx.get(f"{backend}{API}/catalog", params={"name": "made-in-ui"}).json()
    assert stored["catalog"]["owner"] == "team-ui" and stored["catalog"]["version"] == "0.1.0"

    ui.open("/catalog/edit/made-in-ui")
    ui.page.locator("textarea").first.fill("edited in upstream's UI")
    ui.page.get_by_role("button", name="Update Service").click()

    def edited() -> dict[str, Any]:
        entry = httpx.get(f"{backend}{API}/catalog", params={"name": "made-in-ui"}).json()
        assert entry["catalog"]["description"] == "edited in upstream's UI", entry
        return entry

    entry = eventually(edited)
    assert entry["catalog"]["createdAt"] == stored["catalog"]["createdAt"]
    assert ui.failing() == []
