"""Issue 24 part 3, the dashboard's Approve button: an event waiting for approval has an
Approve form (optional comment; with auth on, the token field names the approver) and a
Reject that asks first, both through ``operations.decide_approval`` as POST
/api/v1alpha1/event/{id}/approve|reject: no self-approval with auth on, the API's refusals
in its words, CSRF and cross-site checks as every form; the page then says "Approved by".
End to end: a `tracker-ci deploy start --require-approval` waiting on the real server goes
on once the page's Approve is pressed in Chromium (390x844, both themes)."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.server.helpers import API, create_event, event_body
from tests.support.waiting import eventually
from tests.web.forms import csrf_token, post_form
from tracker_ci.client import TrackerClient
from tracker_ci.models import Status, UpdateEventRequest

ADMIN = "trk_admin_for_the_approve_page_tests_0123456"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


def _text(page: str) -> str:
    found = re.search(r"<main.*?</main>", page, re.S)
    assert found, page
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", found.group(0))))


class Gate:
    """An app with auth on, a requester's token (``ci``) and a reviewer's."""

    def __init__(self, make_client: Any) -> None:
        self.client = make_client(auth=True, admin_token=ADMIN)
        self.secrets = {}
        for name in ("ci", "reviewer"):
            made = self.client.post(f"{API}/tokens", json={"name": name}, headers=ADMIN_HEADERS)
            assert made.status_code == 201, made.text
            self.secrets[name] = made.json()["secret"]

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[name]}"}

    def waiting(self) -> str:
        body = event_body(status="waiting_approval")
        opened = self.client.post(f"{API}/event", json=body, headers=self.headers("ci"))
        assert opened.status_code == 200, opened.text
        return str(opened.json()["event"]["metadata"]["id"])

    def status(self, event_id: str) -> str:
        return str(
            self.client.get(f"{API}/event/{event_id}").json()["event"]["attributes"]["status"]
        )

    def form(self, path: str, name: str, data: dict[str, str] | None = None, **kw: Any) -> Any:
        fields = {"token": self.secrets[name] if name else "", **(data or {})}
        return post_form(self.client, path, fields, **kw)


def test_another_token_approves_on_the_page_and_the_requester_may_not(make_client):
    gate = Gate(make_client)
    event_id = gate.waiting()
    shown = gate.client.get(f"/events/{event_id}").text
    assert f'action="/events/{event_id}/approve"' in shown
    assert f'href="/events/{event_id}/reject"' in shown
    assert "Waits for an approval, asked by ci" in _text(shown)
    assert shown.count('name="token"') == 1 and 'name="comment"' in shown
    session = gate.client.cookies["tracker_csrf"]
    assert f'name="csrf_token" value="{session}"' in shown
    # The requester: refused on the page in the API's words, with the API's status.
    path = f"{API}/event/{event_id}/approve"
    by_api = gate.client.post(path, json={}, headers=gate.headers("ci"))
    own = gate.form(f"/events/{event_id}/approve", "ci", {"comment": "mine"}, confirm=False)
    assert own.status_code == by_api.status_code == 403
    assert by_api.json()["message"] in _text(own.text) and "Not approved" in _text(own.text)
    nobody = gate.form(f"/events/{event_id}/approve", "", confirm=False)
    assert nobody.status_code == 401 and "fill in the Token field" in nobody.text
    assert gate.status(event_id) == "waiting_approval"
    # Another token approves: back to the event, which says who approved and why.
    done = gate.form(f"/events/{event_id}/approve", "reviewer", {"comment": "LGTM"}, confirm=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/events/{event_id}#approval"
    assert gate.status(event_id) == "open"
    after = gate.client.get(f"/events/{event_id}").text
    assert re.search(r"Approved by reviewer \d{4}-\d\d-\d\d [\d:]+ UTC now : “LGTM”", _text(after))
    assert f'action="/events/{event_id}/approve"' not in after
    entries = gate.client.get(f"{API}/event/{event_id}/changelog").json()["changelog"]
    approved = [e for e in entries if e["changeType"] == "approved"]
    assert [(e["user"], e["comment"]) for e in approved] == [
        ("reviewer", "Deployment approved by reviewer: LGTM")
    ]


def test_reject_asks_first_then_stops_the_deployment(make_client):
    gate = Gate(make_client)
    event_id = gate.waiting()
    asked = gate.client.get(f"/events/{event_id}/reject")
    assert asked.status_code == 200
    text = _text(asked.text)
    assert 'Reject the deployment "deploy api"?' in text and "Asked by ci" in text
    assert 'name="comment"' in asked.text and 'name="token"' in asked.text
    assert 'name="reason"' not in asked.text  # a lock's override reason has no place here
    path = f"/events/{event_id}/reject"
    unconfirmed = gate.form(path, "reviewer", {"comment": "not today"}, confirm=False)
    assert unconfirmed.status_code == 200 and 'value="not today"' in unconfirmed.text
    assert gate.status(event_id) == "waiting_approval"
    done = gate.form(path, "reviewer", {"comment": "not on a Friday"})
    assert done.status_code == 303, done.text
    assert gate.status(event_id) == "failure"
    after = _text(gate.client.get(f"/events/{event_id}").text)
    assert "Rejected by reviewer" in after and "“not on a Friday”" in after
    # Decided: asking again goes back to the event; deciding again is refused as the API does.
    again = gate.client.get(path, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].endswith("#approval")
    twice = gate.form(f"/events/{event_id}/approve", "reviewer", confirm=False)
    by_api = gate.client.post(
        f"{API}/event/{event_id}/approve", json={}, headers=gate.headers("reviewer")
    )
    assert twice.status_code == by_api.status_code == 400
    assert by_api.json()["message"] in _text(twice.text)


def test_with_auth_off_anyone_approves_from_the_page(client):
    event_id = create_event(client, status="waiting_approval")["metadata"]["id"]
    shown = client.get(f"/events/{event_id}").text
    assert 'name="token"' not in shown and "Approve</button>" in shown
    done = post_form(client, f"/events/{event_id}/approve", confirm=False, follow_redirects=True)
    assert done.status_code == 200 and "Approved by anonymous" in _text(done.text)
    assert client.get(f"{API}/event/{event_id}").json()["event"]["attributes"]["status"] == "open"


def test_an_event_not_waiting_has_no_approval_and_is_refused_as_the_api_does(client):
    event_id = create_event(client, status="start")["metadata"]["id"]
    assert 'id="approval"' not in client.get(f"/events/{event_id}").text
    refused = post_form(client, f"/events/{event_id}/approve", confirm=False)
    assert refused.status_code == 400
    assert "is start, not waiting_approval" in _text(refused.text)
    unknown = post_form(
        client, "/events/0b8f2a6e-1111-4c3b-9a55-0d2b1c3e4f50/approve", confirm=False
    )
    assert unknown.status_code == 404


def test_an_approval_from_another_site_or_without_the_csrf_token_is_refused(client):
    event_id = create_event(client, status="waiting_approval")["metadata"]["id"]
    token = csrf_token(client, f"/events/{event_id}")
    path = f"/events/{event_id}/approve"
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = client.post(path, data={"csrf_token": token}, headers=headers)
        assert refused.status_code == 403 and "cross-site" in refused.text
    missing = client.post(path, data={"comment": "x"})
    assert missing.status_code == 403 and "CSRF token is missing or wrong" in missing.text
    assert client.get(f"{API}/event/{event_id}").json()["event"]["attributes"]["status"] == (
        "waiting_approval"
    )


# ------------------------------------------------------------------- end to end
PHONE = {"width": 390, "height": 844}
SHOTS = "/tmp/tracker-pages"


def _secret(server: Any, name: str) -> str:
    with TrackerClient(base_url=server.url, token=ADMIN_TOKEN, retries=0) as admin:
        return admin.create_token(name=name).secret


@pytest.mark.e2e
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_deployment_waiting_for_approval_fits_a_phone(auth_server, open_page, service, scheme):
    from tests.web.conftest import AXE
    from tests.web.test_pages import SERIOUS

    requester = _secret(auth_server, f"ci-{service}")
    body = event_body(f"Deploy {service} 2.4", service=service, status="waiting_approval")
    headers = {"Authorization": f"Bearer {requester}"}
    answer = httpx.post(f"{auth_server.url}{API}/event", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    event_id = answer.json()["event"]["metadata"]["id"]
    watched = open_page(viewport=PHONE, color_scheme=scheme, bypass_csp=True)
    page = watched.page
    page.goto(f"{auth_server.url}/events/{event_id}")
    page.screenshot(path=f"{SHOTS}/event-approval-{scheme}-390.png", full_page=True)
    assert page.evaluate("() => document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert page.get_by_role("button", name="Approve").is_visible()
    if AXE.exists():
        page.add_script_tag(path=str(AXE))
        assert page.evaluate(SERIOUS) == []
    assert watched.errors == [], watched.errors


@pytest.mark.e2e
def test_the_pages_approve_lets_a_waiting_deploy_start_go_on(auth_server, open_page, service):
    requester, reviewer = (
        _secret(auth_server, f"ci-{service}"),
        _secret(auth_server, f"reviewer-{service}"),
    )
    argv = [sys.executable, "-m", "tracker_ci", "deploy", "start", "-s", service]
    argv += ["-e", "production", "--require-approval", "--title", f"Deploy {service} 2.4"]
    env = {**os.environ, "TRACKER_URL": auth_server.url, "TRACKER_TOKEN": requester}
    env |= {"TRACKER_RETRIES": "0", "TRACKER_WAIT": "30"}
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        with TrackerClient(base_url=auth_server.url, token=reviewer, retries=0) as client:

            def waiting() -> str:
                found = client.search_events(service=service, status=Status.waiting_approval)
                assert len(found.events) == 1, found.events
                return found.events[0].id

            event_id = eventually(waiting, message="a deploy start waiting for approval")
            watched = open_page(viewport=PHONE)
            page = watched.page
            page.goto(f"{auth_server.url}/events/{event_id}")
            assert process.poll() is None  # still waiting
            page.get_by_label("Comment (optional)").fill("LGTM, ship it")
            page.get_by_label("Token (yours: it names who approves)").fill(reviewer)
            page.get_by_role("button", name="Approve").click()
            page.wait_for_url(f"**/events/{event_id}#approval")
            assert "Approved by reviewer" in page.inner_text("#approval")
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, stderr
            event = client.get_event(event_id)
            assert event.attributes.status == Status.start
            assert [lock.event_id for lock in client.list_locks() if lock.service == service] == [
                event_id
            ]
            assert watched.errors == [], watched.errors
        with TrackerClient(base_url=auth_server.url, token=requester, retries=0) as owner:
            closed = event.attributes.model_copy(update={"status": Status.success})
            owner.update_event(
                UpdateEventRequest(
                    id=event.id, title=event.title, attributes=closed, links=event.links
                )
            )
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
