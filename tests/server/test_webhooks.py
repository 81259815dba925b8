"""Webhooks: the outbox written with each change, the dispatcher's retries and dead
letters, the API, against the real app (SQLite and PostgreSQL) and loopback receivers."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tracker_server.clock import ManualClock
from tracker_server.dispatcher import Dispatcher, retry_delay

from tests.server.helpers import API, create_event, update_body
from tests.support.receivers import Received, run_receiver

pytestmark = pytest.mark.server

SECRET = "s3cr3t"
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class Rig:
    client: Any
    clock: ManualClock
    dispatcher: Dispatcher

    def subscribe(self, url: str, events: list[str], **fields: Any) -> dict[str, Any]:
        body = {"url": url, "events": events, **fields}
        response = self.client.post(f"{API}/webhooks", json=body)
        assert response.status_code == 201, response.text
        return response.json()["webhook"]

    def deliveries(self, webhook_id: str | None = None) -> list[dict[str, Any]]:
        path = (
            f"{API}/webhooks/{webhook_id}/deliveries"
            if webhook_id
            else f"{API}/webhooks/deliveries"
        )
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        return response.json()["deliveries"]

    def advance_to_next_attempt(self) -> None:
        pending = [d for d in self.deliveries() if d["state"] == "pending"]
        due = min(datetime.fromisoformat(d["nextAttemptAt"]) for d in pending)
        if due > self.clock.now():
            self.clock.advance(due - self.clock.now())


@pytest.fixture
def rig(make_client: Any) -> Rig:
    clock = ManualClock(START)
    client = make_client(
        clock=clock, webhook_dispatcher=False, public_url="https://tracker.example"
    )
    return Rig(client, clock, client.app.state.dispatcher)


def _deploy(rig: Rig, **attributes: Any) -> dict[str, Any]:
    started = create_event(rig.client, status="start", **attributes)
    rig.clock.advance(timedelta(seconds=90))
    body = update_body(started, status="success")
    response = rig.client.put(f"{API}/event", json=body)
    assert response.status_code == 200, response.text
    return response.json()["event"]


def test_a_generic_webhook_gets_signed_deployment_notifications(rig: Rig) -> None:
    with run_receiver() as receiver:
        hook = rig.subscribe(receiver.url + "/hook", ["deployment.*"], secret=SECRET)
        finished = _deploy(rig)
        assert rig.dispatcher.run_once() == 2
        started_request, finished_request = receiver.wait_for(2)
    for request, name in (
        (started_request, "deployment.started"),
        (finished_request, "deployment.finished"),
    ):
        assert request.method == "POST" and request.path == "/hook"
        expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-tracker-signature-256"] == expected
        assert request.headers["x-tracker-event"] == name
        assert request.headers["content-type"] == "application/json"
        document = request.json()
        assert document["type"] == name
        assert document["event"]["metadata"]["id"] == finished["metadata"]["id"]
        assert document["sentAt"] == request.headers["x-tracker-timestamp"]
        assert set(document) == {"type", "event", "occurredAt", "sentAt"}
    assert started_request.json()["occurredAt"] == "2026-12-01T12:00:00Z"
    assert finished_request.json()["event"]["attributes"]["status"] == "success"
    assert finished_request.json()["event"]["metadata"]["duration"] == "90s"
    ids = {
        started_request.headers["x-tracker-delivery"],
        finished_request.headers["x-tracker-delivery"],
    }
    shown = rig.deliveries(hook["id"])
    assert {d["id"] for d in shown} == ids
    assert all(d["state"] == "delivered" and d["responseCode"] == 200 for d in shown)
    assert all(d["attempts"] == 1 and d["nextAttemptAt"] is None for d in shown)
    # Nothing else is due: the lock entries of the deployment matched no subscription.
    assert rig.dispatcher.run_once() == 0


def test_filters_by_event_service_and_environment(rig: Rig) -> None:
    with run_receiver() as receiver:
        rig.subscribe(receiver.url, ["lock.acquired"], service="api", environment="production")
        create_event(rig.client, status="start", service="web")
        create_event(rig.client, status="start", service="api", environment="UAT")
        create_event(rig.client, status="start")
        assert rig.dispatcher.run_once() == 1
        (request,) = receiver.wait_for(1)
    document = request.json()
    assert document["type"] == "lock.acquired"
    assert document["lock"]["service"] == "api" and document["lock"]["environment"] == "production"
    # The lock's event comes along.
    assert document["event"]["metadata"]["id"] == document["lock"]["eventId"]
    assert "x-tracker-signature-256" not in request.headers  # no secret, no signature


def test_a_refused_change_queues_nothing(rig: Rig) -> None:
    with run_receiver() as receiver:
        rig.subscribe(receiver.url, ["*"])
        create_event(rig.client, status="start")
        refused = rig.client.post(
            f"{API}/event",
            json={
                "title": "again",
                "attributes": {
                    "type": "deployment",
                    "status": "start",
                    "service": "api",
                    "environment": "production",
                },
                "links": {},
            },
        )
        assert refused.status_code == 409
        types = sorted(d["type"] for d in rig.deliveries())
    assert types == ["deployment.started", "lock.acquired"]


def test_a_failing_receiver_gets_the_same_delivery_id_with_backoff(rig: Rig) -> None:
    answers = iter([500, 503, 200])
    with run_receiver(lambda _r: (next(answers), None)) as receiver:
        rig.subscribe(receiver.url, ["deployment.started"], secret=SECRET)
        create_event(rig.client, status="start")
        assert rig.dispatcher.run_once() == 1
        (failed,) = rig.deliveries()
        assert failed["state"] == "pending" and failed["responseCode"] == 500
        assert failed["attempts"] == 1 and "HTTP 500" in failed["error"]
        delay = datetime.fromisoformat(failed["nextAttemptAt"]) - START
        # Attempt 1 of base 10 s: between 5 and 10 s (equal jitter).
        assert timedelta(seconds=5) <= delay <= timedelta(seconds=10)
        assert rig.dispatcher.run_once() == 0  # not due yet
        rig.advance_to_next_attempt()
        assert rig.dispatcher.run_once() == 1
        (second,) = rig.deliveries()
        second_delay = datetime.fromisoformat(second["nextAttemptAt"]) - rig.clock.now()
        assert timedelta(seconds=10) <= second_delay <= timedelta(seconds=20)
        rig.advance_to_next_attempt()
        assert rig.dispatcher.run_once() == 1
        requests = receiver.wait_for(3)
    assert len({r.headers["x-tracker-delivery"] for r in requests}) == 1
    assert [r.json()["type"] for r in requests] == ["deployment.started"] * 3
    (done,) = rig.deliveries()
    assert done["state"] == "delivered" and done["attempts"] == 3 and done["responseCode"] == 200
    assert done["id"] == requests[0].headers["x-tracker-delivery"]


def test_a_delivery_is_dead_after_the_max_age_and_the_webhook_shows_failing(
    make_client: Any,
) -> None:
    clock = ManualClock(START)
    client = make_client(
        clock=clock,
        webhook_dispatcher=False,
        webhook_max_age_seconds=3600,
        webhook_retry_max_seconds=600,
    )
    rig = Rig(client, clock, client.app.state.dispatcher)
    with run_receiver(lambda _r: (500, {"error": "down"})) as receiver:
        hook = rig.subscribe(receiver.url, ["deployment.started"])
        create_event(rig.client, status="start")
        for _ in range(30):
            assert rig.dispatcher.run_once() == 1
            (delivery,) = rig.deliveries()
            if delivery["state"] == "dead":
                break
            rig.advance_to_next_attempt()
        requests = receiver.wait_for(delivery["attempts"])
    assert delivery["state"] == "dead" and delivery["nextAttemptAt"] is None
    assert clock.now() - START >= timedelta(seconds=3600)
    assert len(requests) == delivery["attempts"] >= 6
    assert len({r.headers["x-tracker-delivery"] for r in requests}) == 1
    assert rig.dispatcher.run_once() == 0
    (listed,) = client.get(f"{API}/webhooks").json()["webhooks"]
    assert listed["id"] == hook["id"] and listed["failing"] == 1


def test_an_unreachable_receiver_is_retried(rig: Rig) -> None:
    with run_receiver() as receiver:
        url = receiver.url
    rig.subscribe(url, ["deployment.started"])  # nothing listens there any more
    create_event(rig.client, status="start")
    assert rig.dispatcher.run_once() == 1
    (delivery,) = rig.deliveries()
    assert delivery["state"] == "pending" and delivery["responseCode"] is None
    assert delivery["error"].startswith("ConnectError")


def test_webhook_test_sends_a_test_notification(rig: Rig) -> None:
    with run_receiver() as receiver:
        hook = rig.subscribe(receiver.url, ["alert.fired"], secret=SECRET)
        response = rig.client.post(f"{API}/webhooks/{hook['id']}/test")
        assert response.status_code == 202, response.text
        (queued,) = response.json()["deliveries"]
        assert queued["type"] == "webhook.test" and queued["state"] == "pending"
        assert rig.dispatcher.run_once() == 1
        (request,) = receiver.wait_for(1)
    assert request.headers["x-tracker-delivery"] == queued["id"]
    assert request.json()["details"] == {"webhookId": hook["id"]}


def test_the_api_never_shows_a_secret_and_refuses_bad_input(rig: Rig) -> None:
    hook = rig.subscribe("https://example.com/x", ["lock.*", "deployment.finished"], secret=SECRET)
    assert hook["hasSecret"] is True and "secret" not in hook
    listed = rig.client.get(f"{API}/webhooks").json()
    assert listed["totalCount"] == 1 and SECRET not in json.dumps(listed)
    bad = [
        ({"url": "ftp://x", "events": ["*"]}, "is not an http(s) URL"),
        ({"url": "https://x", "events": []}, "name at least one event"),
        ({"url": "https://x", "events": ["deploy.started"]}, "matches no event"),
        ({"url": "https://x", "events": ["*"], "kind": "email"}, "is not one of generic"),
        ({"url": "https://x", "events": ["*"], "environment": "prod env"}, "is not known"),
    ]
    for body, message in bad:
        response = rig.client.post(f"{API}/webhooks", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == 3 and message in response.json()["message"]
        assert response.json()["details"] == []
    gone = rig.client.delete(f"{API}/webhooks/{hook['id']}")
    assert gone.status_code == 200 and gone.json()["webhook"]["id"] == hook["id"]
    again = rig.client.delete(f"{API}/webhooks/{hook['id']}")
    assert again.status_code == 404 and again.json()["code"] == 5
    assert rig.client.get(f"{API}/webhooks/{hook['id']}/deliveries").status_code == 404


def test_webhooks_need_the_admin_token_when_auth_is_on(make_client: Any) -> None:
    client = make_client(auth=True, admin_token="adm", webhook_dispatcher=False)
    body = {"url": "https://example.com", "events": ["*"]}
    assert client.post(f"{API}/webhooks", json=body).status_code == 401
    assert client.get(f"{API}/webhooks").status_code == 401
    token = client.post(
        f"{API}/tokens", json={"name": "ci"}, headers={"Authorization": "Bearer adm"}
    ).json()["secret"]
    ci = {"Authorization": f"Bearer {token}"}
    assert client.post(f"{API}/webhooks", json=body, headers=ci).status_code == 403
    admin = {"Authorization": "Bearer adm"}
    assert client.post(f"{API}/webhooks", json=body, headers=admin).status_code == 201


def test_retry_delay_doubles_up_to_the_cap_with_jitter() -> None:
    import random

    rng = random.Random(7)
    for attempts, ceiling in ((1, 10), (2, 20), (3, 40), (12, 3600), (40, 3600)):
        delay = retry_delay(attempts, base=10, cap=3600, rng=rng).total_seconds()
        assert ceiling / 2 <= delay <= ceiling


def test_received_is_json() -> None:
    assert Received("POST", "/", {}, b'{"a": 1}').json() == {"a": 1}


def test_the_readme_verification_accepts_a_real_delivery_and_refuses_a_forgery(rig: Rig) -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "docs" / "notifications.md").read_text()
    section = readme[readme.index("**Verifying a generic webhook**") :]
    code = section[section.index("```python\n") + 10 : section.index("```\n", 20)]
    # Short (ruff formats the docs' code blocks: the return spans a few lines).
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    verify = namespace["verify"]
    rig.clock.advance(datetime.now(UTC) - START)  # the receiver checks against real time
    with run_receiver() as receiver:
        rig.subscribe(receiver.url, ["deployment.started"], secret=SECRET)
        create_event(rig.client, status="start")
        assert rig.dispatcher.run_once() == 1
        (request,) = receiver.wait_for(1)
    signature = request.headers["x-tracker-signature-256"]
    timestamp = request.headers["x-tracker-timestamp"]
    assert verify(SECRET.encode(), request.body, signature, timestamp)
    assert not verify(b"wrong", request.body, signature, timestamp)
    assert not verify(SECRET.encode(), request.body + b" ", signature, timestamp)
    assert not verify(SECRET.encode(), request.body, signature, "2020-01-01T00:00:00Z")


def test_queue_notifications_reach_their_subscribers(rig: Rig) -> None:
    key = {"service": "api", "environment": "production", "resource": "deployment"}
    with run_receiver() as receiver:
        rig.subscribe(receiver.url, ["queue.*"], service="api")
        policy = {"environment": "production", "policy": "newest"}
        assert rig.client.put(f"{API}/locks/policy", json=policy).status_code == 200
        assert rig.client.post(f"{API}/lock", json=key | {"who": "holder"}).status_code == 200
        for who in ("old", "new"):
            response = rig.client.post(f"{API}/lock/queue", json=key | {"who": who})
            assert response.status_code == 200, response.text
        assert rig.dispatcher.run_once() == 3
        requests = receiver.wait_for(3)
    kinds = [(r.json()["type"], r.json()["details"].get("who")) for r in requests]
    # In the order of the changes (one webhook's deliveries go out in journal order).
    assert kinds == [("queue.joined", None), ("queue.superseded", "old"), ("queue.joined", None)]
    joined = [r.json() for r in requests if r.json()["type"] == "queue.joined"]
    assert sorted(j["details"]["entry"]["who"] for j in joined) == ["new", "old"]
    assert all(j["details"]["service"] == "api" for j in joined)


def test_with_the_defaults_a_failing_delivery_is_retried_for_24_hours_then_dead(
    rig: Rig,
) -> None:
    with run_receiver(lambda _r: (503, None)) as receiver:
        rig.subscribe(receiver.url, ["deployment.started"])
        create_event(rig.client, status="start")
        last_pending = START
        for _ in range(80):
            assert rig.dispatcher.run_once() == 1
            (delivery,) = rig.deliveries()
            if delivery["state"] == "dead":
                break
            last_pending = rig.clock.now()
            rig.advance_to_next_attempt()
        requests = receiver.wait_for(delivery["attempts"])
    assert delivery["state"] == "dead"
    # Still retried just before 24 h, dead at the first attempt after 24 h (gaps <= 1 h).
    assert last_pending - START < timedelta(hours=24) <= rig.clock.now() - START
    assert rig.clock.now() - START < timedelta(hours=25)
    # 10 s doubling with equal jitter, capped at 1 h: between 33 and 57 attempts in 24 h.
    assert 33 <= delivery["attempts"] <= 57
    assert len({r.headers["x-tracker-delivery"] for r in requests}) == 1


def test_deliveries_show_what_was_sent_and_ended_ones_are_pruned_after_a_week(rig: Rig) -> None:
    answers = iter([200, 500])
    with run_receiver(lambda _r: (next(answers), None)) as receiver:
        rig.subscribe(receiver.url, ["deployment.started"])
        started = create_event(rig.client, status="start")
        create_event(rig.client, status="start", service="web")
        assert rig.dispatcher.run_once() == 2
        receiver.wait_for(2)
    shown = {d["body"]["event"]["attributes"]["service"]: d for d in rig.deliveries()}
    assert shown["api"]["body"]["event"]["metadata"]["id"] == started["metadata"]["id"]
    assert shown["api"]["body"]["type"] == "deployment.started"
    assert "sentAt" not in shown["api"]["body"]
    assert shown["api"]["state"] == "delivered" and shown["web"]["state"] == "pending"
    rig.clock.advance(timedelta(days=6, hours=23))
    assert rig.dispatcher.prune() == 0
    rig.clock.advance(timedelta(hours=2))
    assert rig.dispatcher.prune() == 1  # the delivered one; a pending one is never pruned
    assert [d["state"] for d in rig.deliveries()] == ["pending"]


@pytest.mark.parametrize("secret", [SECRET, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
def test_deliveries_verify_with_a_standard_webhooks_library(rig: Rig, secret: str) -> None:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    rig.clock.advance(datetime.now(UTC) - START)  # the verifier checks against real time
    with run_receiver() as receiver:
        rig.subscribe(receiver.url, ["deployment.*"], secret=secret)
        _deploy(rig)
        assert rig.dispatcher.run_once() == 2
        requests = receiver.wait_for(2)
    # The specification's key: a whsec_ secret as it is, any other secret as its bytes.
    verifier = Webhook(secret if secret.startswith("whsec_") else secret.encode())
    for request in requests:
        assert request.headers["webhook-id"] == request.headers["x-tracker-delivery"]
        assert request.headers["webhook-signature"].startswith("v1,")
        assert verifier.verify(request.body, request.headers) == request.json()
        # The current header is still there for existing receivers.
        expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-tracker-signature-256"] == "sha256=" + expected
    first, second = requests
    replayed = {**first.headers, "webhook-id": second.headers["webhook-id"]}
    with pytest.raises(WebhookVerificationError):  # the id is signed: no replay under another
        verifier.verify(first.body, replayed)
    with pytest.raises(WebhookVerificationError):
        Webhook(b"wrong").verify(first.body, first.headers)


def test_without_a_secret_a_delivery_is_identified_but_not_signed(rig: Rig) -> None:
    with run_receiver() as receiver:
        rig.subscribe(receiver.url, ["deployment.started"])
        create_event(rig.client, status="start")
        assert rig.dispatcher.run_once() == 1
        (request,) = receiver.wait_for(1)
    assert request.headers["webhook-timestamp"] == str(int(START.timestamp()))
    assert "webhook-signature" not in request.headers
    assert "x-tracker-signature-256" not in request.headers


def test_a_410_disables_the_webhook_and_kills_its_pending_deliveries(rig: Rig) -> None:
    with run_receiver(lambda _r: (410, {"error": "gone"})) as receiver:
        hook = rig.subscribe(receiver.url, ["deployment.*"])
        _deploy(rig)
        assert rig.dispatcher.run_once() == 2
        (request,) = receiver.wait_for(1)  # the second one is never sent
        create_event(rig.client, status="start", service="web")
        assert rig.dispatcher.run_once() == 0  # a disabled webhook is not notified
    assert request.json()["type"] == "deployment.started"
    states = sorted((d["type"], d["state"], d["responseCode"]) for d in rig.deliveries())
    assert states == [("deployment.finished", "dead", None), ("deployment.started", "dead", 410)]
    (listed,) = rig.client.get(f"{API}/webhooks").json()["webhooks"]
    assert listed["id"] == hook["id"] and listed["disabledAt"] == "2026-12-01T12:01:30Z"
    assert listed["disabledReason"] == ("the receiver answered 410 (gone) on 2026-12-01T12:01:30Z")
    test = rig.client.post(f"{API}/webhooks/{hook['id']}/test")
    assert test.status_code == 400 and "is disabled" in test.json()["message"]


@pytest.mark.parametrize(
    ("status", "retry_after", "wait"),
    [
        (429, "120", timedelta(seconds=120)),
        (503, "Tue, 01 Dec 2026 12:05:00 GMT", timedelta(minutes=5)),
        (429, "0", timedelta(seconds=1)),  # at least a second: no busy loop
        (503, "soon", None),  # unreadable: the backoff
        (500, "120", None),  # only 429 and 503 say "later"
    ],
)
def test_429_and_503_are_retried_after_their_retry_after(
    rig: Rig, status: int, retry_after: str, wait: timedelta | None
) -> None:
    answers = iter([(status, None, {"Retry-After": retry_after}), (200, None)])
    with run_receiver(lambda _r: next(answers)) as receiver:
        rig.subscribe(receiver.url, ["deployment.started"])
        create_event(rig.client, status="start")
        assert rig.dispatcher.run_once() == 1
        (failed,) = rig.deliveries()
        delay = datetime.fromisoformat(failed["nextAttemptAt"]) - START
        if wait is None:
            assert timedelta(seconds=5) <= delay <= timedelta(seconds=10)  # the backoff
        else:
            assert delay == wait
        rig.advance_to_next_attempt()
        assert rig.dispatcher.run_once() == 1
        receiver.wait_for(2)
    (done,) = rig.deliveries()
    assert failed["responseCode"] == status and done["state"] == "delivered"


def test_a_rotated_secret_signs_beside_the_new_one_until_its_time_ends(rig: Rig) -> None:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    rig.clock.advance(datetime.now(UTC) - START)  # the verifier checks against real time
    with run_receiver() as receiver:
        hook = rig.subscribe(receiver.url, ["deployment.started"], secret=SECRET)
        body = {"secret": "n3w", "previousValidSeconds": 3600}
        rotate = rig.client.post(f"{API}/webhooks/{hook['id']}/secret", json=body)
        assert rotate.status_code == 200, rotate.text
        rotated = rotate.json()["webhook"]
        again = rig.client.post(f"{API}/webhooks/{hook['id']}/secret", json=body).json()
        assert again["webhook"] == rotated  # a repeat keeps the replaced secret
        create_event(rig.client, status="start")
        assert rig.dispatcher.run_once() == 1
        rig.clock.advance(timedelta(seconds=3601))
        create_event(rig.client, status="start", service="web")
        assert rig.dispatcher.run_once() == 1
        during, after = receiver.wait_for(2)
    assert rotated["hasSecret"] and SECRET not in rotate.text and "n3w" not in rotate.text
    assert datetime.fromisoformat(rotated["previousSecretUntil"]) > datetime.now(UTC)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    new_mac = hmac.new(b"n3w", during.body, hashlib.sha256).hexdigest()
    assert during.headers["x-tracker-signature-256"] == "sha256=" + new_mac
    for key in (b"n3w", SECRET.encode()):  # receivers on either secret accept it
        assert Webhook(key).verify(during.body, during.headers)["type"] == "deployment.started"
    # An hour later only the new secret signs (the manual clock is an hour ahead now, past
    # the verifier's tolerance: the signature is compared with the library's own).
    sent = datetime.fromtimestamp(int(after.headers["webhook-timestamp"]), UTC)
    signed = Webhook(b"n3w").sign(after.headers["webhook-id"], sent, after.body)
    assert after.headers["webhook-signature"] == signed
    with pytest.raises(WebhookVerificationError):  # and the old secret's signature is gone
        Webhook(SECRET.encode()).verify(
            during.body,
            {
                **during.headers,
                **{"webhook-signature": during.headers["webhook-signature"].split(" ")[0]},
            },
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"secret": ""}, "secret is required"),
        ({"secret": "x", "previousValidSeconds": 8 * 86400}, "between 0 and 604800"),
        ({"secret": "x", "previousValidSeconds": -1}, "between 0 and 604800"),
    ],
)
def test_a_rotation_refuses_bad_input(rig: Rig, body: dict[str, Any], message: str) -> None:
    hook = rig.subscribe("https://example.com/x", ["*"], secret=SECRET)
    response = rig.client.post(f"{API}/webhooks/{hook['id']}/secret", json=body)
    assert response.status_code == 400 and message in response.json()["message"], response.text
    missing = rig.client.post(f"{API}/webhooks/{'0' * 8}-0000-0000-0000-{'0' * 12}/secret",
                              json={"secret": "x"})  # fmt: skip
    assert missing.status_code == 404
