"""The catalog on our pages (issue 24, part 2): service pickers from the catalog and the
events, the service card on the board and the event page (http(s) links only, hostile
text escaped), the blast radius and what else deployed in the hour before. In-process on
both backends, then in Chromium at desktop and phone widths (screenshots in
/tmp/tracker-pages/, look at them)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import update
from tracker_server import statistics
from tracker_server.clock import ManualClock
from tracker_server.store import events as event_store
from tracker_server.tables import catalog
from tracker_server.web import catalog_view

from tests.server.helpers import API, create_event
from tests.web.conftest import AXE
from tests.web.seed import deployment

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SHOTS = Path("/tmp/tracker-pages")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
API_ENTRY = {
    "name": "api",
    "owner": "team-payments",
    "version": "2.4.0",
    "type": "project",
    "lifecycle": "production",
    "description": "The public API",
    "link": "https://api.example.com",
    "repository": "https://github.com/acme/api",
    "dependencies_in": ["db", "auth"],
    "dependencies_out": ["web"],
    "dashboard_links": [
        {"type": "grafana", "name": "API RED", "url": "https://grafana.example.com/d/api"},
        {"type": "datadog", "name": "", "url": "https://app.datadoghq.com/dash/1"},
    ],
    "communication_channels": [
        {"type": "slack", "name": "#api-deploys", "url": "https://acme.slack.com/archives/C1"}
    ],
}


def put(client: Any, body: dict[str, Any]) -> None:
    response = client.put(f"{API}/catalog", json=body)
    assert response.status_code == 200, response.text


def section(page: str, heading_id: str) -> str:
    """The HTML of the section labelled by ``heading_id``."""
    found = re.search(rf'<section aria-labelledby="{heading_id}">(.*?)</section>', page, re.S)
    assert found, heading_id
    return found.group(1)


def text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, spaces collapsed."""
    spaced = re.sub(r"</?(?:h2|dl|dt|dd|p|tr|td|th|li)\b[^>]*>", " ", fragment)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", spaced)).split())


def select(page: str, name: str) -> str:
    found = re.search(rf'<select name="{name}">(.*?)</select>', page, re.S)
    assert found, name
    return found.group(1)


def options(picker: str) -> list[tuple[str, str, str, bool]]:
    """(group, value, label, selected) of every option of a select's HTML."""
    found = []
    group = ""
    for tag in re.finditer(
        r'<optgroup label="([^"]*)">|</optgroup>|<option([^>]*)>([^<]*)</option>', picker
    ):
        if tag.group(0).startswith("<optgroup"):
            group = html.unescape(tag.group(1))
        elif tag.group(0) == "</optgroup>":
            group = ""
        else:
            value = re.search(r'value="([^"]*)"', tag.group(2))
            label = html.unescape(tag.group(3))
            found.append(
                (group, value.group(1) if value else label, label, "selected" in tag.group(2))
            )
    return found


# ------------------------------------------------------------------ in-process
@pytest.mark.server
def test_pickers_list_catalog_services_then_the_unlisted_ones_marked(client):
    create_event(client, "deploy api", service="api")
    create_event(client, "deploy legacy", service="legacy-batch")
    plain = select(client.get("/timeline").text, "service")
    # An empty catalog: a plain list, nothing marked.
    assert "optgroup" not in plain and "no catalog entry" not in plain
    put(client, API_ENTRY)
    put(client, API_ENTRY | {"name": "aaa-billing", "dependencies_in": [], "dependencies_out": []})
    timeline = select(client.get("/timeline?service=legacy-batch").text, "service")
    assert options(timeline) == [
        ("", "", "any", False),
        ("In the catalog", "aaa-billing", "aaa-billing", False),
        ("In the catalog", "api", "api", False),
        (
            "Seen in events, no catalog entry",
            "legacy-batch",
            "legacy-batch (no catalog entry)",
            True,
        ),
    ]
    # Insights picks a service with events by default (aaa-billing has none yet).
    insights = client.get("/insights").text
    assert ("In the catalog", "api", "api", True) in options(select(insights, "service"))
    # A service named in the address but known nowhere stays selected.
    other = select(client.get("/timeline?service=ghost").text, "service")
    ghost = ("Seen in events, no catalog entry", "ghost", "ghost (no catalog entry)", True)
    assert ghost in options(other)
    # The time-axis views list the same choices.
    for path in ("/lanes?service=legacy-batch", "/calendar?service=legacy-batch"):
        assert options(select(client.get(path).text, "service")) == options(timeline), path


