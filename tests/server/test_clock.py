"""The server reads "now" from one injectable clock: tests move time, never sleep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tracker_server.clock import ManualClock, SystemClock

from tests.server.conftest import CLOCK_START as START
from tests.server.helpers import API, assert_error, create_event, event_body

pytestmark = pytest.mark.server

LOCK = {"service": "api", "environment": "production", "resource": "deployment", "who": "ci"}


def test_a_ttl_lock_expires_when_the_clock_moves_past_it(timed, clock):
    lock = timed.post(f"{API}/lock", json=LOCK | {"ttlSeconds": 300}).json()["lock"]
    assert lock["createdAt"] == "2026-03-04T10:00:00Z"
    assert lock["expiresAt"] == "2026-03-04T10:05:00Z"

    clock.advance(timedelta(seconds=299))
    assert timed.get(f"{API}/lock/{lock['id']}").status_code == 200
    assert_error(timed.post(f"{API}/lock", json=LOCK | {"who": "other"}), 409, 6, "by ci")

    clock.advance(timedelta(seconds=2))
    assert timed.get(f"{API}/locks/list").json()["totalCount"] == 0
    assert_error(timed.get(f"{API}/lock/{lock['id']}"), 404, 5, "released or expired")
    taken = timed.post(f"{API}/lock", json=LOCK | {"who": "other"})
    assert taken.status_code == 200, taken.text
    assert taken.json()["lock"]["createdAt"] == "2026-03-04T10:05:01Z"


def test_renewing_counts_from_the_clock(timed, clock):
    lock = timed.post(f"{API}/lock", json=LOCK | {"ttlSeconds": 60}).json()["lock"]
    clock.advance(timedelta(seconds=50))
    renewed = timed.post(f"{API}/lock/{lock['id']}/renew", json={"ttlSeconds": 60})
    assert renewed.json()["lock"]["expiresAt"] == "2026-03-04T10:01:50Z"
    clock.advance(timedelta(seconds=61))
    assert_error(timed.post(f"{API}/lock/{lock['id']}/renew", json={"ttlSeconds": 60}), 404, 5)


def test_events_and_their_changelog_are_stamped_by_the_clock(timed, clock):
    event = create_event(timed, status="start")
    assert event["metadata"]["createdAt"] == "2026-03-04T10:00:00Z"
    clock.advance(timedelta(minutes=3))
    body = {
        "id": event["metadata"]["id"],
        "title": event["title"],
        "attributes": event["attributes"] | {"status": "success"},
        "links": event["links"],
    }
    closed = timed.put(f"{API}/event", json=body).json()["event"]
    assert closed["metadata"]["duration"] == "180s"
    assert closed["changelog"][-1]["timestamp"] == "2026-03-04T10:03:00Z"


def test_today_is_the_clocks_day(timed, clock):
    create_event(timed, startDate="2026-03-04T08:00:00Z")
    assert timed.get(f"{API}/events/today").json()["totalCount"] == 1
    clock.advance(timedelta(days=1))
    assert timed.get(f"{API}/events/today").json()["totalCount"] == 0


def test_an_idempotency_key_is_forgotten_after_a_day_of_clock_time(timed, clock):
    headers = {"Idempotency-Key": "run-1"}
    assert timed.post(f"{API}/event", json=event_body(), headers=headers).status_code == 200
    reused = timed.post(f"{API}/event", json=event_body(title="other"), headers=headers)
    assert_error(reused, 400, 3, "Idempotency-Key reused")
    clock.advance(timedelta(hours=24, seconds=1))
    fresh = timed.post(f"{API}/event", json=event_body(title="other"), headers=headers)
    assert fresh.status_code == 200, fresh.text


@pytest.mark.unit
def test_the_clocks():
    now = SystemClock().now()
    assert now.tzinfo is not None and abs(now - datetime.now(UTC)) < timedelta(seconds=5)
    clock = ManualClock(START)
    assert clock.advance(timedelta(seconds=1)) == clock.now() == START + timedelta(seconds=1)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="timezone"):
        ManualClock(datetime(2026, 1, 1))
