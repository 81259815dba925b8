"""The pages' security, in-process against the real app (SQLite and PostgreSQL): every
form does what its API twin does for the same caller (one operation, operations.py),
cross-site writes and forms without the session's CSRF token are refused, every answer
carries the security headers, and only http(s) URLs become links."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, update
from tracker_server import operations
from tracker_server.db import normalize_database_url
from tracker_server.middleware import CONTENT_SECURITY_POLICY
from tracker_server.tables import events as events_table
from tracker_server.web import pages
from tracker_server.web.render import safe_url

from tests.server.helpers import API, assert_error, create_event, event_body
from tests.web.forms import csrf_token, post_form

pytestmark = pytest.mark.server

ADMIN = "trk_admin_for_the_security_tests_0123456789"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
SERVER = Path(__file__).resolve().parents[2] / "server" / "tracker_server"

#: Every page form -> (its API twin, the operation both call).
FORMS = {
    "/locks/{lock_id}/release": (("DELETE", API + "/lock/{id}"), "release_lock"),
    "/freezes": (("POST", API + "/freeze-window"), "add_freeze"),
    "/freezes/{window_id}/delete": (("DELETE", API + "/freeze-window/{id}"), "remove_freeze"),
    "/events/{event_id}/approve": (("POST", API + "/event/{id}/approve"), "decide_approval"),
    "/events/{event_id}/reject": (("POST", API + "/event/{id}/reject"), "decide_approval"),
}


def window(title: str = "Xmas") -> dict[str, Any]:
    return {
        "title": title,
        "type": "FREEZE_TYPE_HARD",
        "scopeType": "FREEZE_SCOPE_GLOBAL",
        "scopeIds": [],
        "endsAt": "2099-01-01T00:00:00Z",
    }


WINDOW_FORM = {"title": "Xmas", "type": "FREEZE_TYPE_HARD", "ends_at": "2099-01-01T00:00"}


# --------------------------------------------------------------- the auth matrix
class Secured:
    """An app with auth on, its tokens, and two locks the ``owner`` token took."""

    def __init__(self, make_client: Any) -> None:
        self.client = make_client(auth=True, admin_token=ADMIN)
        self.secrets = {
            "none": "",
            "unknown": "trk_not_a_token_of_this_server_000000000",
            "admin": ADMIN,
        }
        for name, body in {
            "owner": {"services": ["api"]},
            "same service": {"services": ["api"]},
            "other service": {"services": ["web"]},
            "read-only": {"readOnly": True},
        }.items():
            created = self.client.post(
                f"{API}/tokens", json={"name": name} | body, headers=ADMIN_HEADERS
            )
            assert created.status_code == 201, created.text
            self.secrets[name] = created.json()["secret"]

    def headers(self, caller: str, reason: str = "") -> dict[str, str]:
        secret = self.secrets[caller]
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return headers | ({"X-Tracker-Reason": reason} if reason else {})

    def lock(self, resource: str) -> str:
        key = {"service": "api", "environment": "production", "resource": resource, "who": "a"}
        taken = self.client.post(f"{API}/lock", json=key, headers=self.headers("owner"))
        assert taken.status_code == 200, taken.text
        return str(taken.json()["lock"]["id"])

    def held(self, lock_id: str) -> bool:
        return bool(self.client.get(f"{API}/lock/{lock_id}").status_code == 200)

    def windows(self) -> list[str]:
        listed = self.client.get(f"{API}/freeze-windows/list").json()["freezeWindows"]
        return [w["id"] for w in listed]

    def form(self, path: str, caller: str, data: dict[str, str] | None = None, **kw: Any) -> Any:
        fields = {"token": self.secrets[caller], **(data or {})}
        return post_form(self.client, path, fields, **kw)


CALLERS = ["none", "unknown", "other service", "same service", "read-only", "owner", "admin"]


@pytest.mark.parametrize("caller", [*CALLERS, "admin giving a reason"])
def test_releasing_a_lock_answers_the_same_on_the_page_and_the_api(make_client, caller):
    app = Secured(make_client)
    name, reason = ("admin", "stale lock") if caller == "admin giving a reason" else (caller, "")
    by_api, by_page = app.lock("deployment"), app.lock("database")
    answer = app.client.delete(f"{API}/lock/{by_api}", headers=app.headers(name, reason))
    shown = app.form(f"/locks/{by_page}/release", name, {"reason": reason})
    allowed = caller in ("owner", "admin giving a reason")
    assert (answer.status_code == 200) is allowed, answer.text
    assert app.held(by_api) is not allowed
    assert app.held(by_page) is not allowed, shown.headers.get("location")
    assert shown.status_code == 303
    assert ("lock%20released" in shown.headers["location"]) is allowed


@pytest.mark.parametrize("caller", CALLERS)
def test_freeze_windows_are_admin_only_on_the_page_as_on_the_api(make_client, caller):
    app = Secured(make_client)
    allowed = caller == "admin"
    answer = app.client.post(f"{API}/freeze-window", json=window(), headers=app.headers(caller))
    assert (answer.status_code == 200) is allowed, answer.text
    if not allowed:
        assert answer.status_code in (401, 403)
    added = app.form("/freezes", caller, WINDOW_FORM, confirm=False)
    assert ("message=freeze%20" in added.headers["location"]) is allowed, added.headers["location"]
    assert len(app.windows()) == (2 if allowed else 0)

    first, second = (
        app.client.post(f"{API}/freeze-window", json=window(t), headers=ADMIN_HEADERS)
        for t in ("one", "two")
    )
    one, two = first.json()["freezeWindow"]["id"], second.json()["freezeWindow"]["id"]
    deleted = app.client.delete(f"{API}/freeze-window/{one}", headers=app.headers(caller))
    assert (deleted.status_code == 200) is allowed, deleted.text
    removed = app.form(f"/freezes/{two}/delete", caller)
    assert ("message=freeze%20" in removed.headers["location"]) is allowed, removed.headers[
        "location"
    ]
    left = app.windows()
    assert (one in left) is not allowed and (two in left) is not allowed


def test_every_page_form_calls_the_operation_of_its_api_twin(client, monkeypatch):
    posted = {
        route.path for route in pages.router.routes if "POST" in getattr(route, "methods", set())
    }
    assert posted == set(FORMS), "a new form needs its row (API twin, operation) here"
    calls: list[tuple[str, str]] = []
    for _, name in FORMS.values():
        real = getattr(operations, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls.append((_name, surface[0]))
            return _real(*args, **kwargs)

        monkeypatch.setattr(operations, name, spy)
    surface = ["api"]
    key = {"service": "api", "environment": "production", "who": "a"}
    locks = [
        client.post(f"{API}/lock", json=key | {"resource": r}).json()["lock"]["id"]
        for r in ("a", "b")
    ]
    assert client.delete(f"{API}/lock/{locks[0]}").status_code == 200
    one = client.post(f"{API}/freeze-window", json=window("one")).json()["freezeWindow"]["id"]
    assert client.delete(f"{API}/freeze-window/{one}").status_code == 200
    waiting = [create_event(client, status="waiting_approval")["metadata"]["id"] for _ in "abc"]
    assert client.post(f"{API}/event/{waiting[0]}/approve", json={}).status_code == 200
    surface[0] = "page"
    assert post_form(client, f"/events/{waiting[1]}/approve", confirm=False).status_code == 303
    assert post_form(client, f"/events/{waiting[2]}/reject").status_code == 303
    assert post_form(client, f"/locks/{locks[1]}/release").status_code == 303
    assert post_form(client, "/freezes", WINDOW_FORM, confirm=False).status_code == 303
    two = client.get(f"{API}/freeze-windows/list").json()["freezeWindows"][0]["id"]
    assert post_form(client, f"/freezes/{two}/delete").status_code == 303
    for _, name in FORMS.values():
        assert (name, "api") in calls and (name, "page") in calls, (name, calls)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_pages_and_routes_never_import_each_other():
    for path in (SERVER / "web").glob("*.py"):
        assert not any(m.startswith("tracker_server.routes") for m in _imports(path)), path
    for path in (SERVER / "routes").glob("*.py"):
        others = {
            m
            for m in _imports(path)
            if m.startswith(("tracker_server.routes.", "tracker_server.web"))
            and not m.startswith("tracker_server.routes.common")
        }
        # routes/batch.py still takes open_event from routes/events.py (not ours to edit).
        others.discard("tracker_server.routes.events")
        others.discard("tracker_server.routes.events.open_event")
        if path.name in ("locks.py", "events.py", "freezes.py", "insights.py"):
            assert others == set(), (path, others)
    assert not hasattr(pages.queries, "_freeze_store")


# ---------------------------------------------- events holding a lock are the lock's
def test_deleting_or_closing_an_event_holding_a_lock_follows_the_lock(make_client, caplog):
    app = Secured(make_client)
    body = event_body("deploy api", status="start")
    opened = app.client.post(f"{API}/event", json=body, headers=app.headers("owner"))
    assert opened.status_code == 200, opened.text
    event = opened.json()["event"]
    event_id = event["metadata"]["id"]
    path = f"{API}/event/{event_id}"
    other = app.headers("same service")
    assert_error(app.client.delete(path, headers=other), 403, 7, "taken by another token")
    closing = {
        "id": event_id,
        "title": event["title"],
        "attributes": event["attributes"] | {"status": "success"},
        "links": event["links"],
    }
    assert_error(app.client.put(f"{API}/event", json=closing, headers=other), 403, 7)
    assert_error(app.client.delete(path, headers=app.headers("admin")), 403, 7, "say why")
    assert app.client.get(path).status_code == 200
    locks = app.client.get(f"{API}/locks/list").json()["locks"]
    assert [lock["eventId"] for lock in locks] == [event_id]
    with caplog.at_level(logging.INFO, logger="tracker_server.audit"):
        done = app.client.delete(path, headers=app.headers("admin", "runner died"))
    assert done.status_code == 200, done.text
    assert "lock overridden by admin" in caplog.text
    assert app.client.get(f"{API}/locks/list").json()["locks"] == []
    # The owner token closes and deletes its own event as before.
    again = app.client.post(f"{API}/event", json=body, headers=app.headers("owner"))
    mine = again.json()["event"]
    closing = {
        "id": mine["metadata"]["id"],
        "title": mine["title"],
        "attributes": mine["attributes"] | {"status": "success"},
        "links": mine["links"],
    }
    owner = app.headers("owner")
    assert app.client.put(f"{API}/event", json=closing, headers=owner).status_code == 200
    assert app.client.get(f"{API}/locks/list").json()["locks"] == []
    assert app.client.delete(f"{API}/event/{mine['metadata']['id']}", headers=owner).is_success


def test_with_auth_off_anyone_still_deletes_an_event_holding_a_lock(client):
    event = create_event(client, "deploy api", status="start")
    assert client.delete(f"{API}/event/{event['metadata']['id']}").status_code == 200


# ---------------------------------------------------------------- cross-site writes
EVIL = {"Origin": "https://evil.example"}
CROSS = {"Sec-Fetch-Site": "cross-site"}
SAME_SITE = {"Sec-Fetch-Site": "same-site"}


@pytest.mark.parametrize("headers", [EVIL, CROSS, SAME_SITE, {"Origin": "null"}])
def test_cross_site_writes_are_refused_with_auth_off(client, headers):
    key = {"service": "api", "environment": "production", "who": "a"}
    lock_id = client.post(f"{API}/lock", json=key).json()["lock"]["id"]
    token = csrf_token(client)
    release = {"csrf_token": token, "confirm": "yes"}
    refused = client.post(f"/locks/{lock_id}/release", data=release, headers=headers)
    assert_error(refused, 403, 7, "cross-site request refused")
    assert client.get(f"{API}/lock/{lock_id}").status_code == 200
    added = client.post("/freezes", data={"csrf_token": token} | WINDOW_FORM, headers=headers)
    assert_error(added, 403, 7, "cross-site")
    assert_error(client.delete(f"{API}/lock/{lock_id}", headers=headers), 403, 7, "cross-site")
    assert_error(client.post(f"{API}/event", json=event_body(), headers=headers), 403, 7)
    assert client.get(f"{API}/lock/{lock_id}").status_code == 200
    assert client.get(f"{API}/freeze-windows/list").json()["freezeWindows"] == []
    assert client.get(f"{API}/events/list").json()["events"] == []
    assert client.get("/locks", headers=headers).status_code == 200  # reads are not refused


def test_a_same_origin_form_with_its_csrf_token_works(client):
    key = {"service": "api", "environment": "production", "who": "a"}
    lock_id = client.post(f"{API}/lock", json=key).json()["lock"]["id"]
    browser = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    path = f"/locks/{lock_id}/release"
    done = post_form(client, path, headers=browser, follow_redirects=True)
    assert done.status_code == 200 and "lock released" in done.text
    assert client.get(f"{API}/lock/{lock_id}").status_code == 404
    api = client.post(f"{API}/lock", json=key, headers=browser)  # the API for a same-origin page
    assert api.status_code == 200, api.text


def test_a_form_without_the_sessions_csrf_token_is_refused(client):
    key = {"service": "api", "environment": "production", "who": "a"}
    lock_id = client.post(f"{API}/lock", json=key).json()["lock"]["id"]
    path = f"/locks/{lock_id}/release"
    csrf_token(client)
    missing = client.post(path, data={"confirm": "yes"})
    wrong = client.post(path, data={"confirm": "yes", "csrf_token": "x" * 43})
    for refused in (missing, wrong):
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "CSRF token is missing or wrong" in refused.text
    client.cookies.clear()  # a token without the cookie that goes with it
    stale = client.post(path, data={"confirm": "yes", "csrf_token": "y" * 43})
    assert stale.status_code == 403
    added = client.post("/freezes", data=WINDOW_FORM)
    assert added.status_code == 403
    assert client.get(f"{API}/lock/{lock_id}").status_code == 200
    assert client.get(f"{API}/freeze-windows/list").json()["freezeWindows"] == []


def test_the_csrf_cookie_is_strict_and_every_form_carries_it(client):
    key = {"service": "api", "environment": "production", "who": "a"}
    lock_id = client.post(f"{API}/lock", json=key).json()["lock"]["id"]
    first = client.get("/freezes")
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("tracker_csrf=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower(), cookie
    token = client.cookies["tracker_csrf"]
    assert "set-cookie" not in client.get("/freezes").headers  # one per session
    for path in ("/freezes", f"/locks/{lock_id}/release"):
        shown = client.get(path).text
        forms = shown.count("<form")
        assert forms and shown.count(f'name="csrf_token" value="{token}"') == forms, path


def test_releasing_asks_first_and_acts_only_on_confirm_yes(client):
    key = {"service": "api", "environment": "production", "who": "alice"}
    lock_id = client.post(f"{API}/lock", json=key).json()["lock"]["id"]
    asked = client.get(f"/locks/{lock_id}/release")
    assert asked.status_code == 200 and "Release the lock of api in production?" in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    unconfirmed = post_form(client, f"/locks/{lock_id}/release", confirm=False)
    assert unconfirmed.status_code == 200 and "Release the lock" in unconfirmed.text
    assert client.get(f"{API}/lock/{lock_id}").status_code == 200
    listed = client.get("/locks").text
    assert f'href="/locks/{lock_id}/release"' in listed and "<form" not in listed
    gone = client.get("/locks/0b8f2a6e-1111-4c3b-9a55-0d2b1c3e4f50/release", follow_redirects=False)
    assert gone.status_code == 303 and "already%20free" in gone.headers["location"]


# ---------------------------------------------------------------------- headers
def test_every_page_and_answer_carries_the_security_headers(client):
    event = create_event(client, "deploy api", status="start")
    lock_id = client.get(f"{API}/locks/list").json()["locks"][0]["id"]
    window_id = client.post(f"{API}/freeze-window", json=window()).json()["freezeWindow"]["id"]
    paths = [
        "/",
        "/timeline",
        f"/events/{event['metadata']['id']}",
        "/locks",
        "/freezes",
        "/insights",
        f"/locks/{lock_id}/release",
        f"/freezes/{window_id}/delete",
        "/static/app.css",
        f"{API}/events/list",
        "/events/0b8f2a6e-1111-4c3b-9a55-0d2b1c3e4f50",  # an error answer
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code in (200, 404), path
        headers = response.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "same-origin", path
    for directive in ("frame-ancestors 'none'", "script-src 'self'", "form-action 'self'"):
        assert directive in CONTENT_SECURITY_POLICY
    docs = client.get("/docs").headers  # Swagger UI's CDN assets and inline script
    assert "content-security-policy" not in docs and docs["x-frame-options"] == "DENY"


def test_no_template_has_an_inline_script_or_style():
    for path in (SERVER / "web" / "templates").glob("*.html"):
        text = path.read_text()
        assert "<script>" not in text and "<style" not in text and " style=" not in text, path
        assert not re.search(r"\son[a-z]+\s*=", text), path  # no inline handler


# ----------------------------------------------------------------- http(s) links only
@pytest.mark.parametrize(
    ("value", "link"),
    [
        ("https://github.com/o/r/pull/1", True),
        ("HTTP://example.com/x", True),
        ("javascript:alert(3)", False),
        (" javascript:alert(3)", False),
        ("JaVaScRiPt:alert(3)", False),
        ("data:text/html,<script>alert(3)</script>", False),
        ("vbscript:msgbox(3)", False),
        ("https://ok.example/\tjavascript:", False),
        ("//evil.example/x", False),
        ("https:///evil", False),
        ("/relative", False),
        ("", False),
        (None, False),
    ],
)
def test_safe_url_lets_only_http_and_https_through(value, link):
    assert bool(safe_url(value)) is link


def test_a_stored_javascript_url_is_never_a_link(client, database_url):
    event = create_event(
        client,
        "deploy api",
        status="success",
        links={"pullRequestLink": "https://example.com/pr/1", "ticket": "OPS-1"},
    )
    event_id = event["metadata"]["id"]
    # As imported from an older server: the API would refuse these now.
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(
                update(events_table)
                .where(events_table.c.id == event_id)
                .values(
                    pull_request_link="javascript:alert(3)",
                    ticket="javascript:alert(4)",
                    changes=[{"kind": "commit", "id": "abc", "url": "javascript:alert(5)"}],
                )
            )
    finally:
        engine.dispose()
    for path in ("/", "/timeline", f"/events/{event_id}"):
        shown = client.get(path)
        assert shown.status_code == 200, shown.text
        lowered = shown.text.lower()
        assert 'href="javascript' not in lowered and "href='javascript" not in lowered, path
        assert "javascript:alert(3)" in shown.text, path  # shown as text