@pytest.mark.server
def test_the_board_shows_owner_dashboards_links_and_channel(client):
    create_event(client, "deploy api", service="api")
    create_event(client, "deploy web", service="web", status="start")
    put(client, API_ENTRY | {"owner": "<script>alert(1)</script> & co"})
    board = client.get("/").text
    latest = section(board, "latest-h")
    card = re.search(r'<span class="service-brief meta" data-service-card="api">.*?</span>', latest)
    assert card, latest
    assert card.group(0) == (
        '<span class="service-brief meta" data-service-card="api"><br>owned by '
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"
        ' · <a href="https://grafana.example.com/d/api" rel="noreferrer">API RED</a>'
        ' · <a href="https://app.datadoghq.com/dash/1" rel="noreferrer">Datadog</a>'
        ' · <a href="https://api.example.com" rel="noreferrer">Home</a>'
        ' · <a href="https://github.com/acme/api" rel="noreferrer">Repository</a>'
        ' · <a href="https://acme.slack.com/archives/C1" rel="noreferrer">#api-deploys</a>'
        "</span>"
    )
    assert "<script>alert" not in board
    # web has no entry: its row shows its name only.
    assert '<th scope="row">web</th>' in latest
    assert 'data-service-card="web"' not in board


@pytest.mark.server
def test_a_stored_url_that_is_not_http_is_shown_as_text(client):
    event = create_event(client, "deploy api", service="api")
    put(client, API_ENTRY)
    # As an entry imported from an older server might hold it (the API refuses it now).
    hostile = dict(API_ENTRY)
    stored = client.get(f"{API}/catalog", params={"name": "api"}).json()["catalog"]
    stored["dashboardLinks"][0]["url"] = "javascript:alert(document.cookie)"
    stored["link"] = 'https://ok.example/"><script>alert(2)</script>'
    stored.pop("createdAt"), stored.pop("updatedAt")
    with client.app.state.database.write() as conn:
        conn.execute(update(catalog).where(catalog.c.name == "api").values(entry=stored))
    for path in ("/", f"/events/{event['metadata']['id']}"):
        page = client.get(path).text
        assert 'href="javascript:' not in page, path
        assert "<script>alert(2)" not in page, path
        assert 'API RED <span class="unsafe-url">javascript:alert(document.cookie)</span>' in page
    assert hostile == API_ENTRY


@pytest.mark.server
def test_the_event_page_shows_the_card_the_blast_radius_and_what_deployed_before(make_client):
    clock = ManualClock(START - timedelta(minutes=70))
    client = make_client(clock=clock)
    put(client, API_ENTRY)
    put(client, {"name": "web", "owner": "team-web", "version": "1", "type": "project"})
    # mobile names api as what it depends on: it is in api's blast radius too.
    put(client, {"name": "mobile", "owner": "team-app", "version": "1", "dependencies_in": ["api"]})
    deployed: dict[str, str] = {}
    previous = 70
    for minutes, service in ((70, "web"), (50, "db"), (30, "mobile"), (20, "api"), (5, "web")):
        clock.advance(timedelta(minutes=previous - minutes))
        previous = minutes
        made = create_event(client, f"deploy {service} at -{minutes}", service=service)
        deployed[f"{service}-{minutes}"] = made["metadata"]["id"]
    create_event(client, "an incident", type="incident", status="open", service="db")
    clock.advance(timedelta(minutes=5))
    event = create_event(client, "deploy api 2.4", service="api", status="start")
    page = client.get(f"/events/{event['metadata']['id']}").text

    card = text(section(page, "service-h"))
    assert card == (
        "Service Service api (catalog entry) Owner team-payments Lifecycle production "
        "Description The public API Links Home, Repository Dashboards API RED (grafana), "
        "Datadog Channels #api-deploys (slack)"
    )
    radius = section(page, "radius-h")
    depend = re.search(r'data-radius="depend-on-it">(.*?)</dd>', radius, re.S)
    relies = re.search(r'data-radius="it-depends-on">(.*?)</dd>', radius, re.S)
    assert depend and relies
    assert text(depend.group(1)) == "mobile (team-app, entry), web (team-web, entry)"
    assert text(relies.group(1)) == "auth (no catalog entry), db (no catalog entry)"
    assert '<a href="/timeline?service=mobile">mobile</a>' in depend.group(1)
    assert '<a href="/api/v1alpha1/catalog?name=web">entry</a>' in depend.group(1)

    before = section(page, "before-h")
    rows = re.findall(r"<tr>\n(.*?)</tr>", before, re.S)
    assert [
        re.findall(r'data-label="Deployment"><a href="/events/([^"]+)"', r)[0] for r in rows
    ] == [
        deployed["web-5"],
        deployed["mobile-30"],
        deployed["db-50"],
    ]  # newest first; api's own and the one 70 minutes before are left out, and incidents
    relations = [text(re.findall(r'data-label="Dependency">(.*?)</td>', r)[0]) for r in rows]
    assert relations == ["depends on this", "depends on this", "this depends on it"]


