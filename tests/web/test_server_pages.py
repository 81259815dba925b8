"""The pages in-process (SQLite and PostgreSQL): access rules, the reverse-proxy prefix,
the forms, errors, and the live stream across replicas."""

from __future__ import annotations

import asyncio
import html
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from tracker_server.db import Database, create_database_engine
from tracker_server.web import live

from tests.server.helpers import API, assert_error, create_event
from tests.web.forms import post_form

pytestmark = pytest.mark.server

ADMIN = "trk_admin_for_the_page_tests_0123456789"


def test_every_page_answers_html(client):
    event = create_event(client, "deploy api", status="start")
    pages = {
        "/": "deploy api",
        "/timeline": "deploy api",
        f"/events/{event['metadata']['id']}": "deploy api",
        "/locks": "alice",  # the deployment's own lock
        "/freezes": "Add a freeze window",
    }
    for path, shown in pages.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert shown in response.text, path
    insights = client.get("/insights?service=api&environment=production")
    assert insights.status_code == 200
    assert "Failed deployment recovery time" in insights.text


def test_bad_filters_and_unknown_events_answer_the_error_body(client):
    assert_error(client.get("/timeline?environment=moon%20base"), 400, 3, "not a valid environment")
    assert_error(client.get("/insights?start_date=soon"), 400, 3, "RFC 3339")
    assert_error(client.get("/events/0b8f2a6e-1111-4c3b-9a55-0d2b1c3e4f50"), 404, 5, "not found")


