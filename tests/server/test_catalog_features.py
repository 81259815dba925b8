"""The catalog serving our own features (issue 24, part 2), on the real app: its writes are
journalled like every other write, and notifications carry the service's owner and
channel in each receiver's own shape (loopback receivers, exact payloads, each checked
against its receiver's rules)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tracker_server.clock import ManualClock
from tracker_server.journal import CatalogEntryDeleted, CatalogEntrySet, read_journal

from tests.server.helpers import API, assert_error, create_event, update_body
from tests.server.test_sinks import FakeGitHub, github_requests
from tests.support.payloads import grafana_annotation, influx_points, slack_message
from tests.support.receivers import run_receiver

pytestmark = pytest.mark.server

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PR = "https://github.com/octo/app/pull/7"
CHANNEL = {"type": "slack", "name": "#api-deploys", "url": "https://acme.slack.com/archives/C1"}
ADMIN = "trk_admin_for_the_catalog_feature_tests_01"


def entry(name: str = "api", **fields: Any) -> dict[str, Any]:
    """A PUT /catalog body, snake_case as upstream's UI sends it."""
    return {"name": name, "owner": "team-payments", "version": "1.0.0", "type": "project"} | fields


def put(client: Any, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = client.put(f"{API}/catalog", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["catalog"]


def journal(client: Any, after: int = 0) -> list[Any]:
    with client.app.state.database.read() as conn:
        return read_journal(conn, after=after, limit=1000)


def last_id(client: Any) -> int:
    records = journal(client)
    return records[-1].id if records else 0


# ------------------------------------------------------------------ the journal
def test_every_catalog_write_is_journalled_in_its_transaction(make_client):
    client = make_client(clock=ManualClock(START))
    before = last_id(client)
    created = put(client, entry(dependencies_in=["db"]))
    replaced = put(client, entry(owner="team-core", dependencies_in=["db"]))
    versions = client.put(
        f"{API}/catalog/api/versions",
        json={"available_versions": ["1.0.0", "1.1.0"], "latest_version": "1.1.0"},
    )
    assert versions.status_code == 200, versions.text
    dependencies = client.put(
        f"{API}/catalog/api/dependencies",
        json={"dependencies_in": ["db", "cache"], "dependencies_out": ["web"]},
    )
    assert dependencies.status_code == 200, dependencies.text
    deleted = client.delete(f"{API}/catalog", params={"name": "api"})
    assert deleted.status_code == 200, deleted.text

    records = journal(client, after=before)
    assert [r.entry.KIND for r in records] == [
        "catalog_set",
        "catalog_set",
        "catalog_set",
        "catalog_set",
        "catalog_deleted",
    ]
    assert all(r.occurred_at == START for r in records)
    create, replace, version, depend, delete = (r.entry for r in records)
    assert isinstance(create, CatalogEntrySet) and create.before is None
    assert create.after.to_wire() == created
    assert replace.before is not None and replace.before.owner == "team-payments"
    assert replace.after.to_wire() == replaced and replace.after.owner == "team-core"
    assert version.after.latest_version == "1.1.0" and version.before.latest_version == ""
    assert depend.before.dependencies_in == ["db"]
    assert depend.after.dependencies_in == ["db", "cache"]
    assert depend.after.dependencies_out == ["web"]
    assert isinstance(delete, CatalogEntryDeleted) and delete.entry.owner == "team-core"
    assert delete.entry.dependencies_out == ["web"]


def test_a_refused_catalog_write_journals_nothing(make_client):
    client = make_client(auth=True, admin_token=ADMIN)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    put(client, entry(), **admin)
    before = last_id(client)
    scoped = client.post(
        f"{API}/tokens", json={"name": "web-ci", "services": ["web"]}, headers=admin
    )
    secret = scoped.json()["secret"]
    after_token = last_id(client)
    assert after_token > before  # the token itself is journalled
    refused = client.put(
        f"{API}/catalog", json=entry(owner="me"), headers={"Authorization": f"Bearer {secret}"}
    )
    assert_error(refused, 403, 7)
    missing = client.delete(f"{API}/catalog", params={"name": "nope"}, headers=admin)
    assert_error(missing, 404, 5, "catalog entry 'nope' not found")
    invalid = client.put(f"{API}/catalog", json=entry(owner=""), headers=admin)
    assert_error(invalid, 400, 3, "owner")
    assert journal(client, after=after_token) == []


def test_catalog_writes_write_audit_lines(client, caplog):
    with caplog.at_level(logging.INFO, logger="tracker_server.audit"):
        put(client, entry("audited"))
        put(client, entry("audited", owner="team-b"))
        client.delete(f"{API}/catalog", params={"name": "audited"})
    lines = [
        (r.getMessage(), r.fields)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "tracker_server.audit"
    ]
    assert lines == [
        (
            "catalog entry created",
            {"name": "audited", "owner": "team-payments", "version": "1.0.0"},
        ),
        ("catalog entry changed", {"name": "audited", "owner": "team-b", "version": "1.0.0"}),
        ("catalog entry deleted", {"name": "audited", "owner": "team-b", "version": "1.0.0"}),
    ]


def test_catalog_changes_notify_no_webhook(client):
    # No catalog event type exists among the webhook events: journal only.
    from tracker_ci.models import WEBHOOK_EVENTS

    assert not [name for name in WEBHOOK_EVENTS if name.startswith("catalog")]
    hook = client.post(f"{API}/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["*"]})
    assert hook.status_code == 201, hook.text
    put(client, entry())
    client.delete(f"{API}/catalog", params={"name": "api"})
    assert client.get(f"{API}/webhooks/deliveries").json()["deliveries"] == []


# -------------------------------------------------------------- notifications
#: Sinks do not depend on the backend (the outbox runs on both in the journal tests above).
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def app(make_client: Any) -> Any:
    clock = ManualClock(START)
    client = make_client(
        clock=clock, webhook_dispatcher=False, public_url="https://tracker.example"
    )
    client.clock = clock
    return client


def subscribe(client: Any, url: str, kind: str, events: list[str], secret: str = "") -> str:
    body = {"url": url, "kind": kind, "events": events, "secret": secret}
    response = client.post(f"{API}/webhooks", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["webhook"]["id"])


def deploy(client: Any, seconds: int = 95, **attributes: Any) -> dict[str, Any]:
    attributes.setdefault("links", {"pullRequestLink": PR, "ticket": ""})
    started = create_event(client, "deploy api 1.2", status="start", **attributes)
    client.clock.advance(timedelta(seconds=seconds))
    response = client.put(f"{API}/event", json=update_body(started, status="success"))
    assert response.status_code == 200, response.text
    return dict(response.json()["event"])


def dispatch(client: Any) -> int:
    return int(client.app.state.dispatcher.run_once())


@sqlite_only
def test_a_generic_webhook_gets_the_services_owner_and_channel(app):
    put(app, entry(communication_channels=[CHANNEL, {"type": "email", "name": "ops@x.io"}]))
    with run_receiver() as receiver:
        subscribe(app, receiver.url, "generic", ["deployment.finished", "lock.released"])
        event = deploy(app)
        create_event(app, "deploy web", status="success", service="web")  # no entry
        assert dispatch(app) == 3
        requests = receiver.wait_for(3)
    bodies = [request.json() for request in requests]
    finished = next(b for b in bodies if b["type"] == "deployment.finished")
    assert finished["event"]["metadata"]["id"] == event["metadata"]["id"]
    assert finished["service"] == {
        "name": "api",
        "owner": "team-payments",
        "channel": {
            "type": "slack",
            "name": "#api-deploys",
            "url": "https://acme.slack.com/archives/C1",
            "description": "",
        },
    }
    assert list(finished) == ["type", "event", "service", "occurredAt", "sentAt"]
    released = next(b for b in bodies if b["type"] == "lock.released")
    assert released["lock"]["service"] == "api" and released["service"]["owner"] == "team-payments"
    unknown = [b for b in bodies if b.get("event") and b["event"]["attributes"]["service"] == "web"]
    assert len(unknown) == 1 and "service" not in unknown[0]  # no entry: no service object


@sqlite_only
def test_an_entry_without_a_channel_gives_a_null_channel(app):
    put(app, entry())
    with run_receiver() as receiver:
        subscribe(app, receiver.url, "generic", ["deployment.started"])
        create_event(app, "deploy api", status="start")
        assert dispatch(app) == 1
        (request,) = receiver.wait_for(1)
    assert request.json()["service"] == {"name": "api", "owner": "team-payments", "channel": None}


@sqlite_only
def test_slack_names_the_owner_and_the_channel_escaped(app):
    hostile = {"type": "slack", "name": "<!channel> & co", "url": CHANNEL["url"]}
    put(app, entry(owner="team <@U1> & friends", communication_channels=[hostile]))
    with run_receiver(lambda _r: (200, None)) as slack:
        subscribe(app, slack.url, "slack", ["deployment.finished"])
        deploy(app)
        assert dispatch(app) == 1
        (request,) = slack.wait_for(1)
    message = slack_message(request.json())  # Slack's rules: escapes, limits, blocks
    assert message["text"] == (
        "deployment.finished: service=api environment=production status=success who=alice "
        f"duration=95s pr={PR} owner=team &lt;@U1&gt; &amp; friends "
        "channel=&lt;!channel&gt; &amp; co"
    )
    _headline, facts, _link = message["blocks"]
    assert [f["text"] for f in facts["fields"]] == [
        "*Service*\napi",
        "*Environment*\nproduction",
        "*Status*\nsuccess",
        "*Who*\nalice",
        "*Duration*\n95s",
        f"*PR*\n{PR}",
        "*Owner*\nteam &lt;@U1&gt; &amp; friends",
        "*Channel*\n&lt;!channel&gt; &amp; co",
    ]


@sqlite_only
def test_grafana_and_influx_tag_the_owner(app):
    put(app, entry(owner="team payments,eu"))
    with (
        run_receiver(lambda _r: (200, {"id": 1})) as grafana,
        run_receiver(lambda _r: (204, None)) as influx,
    ):
        subscribe(app, grafana.url, "grafana", ["deployment.finished"])
        subscribe(app, influx.url + "/api/v2/write?org=o&bucket=b", "influx", ["deployment.*"])
        deploy(app, seconds=120)
        dispatch(app)
        (annotation,) = grafana.wait_for(1)
        (point,) = influx.wait_for(1)
    body = grafana_annotation(annotation.json())
    assert body["tags"] == [
        "tracker",
        "deployment.finished",
        "service:api",
        "environment:production",
        "status:success",
        "owner:team payments,eu",
    ]
    end = int(START.timestamp()) + 120
    assert point.body.decode() == (
        "tracker_deployment,environment=production,owner=team\\ payments\\,eu,service=api,"
        f"status=success duration_seconds=120.0 {end}"
    )
    (parsed,) = influx_points(point.body)
    assert parsed["tags"] == {
        "environment": "production",
        "owner": "team payments,eu",
        "service": "api",
        "status": "success",
    }


@sqlite_only
def test_github_deployment_payload_names_the_owner_and_channel(app):
    put(app, entry(communication_channels=[CHANNEL]))
    github = FakeGitHub()
    with run_receiver(github) as receiver:
        github.base = receiver.url
        subscribe(app, receiver.url, "github-deployments", ["deployment.started"], "ghs_x")
        event = create_event(app, "deploy api", status="start", links={"pullRequestLink": PR})
        assert dispatch(app) == 1
        requests = receiver.wait_for(4)
    github_requests(requests)  # GitHub's REST API 2022-11-28: the bodies' keys and limits
    (deployment,) = github.deployments
    assert deployment["payload"] == {
        "trackerEventId": event["metadata"]["id"],
        "owner": "team-payments",
        "channel": "#api-deploys",
    }


@sqlite_only
def test_the_owner_is_the_one_at_the_time_of_the_change(app):
    # The delivery is written in the change's transaction: a later catalog edit does not
    # rewrite what was (or will be, on a retry) sent.
    put(app, entry())
    with run_receiver() as receiver:
        subscribe(app, receiver.url, "generic", ["deployment.started"])
        create_event(app, "deploy api", status="start")
        put(app, entry(owner="team-new"))
        assert dispatch(app) == 1
        (request,) = receiver.wait_for(1)
    assert json.loads(request.body)["service"]["owner"] == "team-payments"
