"""Issue 25 part 5, the locks and freezes pages complete: each queue with its places, who,
why and the expected wait (the API's, and at the usual p95 the board counts), the key's
queue policy, the holder's lease (last renewal, expiry, length), the token field only with
auth on, and a freeze form with cron, time zone and description that goes through the
API's operation (same window stored, same refusal). In-process on SQLite and PostgreSQL
with the server's clock held still; then in Chromium at 390x844 in both themes."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tracker_server.clock import ManualClock

from tests.server.helpers import API, create_event, update_body
from tests.web.forms import csrf_token, post_form

ADMIN = "trk_admin_for_the_locks_page_tests_0123456789"
#: The server's clock: a Monday, 08:00 UTC.
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
KEY = {"service": "api", "environment": "production", "resource": "deployment"}


def _text(page: str) -> str:
    """A page's main content as a person reads it: tags dropped, spaces collapsed."""
    found = re.search(r"<main.*?</main>", page, re.S)
    assert found, page
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", found.group(0))))


def _history(client: Any, clock: ManualClock, minutes: tuple[int, ...]) -> None:
    """Deployments of api in production that took these many minutes (opened, then closed:
    the server records each duration)."""
    for taken in minutes:
        event = create_event(client, "deploy api", status="start")
        clock.advance(timedelta(minutes=taken))
        closed = client.put(f"{API}/event", json=update_body(event, status="success"))
        assert closed.status_code == 200, closed.text


@pytest.fixture
def queued(make_client: Any) -> tuple[Any, ManualClock, dict[str, Any]]:
    """api in production: deployments of 4, 6 and 20 minutes, then alice's lock (TTL 10
    min, renewed for 15 a minute later), held for 2 minutes with bob and carol waiting;
    web in staging (newest policy) held without a TTL; ops taken with a TTL, never renewed."""
    clock = ManualClock(START)
    client = make_client(clock=clock)
    _history(client, clock, (4, 6, 20))  # now 08:30
    lock = client.post(
        f"{API}/lock", json=KEY | {"who": "alice", "reason": "v2", "ttlSeconds": 600}
    )
    assert lock.status_code == 200, lock.text
    held = lock.json()["lock"]
    clock.advance(timedelta(minutes=1))
    renewed = client.post(f"{API}/lock/{held['id']}/renew", json={"ttlSeconds": 900})
    assert renewed.status_code == 200, renewed.text
    clock.advance(timedelta(minutes=1))  # 08:32: held for 2 min, expires 08:46
    for who, reason in (("bob", "hotfix 1.2.1"), ("carol", "")):
        joined = client.post(f"{API}/lock/queue", json=KEY | {"who": who, "reason": reason})
        assert joined.status_code == 200, joined.text
    policy = {"environment": "staging", "policy": "newest"}
    assert client.put(f"{API}/locks/policy", json=policy).status_code == 200
    web = {"service": "web", "environment": "staging", "who": "dave"}
    assert client.post(f"{API}/lock", json=web).status_code == 200
    ops = {"service": "ops", "environment": "production", "who": "erin", "ttlSeconds": 300}
    assert client.post(f"{API}/lock", json=ops).status_code == 200
    return client, clock, held


def _row(page: str, service: str) -> str:
    """The first table row of ``service`` (or of a window with that title), as text."""
    rows = re.findall(r"<tr>\s*<th scope=\"row\">(.*?)</tr>", page, re.S)
    found = [row for row in rows if row.startswith(service + "<")]
    assert found, (service, rows)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", found[0])))


