"""The forms in Chromium against the real server (a process of its own, auth off): a
release asks first, its confirmation page carries the CSRF token, the browser's
same-origin post goes through, and the Content-Security-Policy blocks nothing we ship
(a violation is a console error). Screenshots go to /tmp for a person to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

SHOTS = Path("/tmp")


def _clean(watched: Any, server: Any) -> None:
    outside = [u for u in watched.requests if not u.startswith(server.url)]
    assert outside == [], f"requests leaving the server: {outside}"
    assert watched.errors == [], f"console errors (a CSP violation is one): {watched.errors}"


def test_release_a_lock_through_its_confirmation_page(web_server, open_page):
    key = {"service": "ops", "environment": "mco", "resource": "deployment", "who": "heidi"}
    with httpx.Client(base_url=web_server.url + "/api/v1alpha1") as http:
        lock = http.post("/lock", json=key | {"reason": "stuck job"}).json()["lock"]
    watched = open_page(viewport={"width": 1200, "height": 800})
    page = watched.page
    page.goto(web_server.url + "/locks")
    row = page.locator("tbody tr", has_text="heidi")
    page.screenshot(path=str(SHOTS / "tracker-locks.png"), full_page=True)
    row.get_by_role("link", name="Release the lock of ops in mco").click()
    page.wait_for_url(f"**/locks/{lock['id']}/release")
    assert "Release the lock of ops in mco?" in page.inner_text("h1")
    page.screenshot(path=str(SHOTS / "tracker-confirm-release.png"), full_page=True)
    page.get_by_role("button", name="Release the lock").click()
    page.wait_for_url("**/locks?message=*")
    assert "lock released" in page.inner_text("main")
    assert page.locator("tbody tr", has_text="heidi").count() == 0
    with httpx.Client(base_url=web_server.url + "/api/v1alpha1") as http:
        assert http.get(f"/lock/{lock['id']}").status_code == 404
    _clean(watched, web_server)


def test_the_confirmation_works_without_javascript(web_server, open_page):
    key = {"service": "ops", "environment": "sbx", "resource": "deployment", "who": "frank"}
    with httpx.Client(base_url=web_server.url + "/api/v1alpha1") as http:
        lock = http.post("/lock", json=key).json()["lock"]
    page = open_page(java_script_enabled=False).page
    page.goto(f"{web_server.url}/locks/{lock['id']}/release")
    page.get_by_role("button", name="Release the lock").click()
    page.wait_for_url("**/locks?message=*")
    assert "lock released" in page.inner_text("main")


def test_a_page_of_another_site_cannot_post_a_form(web_server, open_page):
    """A form on another origin posting to ours: Chromium sends Origin and Sec-Fetch-Site."""
    key = {"service": "ops", "environment": "dev", "resource": "deployment", "who": "gina"}
    with httpx.Client(base_url=web_server.url + "/api/v1alpha1") as http:
        lock = http.post("/lock", json=key).json()["lock"]
    page = open_page().page
    action = f"{web_server.url}/locks/{lock['id']}/release"
    evil = (
        f'<!doctype html><form method="post" action="{action}">'
        '<input name="confirm" value="yes"><button type="submit">go</button></form>'
    )
    # The other site is served by Playwright itself (nothing leaves the machine).
    page.route(
        "http://evil.example/", lambda route: route.fulfill(body=evil, content_type="text/html")
    )
    page.goto("http://evil.example/")
    with page.expect_response(action) as answer:
        page.click("button")
    assert answer.value.status == 403
    with httpx.Client(base_url=web_server.url + "/api/v1alpha1") as http:
        assert http.get(f"/lock/{lock['id']}").status_code == 200
