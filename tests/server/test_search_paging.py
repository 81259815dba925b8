"""Keyset paging (the ``cursor`` extension) and the capped ``totalCount`` of list, today and
search, on both backends (docs/search.md)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tracker_server.store import events as event_store

from tests.server.helpers import API, assert_error, create_event, event_body

pytestmark = pytest.mark.server


def _ids(answer: dict[str, Any]) -> list[str]:
    return [event["metadata"]["id"] for event in answer["events"]]


def _by_offset(client, path: str, params: dict[str, Any], per_page: int) -> list[list[str]]:
    pages, page = [], 1
    while True:
        answer = client.get(path, params={**params, "per_page": per_page, "page": page}).json()
        if not answer["events"]:
            return pages
        pages.append(_ids(answer))
        page += 1


def _by_cursor(client, path: str, params: dict[str, Any], per_page: int) -> list[list[str]]:
    pages, cursor = [], ""
    while True:
        query = {**params, "per_page": per_page} | ({"cursor": cursor} if cursor else {})
        answer = client.get(path, params=query).json()
        pages.append(_ids(answer))
        cursor = answer["nextCursor"]
        if not cursor:
            return pages
        assert len(answer["events"]) == per_page  # only the last page is short


def test_pages_by_cursor_are_the_pages_by_offset(client):
    now = datetime.now(UTC)
    for n in range(11):
        create_event(
            client,
            title=f"e{n}",
            service="api" if n % 3 else "web",
            # Three events share each startDate: the window's order goes on by createdAt.
            startDate=(now - timedelta(days=2 + n // 3)).isoformat(),
        )
    window = {"start_date": (now - timedelta(days=30)).date().isoformat()}
    for path, params in [
        (f"{API}/events/list", {}),
        (f"{API}/events/search", {"service": "api"}),
        (f"{API}/events/search", window),
    ]:
        for per_page in (1, 3, 4, 50):
            offset = _by_offset(client, path, params, per_page)
            assert _by_cursor(client, path, params, per_page) == offset, (path, params, per_page)
    every = _by_offset(client, f"{API}/events/list", {}, 50)[0]
    assert len(every) == 11


def test_a_date_window_answers_newest_start_date_first(client):
    now = datetime.now(UTC)
    # Created in one order, started in another: the window follows startDate.
    days = [3, 1, 5, 2, 4]
    created = {
        day: create_event(
            client, title=f"d{day}", startDate=(now - timedelta(days=day)).isoformat()
        )
        for day in days
    }
    answer = client.get(
        f"{API}/events/search", params={"start_date": (now - timedelta(days=10)).isoformat()}
    ).json()
    assert _ids(answer) == [created[day]["metadata"]["id"] for day in sorted(days)]
    assert answer["totalCount"] == 5 and answer["totalCountExact"] is True
    assert answer["nextCursor"] == ""
    # Without a window, newest createdAt first as before.
    listed = client.get(f"{API}/events/list").json()
    assert _ids(listed) == [created[day]["metadata"]["id"] for day in reversed(days)]


def test_today_pages_by_cursor(client):
    now = datetime.now(UTC)
    ids = [
        create_event(client, title=f"t{n}", startDate=now.isoformat())["metadata"]["id"]
        for n in range(3)
    ]
    pages = _by_cursor(client, f"{API}/events/today", {}, 2)
    assert sorted(pages[0] + pages[1]) == sorted(ids) and len(pages) == 2


def test_a_bad_cursor_is_a_400(client):
    create_event(client, title="one")
    create_event(client, title="two")
    first = client.get(f"{API}/events/list", params={"per_page": 1}).json()
    assert first["nextCursor"]
    junk = base64.urlsafe_b64encode(b"c|yesterday|not-an-id").decode()
    for params in (
        {"cursor": "%%%"},
        {"cursor": "bm90IGEgY3Vyc29y"},  # "not a cursor"
        {"cursor": junk},
    ):
        response = client.get(f"{API}/events/list", params=params)
        body = assert_error(response, 400, 3, "query parameter cursor", "nextCursor")
        assert "\n" not in body["message"]
    # A list's cursor (createdAt order) means nothing to a date window (startDate order).
    mixed = client.get(
        f"{API}/events/search", params={"start_date": "2020-01-01", "cursor": first["nextCursor"]}
    )
    assert_error(mixed, 400, 3, "cursor")
    both = client.get(f"{API}/events/list", params={"cursor": first["nextCursor"], "page": 2})
    assert_error(both, 400, 3, "either cursor or page")


def test_total_count_is_exact_up_to_the_cap_and_an_estimate_above(client, monkeypatch):
    for n in range(5):
        create_event(client, title=f"c{n}", type="incident")
    monkeypatch.setattr(event_store, "COUNT_CAP", 5)
    at_cap = client.get(f"{API}/events/search", params={"type": "incident", "per_page": 2})
    assert at_cap.json()["totalCount"] == 5 and at_cap.json()["totalCountExact"] is True
    monkeypatch.setattr(event_store, "COUNT_CAP", 3)
    above = client.get(f"{API}/events/search", params={"type": "incident", "per_page": 2}).json()
    assert above["totalCountExact"] is False
    assert above["totalCount"] >= 4  # never below what is known to exist
    assert len(above["events"]) == 2 and above["nextCursor"]
    # The last page knows how many there are without counting: exact again.
    last = client.get(
        f"{API}/events/search", params={"type": "incident", "per_page": 2, "page": 3}
    ).json()
    assert last["totalCount"] == 5 and last["totalCountExact"] is True
    assert last["nextCursor"] == ""
    whole = client.get(f"{API}/events/search", params={"type": "incident", "per_page": 10})
    assert whole.json()["totalCount"] == 5 and whole.json()["totalCountExact"] is True


def test_a_search_the_statistics_expect_to_be_large_is_not_counted(client, monkeypatch):
    for n in range(4):
        create_event(client, title=f"s{n}", type="drift")
    monkeypatch.setattr(event_store, "ESTIMATE_ONLY_ABOVE", 0)  # every estimate is "large"
    first = client.get(f"{API}/events/search", params={"type": "drift", "per_page": 2}).json()
    assert first["totalCountExact"] is False and first["totalCount"] >= 3
    # What the pages show needs no count: the last page, and an empty first page.
    last = client.get(f"{API}/events/search", params={"type": "drift", "per_page": 3, "page": 2})
    assert last.json()["totalCount"] == 4 and last.json()["totalCountExact"] is True
    none = client.get(f"{API}/events/search", params={"service": "nothing-here"}).json()
    assert none == {"events": [], "totalCount": 0, "totalCountExact": True, "nextCursor": ""}


def test_a_low_estimate_never_answers_fewer_matches_than_the_pages_showed(client, monkeypatch):
    from tracker_server import statistics

    items = [event_body(f"low {n}", type="incident") for n in range(12)]
    assert client.post(f"{API}/events/batch", json={"events": items}).status_code == 200
    monkeypatch.setattr(event_store, "COUNT_CAP", 2)  # every count stops past the cap
    monkeypatch.setattr(statistics, "estimate_matches", lambda *_args, **_kw: 1)  # stale stats
    params = {"type": "incident", "per_page": 3}
    deep = client.get(f"{API}/events/search", params={**params, "page": 3}).json()
    assert deep["totalCountExact"] is False and deep["totalCount"] >= 10  # rows 7-9 + more
    shown, cursor = 0, ""
    while True:
        page = client.get(
            f"{API}/events/search", params=params | ({"cursor": cursor} if cursor else {})
        ).json()
        shown += len(page["events"])
        assert page["totalCount"] >= shown + (1 if page["nextCursor"] else 0), (shown, page)
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert shown == 12