@pytest.mark.server
def test_what_deployed_before_is_bounded_and_read_from_one_index(make_client, database_url):
    clock = ManualClock(START)
    client = make_client(clock=clock)
    for n in range(25):
        create_event(client, f"deploy svc-{n}", service=f"svc-{n}")
        create_event(client, f"incident {n}", service=f"svc-{n}", type="incident", status="open")
        clock.advance(timedelta(seconds=30))
    event = create_event(client, "deploy api", service="api", status="start")
    page = client.get(f"/events/{event['metadata']['id']}").text
    assert len(re.findall(r"<tr>\n", section(page, "before-h"))) == 20
    database = client.app.state.database
    if database.backend != "sqlite":
        return  # a plan on a table this small says nothing on PostgreSQL
    # As the server has them (ANALYZE at start and as the table grows): without statistics
    # SQLite takes every equality for selective and reads every deployment.
    statistics.refresh(database.engine)
    statements: list[tuple[str, Any]] = []
    with database.read() as conn:
        found = event_store.get_event(conn, event_id=event["metadata"]["id"])
        assert found is not None
        catch = lambda *args: statements.append((args[2], args[3]))  # noqa: E731
        sa_event.listen(conn, "before_cursor_execute", catch)
        rows = catalog_view.deployed_before(conn, found, until=START + timedelta(minutes=13))
        sa_event.remove(conn, "before_cursor_execute", catch)
        plans = [
            " ".join(
                str(row[-1])
                for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
            for statement, parameters in statements
        ]
    assert len(rows) == 20 and rows[0].service == "svc-24"
    # Two bounded ranges: startDate in the window; createdAt of those without a startDate.
    by_start, by_creation = plans
    assert "USING INDEX ix_events_start_date_created_at (start_date>? AND start_date<?)" in by_start
    # (type, createdAt) or (startDate IS NULL, createdAt): a range of createdAt either way.
    assert re.search(
        r"USING INDEX \w+ \((type|start_date)=\? AND created_at>\? AND created_at<\?\)", by_creation
    ), by_creation
    assert "TEMP B-TREE" not in by_start + by_creation, plans  # the indexes give the order


# ------------------------------------------------------------------- in Chromium
@pytest.mark.e2e
def test_the_board_and_an_event_page_read_well_with_a_catalog(web_server, open_page):
    url = web_server.url
    with httpx.Client(base_url=url, timeout=10) as http:
        for body in (
            API_ENTRY,
            {"name": "web", "owner": "team-web", "version": "3.1", "type": "project",
             "dependencies_in": ["api"],
             "dashboard_links": [{"type": "grafana", "name": "Web vitals",
                                  "url": "https://grafana.example.com/d/web"}]},
            {"name": "db", "owner": "team-data", "version": "15", "type": "project"},
        ):  # fmt: skip
            assert http.put(f"{API}/catalog", json=body).status_code == 200
        now = datetime.now(UTC)
        for service in ("db", "payments", "web"):
            deployment(http, service=service, environment="production", status="success",
                       start=now - timedelta(minutes=4), title=f"Deploy {service}")  # fmt: skip
        # The seeded running deployment holds api's production lock: this one goes to UAT.
        event = deployment(
            http, service="api", environment="UAT", status="start", title="Deploy api 2.4"
        )
    SHOTS.mkdir(exist_ok=True)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        watched = open_page(viewport=viewport, bypass_csp=True)  # axe-core is injected
        page = watched.page
        page.goto(url + "/")
        latest = page.get_by_role("region", name="Latest deployment per service and environment")
        api_row = latest.locator("tbody tr", has_text="owned by team-payments").first
        assert "API RED" in api_row.inner_text()
        page.screenshot(path=str(SHOTS / f"catalog-board-{name}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        page.goto(f"{url}/events/{event['metadata']['id']}")
        service = page.get_by_role("region", name="Service")
        assert "team-payments" in service.inner_text()
        assert service.get_by_role("link", name="API RED").get_attribute("href") == (
            "https://grafana.example.com/d/api"
        )
        radius = page.get_by_role("region", name="Blast radius").inner_text()
        assert "web (team-web" in radius and "db (team-data" in radius
        assert "auth (no catalog entry)" in radius
        before = page.get_by_role("region", name="Deployed in the hour before").inner_text()
        assert "Deploy web" in before and "Deploy payments" in before
        assert "depends on this" in before and "this depends on it" in before
        page.screenshot(path=str(SHOTS / f"catalog-event-{name}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        if AXE.exists():
            page.add_script_tag(path=str(AXE))
            serious = page.evaluate(
                """async () => (await axe.run(document)).violations
                .filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => v.id + ": " + v.nodes.map(n => n.target.join(" ")).join(", "))"""
            )
            assert serious == [], serious
        outside = [u for u in watched.requests if not u.startswith(url)]
        assert outside == [] and watched.errors == [], (outside, watched.errors)
