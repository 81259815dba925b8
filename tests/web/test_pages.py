"""Every page in Chromium: content, live updates, the event page, insights equal to the
API, nothing fetched from elsewhere, no console error, no serious axe-core violation."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from tests.conftest import RUNNING_IN_CI
from tests.web.conftest import AXE
from tests.web.seed import deployment

pytestmark = pytest.mark.e2e

PAGES = ["/", "/timeline", "/locks", "/freezes", "/insights"]
SERIOUS = """async () => (await axe.run(document)).violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => v.id + ": " + v.help + " " + v.nodes.map(n => n.target.join(" ")).join(", "))"""


def _clean(watched: Any, server: Any) -> None:
    outside = [u for u in watched.requests if not u.startswith(server.url)]
    assert outside == [], f"requests leaving the server: {outside}"
    assert watched.errors == [], f"console errors: {watched.errors}"


def test_the_board_shows_deployments_running_locks_and_freezes(web_server, open_page):
    watched = open_page()
    page = watched.page
    page.goto(web_server.url + "/")
    latest = page.get_by_role("region", name="Latest deployment per service and environment")
    rows = latest.locator("tbody tr")
    assert rows.count() == 2
    assert "api" in rows.nth(0).inner_text() and "production" in rows.nth(0).inner_text()
    assert "web" in rows.nth(1).inner_text() and "UAT" in rows.nth(1).inner_text()
    running = page.get_by_role("region", name="Running now")
    assert "Deploy api v2" in running.inner_text()
    locks = page.get_by_role("region", name="Held locks")
    assert "carol" in locks.inner_text()  # the manual lock of web in UAT
    assert "alice" in locks.inner_text()  # the running deployment's own lock
    freezes = page.get_by_role("region", name="Freezes now and within 24 h")
    if web_server.seeded["freeze"] is not None:
        assert "Year-end freeze" in freezes.inner_text()
    _clean(watched, web_server)


def test_a_new_deployment_appears_without_a_reload(web_server, open_page):
    watched = open_page()
    page = watched.page
    page.goto(web_server.url + "/")
    page.wait_for_function("() => !!document.body.dataset.live")
    # The page's stream is open once the server has answered it.
    page.wait_for_timeout(0)
    started = time.monotonic()
    with httpx.Client(base_url=web_server.url) as http:
        deployment(
            http, service="billing", environment="production", status="success", title="Live one"
        )
    page.get_by_role("link", name="Live one").wait_for(timeout=15_000)
    elapsed = time.monotonic() - started
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
    print(f"live update shown after {elapsed:.2f} s")
    _clean(watched, web_server)


def test_the_event_page_shows_changes_links_and_changelog(web_server, open_page):
    watched = open_page()
    page = watched.page
    page.goto(web_server.url + "/timeline?service=api&status=success")
    page.get_by_role("link", name="Fix forward api").first.click()
    page.wait_for_url("**/events/*")
    assert page.get_by_role("heading", level=1).inner_text() == "Fix forward api"
    shipped = page.get_by_role("region", name="Changes shipped")
    assert re.search(r"pull request \d+", shipped.inner_text())
    assert page.get_by_role("region", name="Changelog").locator("tbody tr").count() >= 1
    _clean(watched, web_server)


def test_insights_show_the_numbers_of_the_api(web_server, open_page):
    watched = open_page()
    page = watched.page
    page.goto(web_server.url + "/insights?service=api&environment=production")
    start = page.locator("input[name=start_date]").input_value()
    end = page.locator("input[name=end_date]").input_value()
    api = httpx.get(
        web_server.url + "/api/v1alpha1/insights/dora",
        params={
            "service": "api",
            "environment": "production",
            "start_date": start,
            "end_date": end,
        },
    ).json()

    def shown(key: str) -> str:
        return page.locator(f"[data-key={key}]").get_attribute("data-value") or ""

    assert int(shown("deployments")) == api["deployments"] > 0
    assert float(shown("deploymentsPerDay")) == pytest.approx(api["deploymentsPerDay"], rel=1e-3)
    assert float(shown("changeFailureRate")) == api["changeFailureRate"]
    assert float(shown("leadTimeP50")) == pytest.approx(api["leadTimeSeconds"]["p50"])
    assert float(shown("recoveryTimeP50")) == pytest.approx(api["recoveryTimeSeconds"]["p50"])
    assert shown("level") == api["level"]
    for name in (
        "Deployment frequency",
        "Lead time for changes",
        "Change failure rate",
        "Failed deployment recovery time",
    ):
        assert page.get_by_text(name, exact=True).count() == 1
    assert page.locator("figure.chart svg rect").count() > 0
    _clean(watched, web_server)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violation(web_server, open_page, scheme):
    if not AXE.exists():
        if RUNNING_IN_CI:
            pytest.fail("axe-core is required under CI=true: bash scripts/bootstrap.sh")
        pytest.skip("axe-core is not installed: `bash scripts/bootstrap.sh --with-test-tools`")
    # axe-core is injected as an inline script, which the pages' CSP forbids (rightly).
    watched = open_page(color_scheme=scheme, bypass_csp=True)
    page = watched.page
    event_id = web_server.seeded["running"]["metadata"]["id"]
    lock_id = web_server.seeded["lock"]["id"]
    for path in [*PAGES, f"/events/{event_id}", f"/locks/{lock_id}/release"]:
        page.goto(web_server.url + path)
        page.add_script_tag(path=str(AXE))
        assert page.evaluate(SERIOUS) == [], path
    _clean(watched, web_server)


def test_pages_read_without_javascript(web_server, open_page):
    watched = open_page(java_script_enabled=False)
    page = watched.page
    page.goto(web_server.url + "/")
    assert "Deploy api v2" in page.inner_text("main")
    page.goto(web_server.url + "/insights")
    assert page.locator("[data-key=deployments]").inner_text().strip() != ""


def test_keyboard_reaches_the_content_first(web_server, open_page):
    page = open_page().page
    page.goto(web_server.url + "/")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.closest('main') !== null")


def test_a_lock_taken_and_released_shows_live_on_the_locks_page(web_server, open_page):
    watched = open_page()
    page = watched.page
    page.goto(web_server.url + "/locks")
    key = {"service": "ops", "environment": "mco", "resource": "deployment", "who": "erin"}
    with httpx.Client(base_url=web_server.url + "/api/v1alpha1") as http:
        lock = http.post("/lock", json=key).json()["lock"]
        row = page.locator("tbody tr", has_text="erin")
        row.wait_for(timeout=15_000)
        http.delete(f"/lock/{lock['id']}").raise_for_status()
    row.wait_for(state="detached", timeout=15_000)
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
    _clean(watched, web_server)
