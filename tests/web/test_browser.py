"""The pages in Chromium, on what issue 25 found wrong: a custom environment switching back
after Show, live updates refetching in a loop while a field has focus, pages wider than a
phone. Screenshots go to /tmp/tracker-pages/ (look at them)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.waiting import eventually
from tests.web.seed import deployment

pytestmark = pytest.mark.e2e

SHOTS = Path("/tmp/tracker-pages")
PHONE = {"width": 390, "height": 844}


def _clean(watched: Any, server: Any) -> None:
    outside = [u for u in watched.requests if not u.startswith(server.url)]
    assert outside == [], f"requests leaving the server: {outside}"
    assert watched.errors == [], f"console errors: {watched.errors}"


def test_a_custom_environment_stays_selected_after_show(web_server, open_page):
    now = datetime.now(UTC)
    with httpx.Client(base_url=web_server.url) as http:
        for hours in (30, 20, 10):
            deployment(
                http,
                service="api",
                environment="staging",
                status="success",
                end=now - timedelta(hours=hours),
            )
    watched = open_page()
    page = watched.page
    page.goto(web_server.url + "/insights?service=api")
    environment = page.locator("select[name=environment]")
    assert environment.input_value() == "production"
    environment.select_option("staging")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*environment=staging.*"))
    assert page.locator("select[name=environment]").input_value() == "staging"
    shown = page.locator("[data-key=deployments]").get_attribute("data-value")
    assert shown == "3"
    assert "api in staging" in page.inner_text("main")
    # The timeline too.
    page.goto(web_server.url + "/timeline")
    page.locator("select[name=environment]").select_option("staging")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*environment=staging.*"))
    assert page.locator("select[name=environment]").input_value() == "staging"
    _clean(watched, web_server)


def test_with_focus_in_a_field_updates_are_counted_not_fetched(web_server, open_page):
    watched = open_page()
    page = watched.page
    page.goto(web_server.url + "/timeline")
    page.wait_for_function("() => !!document.body.dataset.live")
    fetched: list[str] = []
    page.on(
        "request",
        lambda request: fetched.append(request.url) if "/timeline" in request.url else None,
    )
    page.locator("select[name=service]").focus()
    with httpx.Client(base_url=web_server.url) as http:
        for number in range(3):
            deployment(
                http,
                service="billing",
                environment="production",
                status="success",
                title=f"Held back {number}",
            )
    notice = page.locator("#live-refresh")
    notice.wait_for(timeout=15_000)

    def counted() -> int:
        found = re.fullmatch(r"(\d+) updates?, refresh", notice.inner_text())
        assert found, notice.inner_text()
        count = int(found.group(1))
        assert count >= 3, count
        return count

    eventually(counted, timeout=15)
    # Nothing was fetched while the field had focus, and the field still has it.
    assert fetched == []
    assert page.evaluate("() => document.activeElement.name") == "service"
    assert page.get_by_text("Held back 2").count() == 0
    notice.click()
    page.get_by_role("link", name="Held back 2").wait_for(timeout=15_000)
    assert page.locator("#live-refresh").count() == 0
    assert len(fetched) == 1
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
    _clean(watched, web_server)


def test_focus_leaving_an_untouched_form_catches_up(web_server, open_page):
    watched = open_page()
    page = watched.page
    page.goto(web_server.url + "/timeline")
    page.wait_for_function("() => !!document.body.dataset.live")
    page.locator("select[name=type]").focus()
    with httpx.Client(base_url=web_server.url) as http:
        deployment(
            http, service="billing", environment="production", status="success", title="Later"
        )
    page.locator("#live-refresh").wait_for(timeout=15_000)
    page.locator("h1").click()  # focus leaves the form, which nobody changed
    page.get_by_role("link", name="Later").first.wait_for(timeout=15_000)
    _clean(watched, web_server)


def _pages(server: Any) -> list[str]:
    event_id = server.seeded["running"]["metadata"]["id"]
    lock_id = server.seeded["lock"]["id"]
    return [
        "/",
        "/timeline",
        "/locks",
        "/freezes",
        "/insights",
        "/lanes",
        "/lanes?span=week",
        "/calendar",
        f"/events/{event_id}",
        f"/locks/{lock_id}/release",
    ]


def _name(path: str) -> str:
    """``board``, ``locks``, ``events``, ``locks-release``: a screenshot's name."""
    path, _, query = path.partition("?")
    parts = [p for p in path.strip("/").split("/") if len(p) < 20]
    parts += [value for _, _, value in (pair.partition("=") for pair in query.split("&") if pair)]
    return "-".join(parts) or "board"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_a_phone(web_server, open_page, scheme):
    watched = open_page(viewport=PHONE, color_scheme=scheme, device_scale_factor=1)
    page = watched.page
    SHOTS.mkdir(parents=True, exist_ok=True)
    wide = {}
    for path in _pages(web_server):
        page.goto(web_server.url + path)
        page.screenshot(path=str(SHOTS / f"{_name(path)}-{scheme}-390.png"), full_page=True)
        page.screenshot(path=str(SHOTS / f"{_name(path)}-{scheme}-390-first-screen.png"))
        width = page.evaluate("() => document.scrollingElement.scrollWidth")
        if width > PHONE["width"]:
            wide[path] = width
    assert wide == {}, f"pages wider than {PHONE['width']} px: {wide}"
    _clean(watched, web_server)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_at_desktop_width(web_server, open_page, scheme):
    watched = open_page(viewport={"width": 1440, "height": 900}, color_scheme=scheme)
    page = watched.page
    SHOTS.mkdir(parents=True, exist_ok=True)
    for path in _pages(web_server):
        page.goto(web_server.url + path)
        page.screenshot(path=str(SHOTS / f"{_name(path)}-{scheme}-1440.png"), full_page=True)
        assert page.evaluate("() => document.scrollingElement.scrollWidth") <= 1440, path
    _clean(watched, web_server)