def test_pages_follow_public_reads(make_client):
    closed = make_client(auth=True, admin_token=ADMIN, public_reads=False)
    assert_error(closed.get("/"), 401, 16, "requires a token")
    assert_error(closed.get("/live"), 401, 16, "requires a token")
    assert closed.get("/", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    assert closed.get("/static/app.css").status_code == 200  # assets are not data
    opened = make_client(auth=True, admin_token=ADMIN, public_reads=True)
    assert opened.get("/").status_code == 200


def test_links_and_assets_carry_the_root_path(make_client):
    proxied = make_client(root_path="/tracker")
    create_event(proxied, "deploy api", status="start")
    page = proxied.get("/tracker/").text
    links = re.findall(r'(?:href|src|action)="([^"#]+)"', page)
    ours = [link for link in links if not link.startswith("http")]
    assert ours and all(link.startswith("/tracker/") for link in ours), ours
    assert 'data-live="/tracker/live?after=' in page
    assert proxied.get("/tracker/static/live.js").status_code == 200


def test_a_bad_root_path_is_refused():
    from pydantic import ValidationError
    from tracker_server.settings import ServerSettings

    with pytest.raises(ValidationError):
        ServerSettings(root_path="tracker/")


def test_release_a_lock_from_the_page_needs_a_token_with_auth(make_client):
    server = make_client(auth=True, admin_token=ADMIN)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    created = server.post(
        f"{API}/lock",
        json={"service": "api", "environment": "production", "resource": "deployment", "who": "a"},
        headers=headers,
    )
    assert created.status_code == 200, created.text
    lock_id = created.json()["lock"]["id"]
    refused = post_form(server, f"/locks/{lock_id}/release", {"token": ""})
    assert refused.status_code == 303
    assert "not%20released" in refused.headers["location"]
    assert server.get(f"{API}/lock/{lock_id}").status_code == 200  # still held
    done = post_form(server, f"/locks/{lock_id}/release", {"token": ADMIN}, follow_redirects=True)
    assert "lock released" in done.text
    assert server.get(f"{API}/lock/{lock_id}").status_code == 404


def test_add_and_remove_a_freeze_from_the_page(client):
    added = post_form(
        client,
        "/freezes",
        {
            "title": "Black Friday",
            "type": "FREEZE_TYPE_HARD",
            "scope_type": "FREEZE_SCOPE_ENVIRONMENT",
            "scope_ids": "production",
            "starts_at": "2030-11-29T00:00",
            "ends_at": "2030-12-01T00:00",
        },
        confirm=False,
        follow_redirects=True,
    )
    assert 'freeze "Black Friday" added' in html.unescape(added.text)
    windows = client.get(f"{API}/freeze-windows/list").json()["freezeWindows"]
    assert [w["title"] for w in windows] == ["Black Friday"]
    path = f"/freezes/{windows[0]['id']}/delete"
    asked = post_form(client, path, confirm=False)
    assert asked.status_code == 200 and "Remove the freeze window" in asked.text
    assert len(client.get(f"{API}/freeze-windows/list").json()["freezeWindows"]) == 1
    removed = post_form(client, path, follow_redirects=True)
    assert 'freeze "Black Friday" removed' in html.unescape(removed.text)
    assert client.get(f"{API}/freeze-windows/list").json()["freezeWindows"] == []
    bad = post_form(client, "/freezes", {"title": ""}, confirm=False, follow_redirects=True)
    assert "not added" in bad.text


def test_a_change_through_one_replica_is_streamed_by_another(database_url, make_client):
    writer = make_client()
    reader = Database(create_database_engine(database_url))
    try:
        after = live.newest_journal_id(reader)
        created = create_event(writer, "deploy api", status="success")

        async def collect() -> list[str]:
            async def never() -> bool:
                return False

            stream = live.changes(reader, after=after, disconnected=never, seconds=1.0)
            return [message async for message in stream]

        # In a thread of its own: the browser tests' Playwright owns this thread's loop.
        with ThreadPoolExecutor(1) as pool:
            messages = pool.submit(lambda: asyncio.run(collect())).result(timeout=30)
    finally:
        reader.dispose()
    changes = [m for m in messages if m.startswith("id: ")]
    assert changes, messages
    assert all("event: change" in m for m in changes)
    assert '"kind": "event_created"' in "".join(changes), changes
    assert created["metadata"]["id"]


def test_the_locks_page_shows_who_waits_in_order(client):
    key = {"service": "api", "environment": "production", "resource": "deployment"}
    held = client.post(f"{API}/lock", json={**key, "who": "alice"})
    assert held.status_code == 200, held.text
    for who, reason in (("bob", "hotfix 1.2.1"), ("carol", "")):
        joined = client.post(f"{API}/lock/queue", json={**key, "who": who, "reason": reason})
        assert joined.status_code == 200, joined.text
    page = client.get("/locks").text
    queue = re.search(r'<ol class="queue">(.*?)</ol>', page, re.S)
    assert queue, page
    items = re.findall(r"<li>(.*?),", queue.group(1))
    assert items == ["bob: hotfix 1.2.1", "carol"]
    board = client.get("/").text
    assert re.search(r"<td[^>]*>2</td>", board)  # the board shows the queue length


def test_the_timeline_says_about_when_its_count_is_an_estimate(client, monkeypatch):
    from tracker_server.store import events as event_store

    from tests.server.helpers import event_body

    items = [event_body(f"drift {n}", type="drift", status="success") for n in range(52)]
    created = client.post(f"{API}/events/batch", json={"events": items})
    assert created.status_code == 200, created.text
    exact = html.unescape(client.get("/timeline").text)
    assert "52 events, page 1 of 2." in exact and "about" not in exact
    monkeypatch.setattr(event_store, "COUNT_CAP", 10)  # more matches than it counts
    estimated = html.unescape(client.get("/timeline").text)
    assert re.search(r"about \d+ events, page 1 of about \d+\.", estimated), estimated
    assert 'rel="next"' in estimated  # older events, whatever the estimate says
    last = html.unescape(client.get("/timeline?page=2").text)
    assert 'rel="next"' not in last and "drift" in last


def test_the_locks_page_shows_the_holders_reason_fence_and_job() -> None:
    """An SRE sees why a lock is held, its fence and the holder's CI job on the locks page."""
    import tempfile
    from pathlib import Path

    from fastapi.testclient import TestClient
    from tracker_server.app import create_app
    from tracker_server.settings import ServerSettings

    with tempfile.TemporaryDirectory() as folder:
        settings = ServerSettings(database_url=f"sqlite:///{Path(folder) / 't.db'}")
        with TestClient(create_app(settings)) as client:
            taken = client.post(
                "/api/v1alpha1/lock",
                json={
                    "service": "api",
                    "environment": "production",
                    "who": "carol",
                    "reason": "hotfix <b>42</b>",
                    "jobUrl": "https://ci.example/jobs/7",
                },
            )
            assert taken.status_code == 200, taken.text
            fence = taken.json()["lock"]["fence"]
            page = client.get("/locks").text
    assert "hotfix &lt;b&gt;42&lt;/b&gt;" in page  # the reason, escaped
    assert f"fence {fence}" in page
    assert '<a href="https://ci.example/jobs/7" rel="noreferrer">CI job</a>' in page