def test_each_place_in_a_queue_shows_who_why_and_the_expected_wait(queued):
    client, _, _ = queued
    page = client.get("/locks").text
    status = client.get(f"{API}/locks/status", params=KEY).json()
    # The API's expected waits: the median (6 min) less the 2 min held, then + 6 min a place.
    assert [e["expectedWaitSeconds"] for e in status["queue"]] == [240.0, 600.0]
    places = re.findall(
        r"<li>(.*?)</li>", re.search(r'<ol class="queue">(.*?)</ol>', page, re.S)[1]
    )
    shown = [re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", p))) for p in places]
    assert len(shown) == 2, shown
    # p95 of 4, 6, 20 min is 18 min 36 s: 16 min 36 s left of the holder's, then + 18 min 36 s.
    assert shown[0].startswith("bob: hotfix 1.2.1, waiting since 2026-03-02 08:32:00 UTC")
    assert "expected wait about 4 min 00 s, up to 16 min 36 s at the usual p95" in shown[0]
    assert shown[1].startswith("carol, waiting since")
    assert "expected wait about 10 min 00 s, up to 35 min 12 s at the usual p95" in shown[1]
    assert _row(page, "api").count("Release") == 1


def test_the_holders_lease_and_the_keys_policy_are_shown(queued):
    client, _, held = queued
    page = client.get("/locks").text
    api = _row(page, "api")
    assert "expires 2026-03-02 08:46:00 UTC in 14 min" in api
    assert "renewed 2026-03-02 08:31:00 UTC 1 min ago" in api
    assert "lease 15 min 00 s a renewal" in api
    assert f"fence {held['fence']}" in api and " fifo " in api
    web = _row(page, "web")
    assert "never expires (taken without a TTL)" in web and " newest " in web
    ops = _row(page, "ops")
    assert "not renewed since taken" in ops and "lease 5 min 00 s a renewal" in ops
    policies = _text(page).split("Queue policies", 1)[1]
    assert "staging (every service): newest" in policies
    # The API says the same policies.
    listed = client.get(f"{API}/locks/status", params={"service": "web", "environment": "staging"})
    assert listed.json()["policy"] == "newest"


def test_a_free_key_whose_turn_came_still_shows_its_queue(queued):
    client, _, held = queued
    assert client.delete(f"{API}/lock/{held['id']}").status_code == 200  # bob's turn comes
    page = client.get("/locks").text
    free = _text(page).split("Queues of free locks", 1)[1]
    assert "api in production (deployment), policy fifo" in free
    assert "bob: hotfix 1.2.1, its turn came (it takes the lock next)" in free
    assert "carol, waiting since" in free


def _token_fields(client: Any, paths: list[str]) -> dict[str, int]:
    return {path: client.get(path).text.count('name="token"') for path in paths}


@pytest.mark.parametrize("auth", [False, True])
def test_the_token_field_is_there_only_with_auth_on(make_client, auth):
    client = make_client(auth=auth, admin_token=ADMIN)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    lock = client.post(f"{API}/lock", json=KEY | {"who": "a"}, headers=headers).json()["lock"]
    body = {"title": "w", "endsAt": "2099-01-01T00:00:00Z"}
    window = client.post(f"{API}/freeze-window", json=body, headers=headers).json()
    paths = [
        "/freezes",
        f"/locks/{lock['id']}/release",
        f"/freezes/{window['freezeWindow']['id']}/delete",
    ]
    assert _token_fields(client, ["/locks"]) == {"/locks": 0}  # no form on the list
    expected = 1 if auth else 0
    assert _token_fields(client, paths) == dict.fromkeys(paths, expected)


RECURRING = {
    "title": "Weekends",
    "description": "No deploys on weekends: ask #releases",
    "type": "FREEZE_TYPE_HARD",
    "scope_type": "FREEZE_SCOPE_ENVIRONMENT",
    "scope_ids": "production, staging",
    "timezone": "Europe/Paris",
    "cron_start": "0 18 * * 5",
    "cron_end": "0 8 * * 1",
}


def test_the_freeze_form_adds_a_recurring_freeze_as_the_api_does(make_client):
    client = make_client(clock=ManualClock(START))
    added = post_form(client, "/freezes", RECURRING, confirm=False, follow_redirects=True)
    assert 'freeze "Weekends" added' in html.unescape(added.text)
    by_api = {
        "title": "Weekends",
        "description": RECURRING["description"],
        "type": "FREEZE_TYPE_HARD",
        "scopeType": "FREEZE_SCOPE_ENVIRONMENT",
        "scopeIds": ["production", "staging"],
        "timezone": "Europe/Paris",
        "cronStart": "0 18 * * 5",
        "cronEnd": "0 8 * * 1",
    }
    assert client.post(f"{API}/freeze-window", json=by_api).status_code == 200
    page_one, api_one = client.get(f"{API}/freeze-windows/list").json()["freezeWindows"]
    assert page_one.pop("id") != api_one.pop("id")
    assert page_one == api_one
    assert page_one["startsAt"] is None and page_one["endsAt"] is None
    # The page: the description, the cron in its zone, the next occurrence in UTC and Paris.
    row = _row(client.get("/freezes").text, "Weekends")
    assert "No deploys on weekends: ask #releases" in row
    assert "0 18 * * 5 to 0 8 * * 1 (Europe/Paris)" in row
    assert (
        "next: 2026-03-06 17:00:00 UTC (2026-03-06 18:00 Europe/Paris) in 4 d "
        "to 2026-03-09 07:00:00 UTC (2026-03-09 08:00 Europe/Paris)" in row
    )


def test_the_start_and_end_fields_are_read_in_the_forms_time_zone(make_client):
    client = make_client(clock=ManualClock(START))
    once = {"title": "Release day", "timezone": "Europe/Paris"}
    once |= {"starts_at": "2026-03-10T10:00", "ends_at": "2026-03-10T12:00"}
    assert post_form(client, "/freezes", once, confirm=False).status_code == 303
    (window,) = client.get(f"{API}/freeze-windows/list").json()["freezeWindows"]
    assert (window["startsAt"], window["endsAt"]) == (
        "2026-03-10T09:00:00Z",
        "2026-03-10T11:00:00Z",
    )
    row = _row(client.get("/freezes").text, "Release day")
    assert "2026-03-10 09:00:00 UTC (2026-03-10 10:00 Europe/Paris)" in row


@pytest.mark.parametrize(
    ("fields", "api_fields"),
    [
        ({"cron_start": "61 18 * * 5"}, {"cronStart": "61 18 * * 5"}),
        ({"timezone": "Mars/Olympus"}, {"timezone": "Mars/Olympus"}),
        ({"cron_end": ""}, {"cronEnd": ""}),
        ({"cron_start": "0 18 * *"}, {"cronStart": "0 18 * *"}),
    ],
    ids=["bad-minute", "unknown-zone", "start-without-end", "four-fields"],
)
def test_a_bad_cron_or_zone_is_refused_in_the_apis_words(make_client, fields, api_fields):
    client = make_client(clock=ManualClock(START))
    body = {
        "title": "Weekends",
        "timezone": "Europe/Paris",
        "cronStart": "0 18 * * 5",
        "cronEnd": "0 8 * * 1",
    }
    answer = client.post(f"{API}/freeze-window", json=body | api_fields)
    refused = post_form(client, "/freezes", RECURRING | fields, confirm=False)
    assert refused.status_code == answer.status_code == 400, answer.text
    assert refused.headers["content-type"].startswith("text/html")
    shown = _text(refused.text)
    assert "The freeze window was not added" in shown
    assert answer.json()["message"] in shown, (answer.json(), shown)
    assert client.get(f"{API}/freeze-windows/list").json()["freezeWindows"] == []


def test_a_freeze_form_posted_from_another_site_is_refused(client):
    token = csrf_token(client, "/freezes")
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        data = {"csrf_token": token} | RECURRING
        refused = client.post("/freezes", data=data, headers=headers)
        assert refused.status_code == 403 and "cross-site" in refused.text
    assert client.get(f"{API}/freeze-windows/list").json()["freezeWindows"] == []


# ------------------------------------------------------------------- in Chromium
PHONE = {"width": 390, "height": 844}
SHOTS = "/tmp/tracker-pages"


@pytest.fixture(scope="module")
def busy(web_server: Any) -> Any:
    """The seeded server with a queue of two behind a renewed lease, and a recurring freeze."""
    with httpx.Client(base_url=web_server.url + API, timeout=10) as http:
        key = {"service": "billing", "environment": "production", "resource": "deployment"}
        lock = http.post(
            "/lock", json=key | {"who": "grace", "reason": "db migration 42", "ttlSeconds": 900}
        )
        lock.raise_for_status()
        http.post(
            f"/lock/{lock.json()['lock']['id']}/renew", json={"ttlSeconds": 1200}
        ).raise_for_status()
        for who, reason in (("heidi", "hotfix 3.1.4"), ("ivan", "")):
            http.post("/lock/queue", json=key | {"who": who, "reason": reason}).raise_for_status()
        window = {
            "title": "Weekends",
            "description": "No deploys on weekends",
            "timezone": "Europe/Paris",
            "cronStart": "0 18 * * 5",
            "cronEnd": "0 8 * * 1",
            "scopeType": "FREEZE_SCOPE_ENVIRONMENT",
            "scopeIds": ["production"],
        }
        http.post("/freeze-window", json=window).raise_for_status()
    return web_server


@pytest.mark.e2e
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_locks_and_freezes_pages_fit_a_phone(busy, open_page, scheme):
    from tests.web.conftest import AXE
    from tests.web.test_pages import SERIOUS

    watched = open_page(viewport=PHONE, color_scheme=scheme, bypass_csp=True)
    page = watched.page
    wide, violations = {}, {}
    for name, path in (("locks", "/locks"), ("freezes", "/freezes")):
        page.goto(busy.url + path)
        page.screenshot(path=f"{SHOTS}/{name}-queue-{scheme}-390.png", full_page=True)
        width = page.evaluate("() => document.scrollingElement.scrollWidth")
        if width > PHONE["width"]:
            wide[path] = width
        if AXE.exists():
            page.add_script_tag(path=str(AXE))
            violations[path] = page.evaluate(SERIOUS)
    assert wide == {}, f"wider than {PHONE['width']} px: {wide}"
    assert all(v == [] for v in violations.values()), violations
    page.goto(busy.url + "/locks")
    text = page.inner_text("main")
    assert "heidi: hotfix 3.1.4, waiting since" in text and "expected wait" in text
    assert "renewed" in text and "lease 20 min 00 s a renewal" in text
    assert watched.errors == [], watched.errors


def test_the_confirmations_say_who_gets_the_lock_next_and_what_a_freeze_recurs(queued):
    client, _, held = queued
    asked = _text(client.get(f"/locks/{held['id']}/release").text)
    assert "Expires 2026-03-02 08:46:00 UTC (in 14 min)" in asked
    assert "Next in the queue bob (hotfix 1.2.1), first of 2 waiting" in asked
    assert post_form(client, "/freezes", RECURRING, confirm=False).status_code == 303
    (window,) = client.get(f"{API}/freeze-windows/list").json()["freezeWindows"]
    remove = _text(client.get(f"/freezes/{window['id']}/delete").text)
    assert "Recurs 0 18 * * 5 to 0 8 * * 1 (Europe/Paris)" in remove
    assert "Description No deploys on weekends: ask #releases" in remove
