"""Alerts: each rule fires once per occurrence through the webhooks, on SQLite and
PostgreSQL, with the clock moved instead of waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tracker_server.alerts import p95
from tracker_server.clock import ManualClock

from tests.server.helpers import API, create_event, event_body, update_body
from tests.support.receivers import run_receiver

pytestmark = pytest.mark.server

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def app(make_client: Any) -> Any:
    clock = ManualClock(START)
    client = make_client(clock=clock, webhook_dispatcher=False, alert_timer=False)
    client.clock = clock
    return client


def evaluate(client: Any) -> list[str]:
    state = client.app.state
    return [o.rule for o in state.alerts.evaluate(state.outbox)]


def deploy(client: Any, seconds: float, status: str = "success", **attributes: Any) -> None:
    started = create_event(client, status="start", **attributes)
    client.clock.advance(timedelta(seconds=seconds))
    response = client.put(f"{API}/event", json=update_body(started, status=status))
    assert response.status_code == 200, response.text


def delivered_alerts(client: Any, receiver: Any, count: int) -> list[dict[str, Any]]:
    assert client.app.state.dispatcher.run_once() == count
    return [request.json() for request in receiver.wait_for(count)]


def test_a_deploy_slower_than_its_history_fires_once(app: Any) -> None:
    with run_receiver() as receiver:
        body = {"url": receiver.url, "events": ["alert.fired"]}
        assert app.post(f"{API}/webhooks", json=body).status_code == 201
        for seconds in (60, 70, 80, 90, 100):
            deploy(app, seconds)
        running = create_event(app, status="start")
        limit = 1.5 * 100  # 1.5 x the p95 of 60..100
        app.clock.advance(timedelta(seconds=limit - 1))
        assert evaluate(app) == []
        app.clock.advance(timedelta(seconds=2))
        assert evaluate(app) == ["slow_deploy"]
        assert evaluate(app) == []  # once per occurrence, not on every tick
        (alert,) = delivered_alerts(app, receiver, 1)
    assert alert["type"] == "alert.fired"
    assert alert["event"]["metadata"]["id"] == running["metadata"]["id"]
    details = alert["details"]
    assert details["rule"] == "slow_deploy" and details["service"] == "api"
    assert details["key"] == f"slow_deploy:{running['metadata']['id']}"
    assert details["values"] == {"runningSeconds": 151.0, "limitSeconds": 150.0}
    assert "over 1.5x the p95 of its last 5" in details["message"]


def test_too_little_history_never_fires(app: Any) -> None:
    for seconds in (60, 70, 80, 90):
        deploy(app, seconds)
    create_event(app, status="start")
    app.clock.advance(timedelta(hours=5))
    assert evaluate(app) == ["lock_held"]  # its lock is another matter


def test_repeated_failures_fire_once(app: Any) -> None:
    deploy(app, 10, status="failure")
    deploy(app, 10, status="failure", environment="UAT")  # another environment
    deploy(app, 10, status="failure")
    assert evaluate(app) == []
    deploy(app, 10, status="failure")
    assert evaluate(app) == ["failed_deploys"]
    deploy(app, 10, status="failure")
    assert evaluate(app) == []


def test_a_lock_held_too_long_fires_once_and_the_threshold_is_a_setting(
    make_client: Any,
) -> None:
    clock = ManualClock(START)
    client = make_client(
        clock=clock, webhook_dispatcher=False, alert_timer=False, alert_lock_held_seconds=600
    )
    body = {"service": "db", "environment": "production", "who": "bob"}
    assert client.post(f"{API}/lock", json=body).status_code == 200
    clock.advance(timedelta(seconds=599))
    assert evaluate(client) == []
    clock.advance(timedelta(seconds=2))
    assert evaluate(client) == ["lock_held"]
    clock.advance(timedelta(hours=1))
    assert evaluate(client) == []


def test_two_replicas_fire_an_occurrence_once(make_client: Any) -> None:
    clock = ManualClock(START)
    one = make_client(
        clock=clock, webhook_dispatcher=False, alert_timer=False, alert_lock_held_seconds=60
    )
    two = make_client(
        clock=clock, webhook_dispatcher=False, alert_timer=False, alert_lock_held_seconds=60
    )
    body = {"service": "db", "environment": "production", "who": "bob"}
    assert one.post(f"{API}/lock", json=body).status_code == 200
    clock.advance(timedelta(seconds=61))
    assert evaluate(two) + evaluate(one) == ["lock_held"]


def test_p95_is_the_nearest_rank() -> None:
    assert p95([5.0]) == 5.0
    assert p95([float(n) for n in range(1, 21)]) == 19.0
    assert p95([float(n) for n in range(1, 101)]) == 95.0


def test_breaking_glass_fires_an_alert_and_a_freeze_broken_notification(app: Any) -> None:
    with run_receiver() as receiver:
        hook = {"url": receiver.url, "events": ["alert.fired", "freeze.*"]}
        assert app.post(f"{API}/webhooks", json=hook).status_code == 201
        window = {
            "title": "Xmas",
            "type": "FREEZE_TYPE_HARD",
            "scopeType": "FREEZE_SCOPE_ENVIRONMENT",
            "scopeIds": ["production"],
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "2099-01-01T00:00:00Z",
        }
        assert app.post(f"{API}/freeze-window", json=window).status_code == 200
        body = {
            "title": "hotfix",
            "attributes": {
                "type": "deployment",
                "status": "start",
                "service": "api",
                "environment": "production",
                "owner": "alice",
            },
            "links": {},
            "breakGlass": "hotfix INC-42",
        }
        assert app.post(f"{API}/event", json=body).status_code == 200
        assert evaluate(app) == ["freeze_broken", "freeze_started"]
        assert evaluate(app) == []
        notifications = delivered_alerts(app, receiver, 3)
    by_type = {n["type"]: n for n in notifications}
    assert set(by_type) == {"freeze.broken", "alert.fired", "freeze.started"}
    broken, alert = by_type["freeze.broken"], by_type["alert.fired"]
    assert broken["type"] == "freeze.broken"
    assert broken["details"]["reason"] == "hotfix INC-42"
    assert alert["type"] == "alert.fired"
    assert alert["details"]["rule"] == "freeze_broken"
    assert alert["details"]["message"] == (
        "alice broke the freeze 'Xmas' for api in production: hotfix INC-42"
    )


def test_a_freeze_window_notifies_when_it_starts_and_ends(app: Any) -> None:
    with run_receiver() as receiver:
        hook = {"url": receiver.url, "events": ["freeze.*"], "environment": "production"}
        assert app.post(f"{API}/webhooks", json=hook).status_code == 201
        window = {
            "title": "Release weekend",
            "type": "FREEZE_TYPE_SOFT",
            "scopeType": "FREEZE_SCOPE_ENVIRONMENT",
            "scopeIds": ["production"],
            "startsAt": "2026-12-01T12:10:00Z",
            "endsAt": "2026-12-01T12:20:00Z",
        }
        assert app.post(f"{API}/freeze-window", json=window).status_code == 200
        assert evaluate(app) == []
        app.clock.advance(timedelta(minutes=11))
        assert evaluate(app) == ["freeze_started"]
        assert evaluate(app) == []
        app.clock.advance(timedelta(minutes=10))
        assert evaluate(app) == ["freeze_ended"]
        assert evaluate(app) == []
        started, ended = delivered_alerts(app, receiver, 2)
    assert started["type"] == "freeze.started" and ended["type"] == "freeze.ended"
    for notice in (started, ended):
        assert notice["details"]["window"]["title"] == "Release weekend"
        assert notice["details"]["until"] == "2026-12-01T12:20:00Z"
        assert notice["details"]["environment"] == "production"
    assert started["occurredAt"] == "2026-12-01T12:11:00Z"
    assert ended["occurredAt"] == "2026-12-01T12:21:00Z"


def _history_reads(client: Any, action: Any) -> tuple[int, Any]:
    """How many reads of past durations ``action`` made on the app's database."""
    from sqlalchemy import event as sqlalchemy_event

    engine = client.app.state.database.engine
    reads: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if " ".join(statement.split()).startswith("SELECT events.duration_seconds FROM"):
            reads.append(statement)

    sqlalchemy_event.listen(engine, "before_cursor_execute", seen)
    try:
        result = action()
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", seen)
    return len(reads), result


def test_a_tick_reads_each_history_once_and_none_for_fired_deploys(app: Any) -> None:
    for seconds in (60, 70, 80, 90, 100):
        deploy(app, seconds)
    for _ in range(3):  # three abandoned deploys of api to production, their locks gone
        response = app.post(f"{API}/event", json=event_body("deploy api", status="start"))
        assert response.status_code == 200, response.text
        key = {"service": "api", "environment": "production"}
        holder = app.get(f"{API}/locks/status", params=key).json()["lock"]
        assert app.delete(f"{API}/lock/{holder['id']}").status_code == 200
    app.clock.advance(timedelta(hours=1))
    reads, fired = _history_reads(app, lambda: evaluate(app))
    assert fired.count("slow_deploy") == 3
    assert reads == 1  # one history for the three
    reads, fired = _history_reads(app, lambda: evaluate(app))
    assert (reads, fired) == (0, [])  # fired already: nothing read again
