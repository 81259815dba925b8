"""Deep page-number paging through anchors (store/ranks.py), on SQLite and PostgreSQL:
every page equals the OFFSET page before and after each kind of write; the database's
triggers bump the epoch for exactly the writes that move older events (a backdated insert,
a delete), not for creates dated now or ordinary updates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tracker_server.clock import ManualClock
from tracker_server.store import ranks
from tracker_server.tables import event_order

from tests.server.helpers import API, create_event, update_body

pytestmark = pytest.mark.server

EVENTS = 60


def _epoch(client: Any) -> int:
    with client.app.state.database.engine.connect() as conn:
        return int(conn.execute(select(event_order.c.epoch)).scalar_one())


def _pages(client: Any, per_page: int) -> list[list[str]]:
    pages, page = [], 1
    while True:
        answer = client.get(f"{API}/events/list", params={"page": page, "per_page": per_page})
        assert answer.status_code == 200, answer.text
        ids = [event["metadata"]["id"] for event in answer.json()["events"]]
        if not ids:
            return pages
        pages.append(ids)
        page += 1


def _same_as_offset(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every page at a few sizes reads the same through the anchors as with OFFSET."""
    for per_page in (1, 4, 7):
        monkeypatch.setattr(ranks, "DEEP", 3)
        anchored = _pages(client, per_page)
        monkeypatch.setattr(ranks, "DEEP", 10**9)
        plain = _pages(client, per_page)
        assert anchored == plain, per_page
    monkeypatch.setattr(ranks, "DEEP", 3)


def test_deep_pages_match_offset_pages_through_every_kind_of_write(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranks, "STEP", 5)
    clock = ManualClock(datetime.now(UTC) - timedelta(days=2))
    client = make_client(clock=clock)
    created = []
    for number in range(EVENTS):
        created.append(create_event(client, title=f"deploy {number}"))
        if number % 3:  # some events share their second: the id orders them
            clock.advance(timedelta(seconds=1))
    _same_as_offset(client, monkeypatch)
    anchors = ranks._anchors[client.app.state.database.engine]
    assert len(anchors.keys) == EVENTS // ranks.STEP  # every 5th of the 60 older events

    epoch = _epoch(client)
    clock.advance(datetime.now(UTC) - clock.now())
    create_event(client, title="dated now")  # above the anchors: counted fresh
    assert _epoch(client) == epoch
    _same_as_offset(client, monkeypatch)
    assert ranks._anchors[client.app.state.database.engine] is anchors  # still good

    edited = created[10]
    answer = client.put(f"{API}/event", json=update_body(edited, message="edited"))
    assert answer.status_code == 200, answer.text
    assert _epoch(client) == epoch  # an ordinary update moves nothing

    # Another replica whose writes are dated three days back: below every anchor.
    backdating = make_client(clock=ManualClock(datetime.now(UTC) - timedelta(days=3)))
    create_event(backdating, title="backdated")
    assert _epoch(client) == epoch + 1
    _same_as_offset(client, monkeypatch)

    answer = client.delete(f"{API}/event/{created[30]['metadata']['id']}")
    assert answer.status_code == 200, answer.text
    assert _epoch(client) == epoch + 2
    _same_as_offset(client, monkeypatch)
    assert ranks._anchors[client.app.state.database.engine].epoch == epoch + 2


def test_a_page_past_the_end_is_empty(make_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranks, "STEP", 4)
    monkeypatch.setattr(ranks, "DEEP", 3)
    clock = ManualClock(datetime.now(UTC) - timedelta(days=1))
    client = make_client(clock=clock)
    for number in range(12):
        create_event(client, title=f"deploy {number}")
        clock.advance(timedelta(seconds=1))
    answer = client.get(f"{API}/events/list", params={"page": 50, "per_page": 2})
    assert answer.status_code == 200, answer.text
    assert answer.json()["events"] == []
    assert answer.json()["totalCount"] >= 12
