"""Every client method against the real bundled server (auth on), so the two agree."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta

import pytest

from tests.conftest import ADMIN_TOKEN as ADMIN
from tests.support.servers import RunningServer
from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import (
    AuthenticationFailed,
    InvalidRequest,
    LockHeld,
    NotFound,
    PermissionDenied,
)
from tracker_ci.models import (
    ChangelogEntry,
    ChangeType,
    CreateEventRequest,
    EventAttributes,
    EventType,
    Status,
    UpdateEventRequest,
    utcnow,
)

pytestmark = pytest.mark.server


@pytest.fixture
def admin(auth_server: RunningServer) -> Iterator[TrackerClient]:
    with TrackerClient(base_url=auth_server.url, token=ADMIN, retries=0) as tracker:
        yield tracker


def deployment_request(service: str) -> CreateEventRequest:
    return CreateEventRequest(
        title=f"Deploy {service}",
        attributes=EventAttributes(
            service=service,
            type=EventType.deployment,
            status=Status.start,
            environment="UAT",
            start_date=utcnow(),
            owner="alice",
        ),
    )


def test_events_round_trip(admin: TrackerClient, service: str) -> None:
    request = deployment_request(service)
    created = admin.create_event(request, idempotency_key=f"{service}-key", lock_ttl_seconds=300)
    # The same key and body is answered with the first result: no second event.
    repeat = admin.create_event(request, idempotency_key=f"{service}-key", lock_ttl_seconds=300)
    assert repeat.id == created.id
    assert admin.server_is_bundled is True

    assert admin.get_event(created.id).title == f"Deploy {service}"
    assert admin.search_events(service=service).total_count == 1
    today = date.today()
    assert created.id in [
        e.id
        for e in admin.search_events(
            service=service,
            start_date=today - timedelta(days=1),
            end_date=today + timedelta(days=1),
        ).events
    ]
    assert created.id in [e.id for e in admin.today_events(per_page=1000).events]
    # Newest first, one per page: the event this test just created.
    assert [e.id for e in admin.list_events(per_page=1).events] == [created.id]

    entry = ChangelogEntry(user="bob", change_type=ChangeType.commented, comment="50% rolled")
    commented = admin.add_changelog_entry(created.id, entry)
    assert commented.changelog[-1].comment == "50% rolled"
    assert admin.get_changelog(created.id, per_page=50).total_count == len(commented.changelog)

    slack_id = f"{uuid.uuid4().int % 10**10}.000100"
    assert admin.set_slack_id(created.id, slack_id).metadata.slack_id == slack_id
    assert admin.get_event(slack_id).id == created.id

    stats = admin.stats(
        start_date=today - timedelta(days=1),
        end_date=today + timedelta(days=1),
        types=["deployment"],
        environments=["UAT", "production"],
        service=service,
    )
    assert stats.total_count == 1
    monthly = admin.monthly_stats(
        start_date=today - timedelta(days=40),
        end_date=today + timedelta(days=1),
        service=service,
        group_by_service=True,
    )
    assert [(s.service, s.count) for s in monthly.stats] == [(service, 1)]

    attributes = created.attributes.model_copy(update={"status": Status.success})
    closed = admin.update_event(
        UpdateEventRequest(id=created.id, title="Released", attributes=attributes)
    )
    assert (closed.title, closed.attributes.status) == ("Released", Status.success)
    assert closed.metadata.duration is not None
    assert admin.find_lock(service=service, environment="UAT") is None

    admin.delete_event(created.id)
    with pytest.raises(NotFound, match="not found"):
        admin.get_event(created.id)


def test_locks_round_trip(admin: TrackerClient, service: str) -> None:
    taken = admin.acquire_lock(
        service=service, environment="UAT", who="alice", ttl_seconds=60, idempotency_key=service
    )
    assert taken.expires_at is not None
    assert admin.find_lock(service=service, environment="UAT") == taken

    with pytest.raises(LockHeld) as raised:
        admin.acquire_lock(service=service, environment="UAT", who="bob")
    held = raised.value
    assert (held.status_code, held.code, held.holder, held.lock_id) == (409, 6, "alice", taken.id)
    assert (held.service, held.environment, held.resource) == (service, "UAT", "deployment")

    renewed = admin.renew_lock(taken.id, 600)
    assert renewed.expires_at is not None and renewed.expires_at > taken.expires_at
    assert admin.update_lock(taken.id, who="carol").who == "carol"
    assert admin.get_lock(taken.id).who == "carol"
    with pytest.raises(LockHeld):
        admin.release_lock_by_key(
            service=service, environment="UAT", who="mallory", lock_id=taken.id
        )
    assert (
        admin.release_lock_by_key(service=service, environment="UAT", who="carol", lock_id=taken.id)
        == 1
    )

    again = admin.acquire_lock(service=service, environment="UAT", resource="operation")
    assert again.id in [lock.id for lock in admin.list_locks()]
    assert admin.release_lock(again.id) == 1
    assert admin.release_lock(again.id) == 0


def test_tokens_and_auth_errors(
    admin: TrackerClient, auth_server: RunningServer, unique: Callable[[str], str]
) -> None:
    name = unique("ci")
    created = admin.create_token(name=name, services=["api"])
    assert created.secret.startswith("trk_") and created.token.services == ["api"]
    (listed,) = [token for token in admin.list_tokens() if token.name == name]
    assert (listed.id, listed.services, listed.admin) == (created.token.id, ["api"], False)
    assert created.secret not in repr(admin.list_tokens())

    with TrackerClient(base_url=auth_server.url, token=created.secret, retries=0) as scoped:
        with pytest.raises(PermissionDenied, match="denied POST /api/v1alpha1/event"):
            scoped.create_event(deployment_request("not-api"))
        assert admin.revoke_token(created.token.id).id == created.token.id
        with pytest.raises(AuthenticationFailed, match="refused the token .401.: check TRACKER"):
            scoped.create_event(deployment_request("api"))

    with TrackerClient(base_url=auth_server.url, retries=0) as anonymous:
        with pytest.raises(AuthenticationFailed, match="requires authentication .401."):
            anonymous.acquire_lock(service="api", environment="UAT")
        health = anonymous.health()
        assert health["status"] == "ok" and health["database"] == "ok", health
        assert anonymous.server_is_bundled is True  # our server says so in a header


def test_bad_input_is_invalid_request(admin: TrackerClient) -> None:
    with pytest.raises(InvalidRequest, match="at least one filter"):
        admin.search_events()
    with pytest.raises(NotFound):
        admin.get_lock(str(uuid.uuid4()))


@pytest.mark.parametrize("slack_id", ["C0123?ts=1700000000.1#x", "thread 1%20b", "a&b=c"])
def test_a_slack_id_with_url_characters_finds_its_event(
    admin: TrackerClient, service: str, slack_id: str
) -> None:
    request = CreateEventRequest(
        title="incident",
        attributes=EventAttributes(service=service, type=EventType.incident, status=Status.open),
        slack_id=f"{slack_id} {service}",
    )
    created = admin.create_event(request)

    assert admin.get_event(f"{slack_id} {service}").id == created.id
