"""A search that names no paging answers every match, as upstream does (its UI never sends
per_page on a search: Insights counted 50 of 60 events). A cap far above any window the UI
asks for stands, and says so through nextCursor and totalCount. Both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.server.helpers import API, event_body

pytestmark = pytest.mark.server


def _fill(client, count: int, **attributes) -> None:
    items = [event_body(f"e{n}", type="incident", **attributes) for n in range(count)]
    answer = client.post(f"{API}/events/batch", json={"events": items})
    assert answer.status_code == 200, answer.text


def test_a_search_without_paging_answers_every_match(client):
    start = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    _fill(client, 60, startDate=start)
    for params in ({"type": "incident"}, {"startDate": start[:10]}, {"service": "api"}):
        answer = client.get(f"{API}/events/search", params=params).json()
        assert len(answer["events"]) == 60, params
        assert answer["totalCount"] == 60 and answer["nextCursor"] == ""
    # Paging stays as it was: per_page alone, page alone (50 a page), a cursor.
    paged = client.get(f"{API}/events/search", params={"type": "incident", "per_page": 20})
    assert len(paged.json()["events"]) == 20 and paged.json()["nextCursor"]
    second = client.get(f"{API}/events/search", params={"type": "incident", "page": 2}).json()
    assert len(second["events"]) == 10 and second["totalCount"] == 60
    first = client.get(f"{API}/events/search", params={"type": "incident", "perPage": 50}).json()
    follow = client.get(
        f"{API}/events/search", params={"type": "incident", "cursor": first["nextCursor"]}
    ).json()
    assert len(follow["events"]) == 10
    # The list and today keep their page of 50 (our pages and CLI page them).
    assert len(client.get(f"{API}/events/list").json()["events"]) == 50


def test_the_cap_is_signalled_by_next_cursor_and_total_count(client, monkeypatch):
    from tracker_server.routes import events as event_routes

    _fill(client, 12)
    monkeypatch.setattr(event_routes, "UNPAGED_SEARCH_CAP", 5)
    capped = client.get(f"{API}/events/search", params={"type": "incident"}).json()
    assert len(capped["events"]) == 5
    assert capped["totalCount"] == 12 and capped["totalCountExact"] is True
    assert capped["nextCursor"]
    seen = {e["metadata"]["id"] for e in capped["events"]}
    cursor = capped["nextCursor"]
    while cursor:
        page = client.get(
            f"{API}/events/search", params={"type": "incident", "cursor": cursor}
        ).json()
        seen |= {e["metadata"]["id"] for e in page["events"]}
        cursor = page["nextCursor"]
    assert len(seen) == 12
