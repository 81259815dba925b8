"""Every sink against a real loopback receiver: the exact requests Slack, GitHub (through
PyGithub), Grafana and InfluxDB get, with retries keeping the delivery and dead letters."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from tracker_server.clock import ManualClock

from tests.server.helpers import API, create_event, update_body
from tests.support.payloads import grafana_annotation, influx_points, slack_message
from tests.support.receivers import Received, run_receiver

pytestmark = pytest.mark.server

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PR = "https://github.com/octo/app/pull/7"


@pytest.fixture
def database_url(migrated_sqlite_template: Path, tmp_path: Path) -> str:
    """Sinks do not depend on the backend: SQLite only (the outbox runs on both elsewhere)."""
    target = tmp_path / "tracker.db"
    shutil.copyfile(migrated_sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def app(make_client: Any) -> Any:
    clock = ManualClock(START)
    client = make_client(
        clock=clock, webhook_dispatcher=False, public_url="https://tracker.example"
    )
    client.clock = clock
    return client


def subscribe(
    client: Any, url: str, kind: str, events: list[str], secret: str = "", **options: Any
) -> str:
    body = {"url": url, "kind": kind, "events": events, "secret": secret, "options": options}
    response = client.post(f"{API}/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()["webhook"]["id"]


def deploy(
    client: Any,
    status: str = "success",
    seconds: int = 95,
    title: str = "deploy app 1.2",
    **attributes: Any,
) -> dict:
    attributes.setdefault("links", {"pullRequestLink": PR, "ticket": ""})
    started = create_event(client, title, status="start", **attributes)
    client.clock.advance(timedelta(seconds=seconds))
    response = client.put(f"{API}/event", json=update_body(started, status=status))
    assert response.status_code == 200, response.text
    return response.json()["event"]


def dispatch(client: Any) -> int:
    return client.app.state.dispatcher.run_once()


def deliveries(client: Any) -> list[dict[str, Any]]:
    return client.get(f"{API}/webhooks/deliveries").json()["deliveries"]


def test_slack_gets_a_block_kit_message(app: Any) -> None:
    with run_receiver(lambda _r: (200, None)) as slack:
        subscribe(app, slack.url + "/services/T0/B0/x", "slack", ["deployment.finished"])
        event = deploy(app, status="failure")
        assert dispatch(app) == 1
        (request,) = slack.wait_for(1)
    assert request.path == "/services/T0/B0/x"
    message = slack_message(request.json())
    assert message["text"] == (
        "deployment.finished: service=api environment=production status=failure who=alice "
        f"duration=95s pr={PR}"
    )
    header, facts, context = message["blocks"]
    assert header == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": ":x: *deployment.finished*: deploy app 1.2"},
    }
    assert [f["text"] for f in facts["fields"]] == [
        "*Service*\napi",
        "*Environment*\nproduction",
        "*Status*\nfailure",
        "*Who*\nalice",
        "*Duration*\n95s",
        f"*PR*\n{PR}",
    ]
    link = f"https://tracker.example/events/{event['metadata']['id']}"
    assert context["elements"] == [{"type": "mrkdwn", "text": f"<{link}|Open event>"}]


def test_grafana_gets_a_region_from_start_to_end(app: Any) -> None:
    with run_receiver(lambda _r: (200, {"id": 1, "message": "Annotation added"})) as grafana:
        subscribe(app, grafana.url, "grafana", ["deployment.*"], secret="glsa_token")
        event = deploy(app, seconds=120)
        assert dispatch(app) == 2
        point, region = grafana.wait_for(2)
    for request in (point, region):
        assert request.method == "POST" and request.path == "/api/annotations"
        assert request.headers["authorization"] == "Bearer glsa_token"
    start_ms = int(START.timestamp() * 1000)
    link = f' <a href="https://tracker.example/events/{event["metadata"]["id"]}">event</a>'
    assert grafana_annotation(point.json()) == {
        "time": start_ms,
        "tags": [
            "tracker",
            "deployment.started",
            "service:api",
            "environment:production",
            "status:start",
        ],
        "text": "deployment.started: deploy app 1.2" + link,
    }
    assert grafana_annotation(region.json()) == {
        "time": start_ms,
        "timeEnd": start_ms + 120_000,
        "tags": [
            "tracker",
            "deployment.finished",
            "service:api",
            "environment:production",
            "status:success",
        ],
        "text": "deployment.finished: deploy app 1.2 (success in 120s)" + link,
    }


def test_influx_gets_line_protocol_and_nothing_for_other_events(app: Any) -> None:
    with run_receiver(lambda _r: (204, None)) as influx:
        subscribe(
            app,
            influx.url + "/api/v2/write?org=acme&bucket=deploys",
            "influx",
            ["deployment.*"],
            secret="influx-token",
        )
        deploy(app, seconds=42, service="my api")
        assert dispatch(app) == 2
        (request,) = influx.wait_for(1)
    parts = urlsplit(request.path)
    assert parts.path == "/api/v2/write"
    assert parse_qs(parts.query) == {"org": ["acme"], "bucket": ["deploys"], "precision": ["s"]}
    assert request.headers["authorization"] == "Token influx-token"
    assert request.headers["content-type"] == "text/plain; charset=utf-8"
    end = int(START.timestamp()) + 42
    assert request.body.decode() == (
        f"tracker_deployment,environment=production,service=my\\ api,status=success "
        f"duration_seconds=42.0 {end}"
    )
    assert influx_points(request.body) == [
        {
            "measurement": "tracker_deployment",
            "tags": {"environment": "production", "service": "my api", "status": "success"},
            "fields": {"duration_seconds": 42.0},
            "time": end,
        }
    ]
    states = {d["type"]: (d["state"], d["error"]) for d in deliveries(app)}
    assert states["deployment.finished"] == ("delivered", "")
    assert states["deployment.started"] == (
        "delivered",
        "skipped: deployment.started has no duration to write",
    )


class FakeGitHub:
    """GitHub's deployments API as a loopback receiver (PyGithub talks to it)."""

    def __init__(self) -> None:
        self.deployments: list[dict[str, Any]] = []
        self.statuses: list[tuple[int, dict[str, Any]]] = []
        self.fail_next = 0
        self.base = ""
        self.lock = threading.Lock()

    def __call__(self, request: Received) -> tuple[int, Any]:
        path = urlsplit(request.path)
        with self.lock:
            if self.fail_next:
                self.fail_next -= 1
                return 502, {"message": "Server Error"}
            if request.method == "GET" and path.path == "/repos/octo/app/pulls/7":
                return 200, {"number": 7, "head": {"sha": "abc123", "ref": "feature"}}
            if request.method == "GET" and path.path == "/repos/octo/app/deployments":
                query = parse_qs(path.query)
                return 200, [
                    d for d in self.deployments if d["environment"] == query["environment"][0]
                ]
            if request.method == "POST" and path.path == "/repos/octo/app/deployments":
                number = len(self.deployments) + 1
                body = request.json()
                created = {
                    "id": number,
                    "url": f"{self.base}/repos/octo/app/deployments/{number}",
                    "sha": "abc123" if body["ref"] == "abc123" else "d" * 40,
                    **body,
                }
                self.deployments.append(created)
                return 201, created
            if request.method == "POST" and path.path.endswith("/statuses"):
                number = int(path.path.split("/")[-2])
                self.statuses.append((number, request.json()))
                return 201, {"id": len(self.statuses), "state": request.json()["state"]}
        return 404, {"message": "Not Found"}


#: GitHub's REST API, version 2022-11-28 (its OpenAPI description): what the bodies may hold.
DEPLOYMENT_KEYS = {
    "ref", "task", "auto_merge", "required_contexts", "payload", "environment",
    "description", "transient_environment", "production_environment",
}  # fmt: skip
STATUS_KEYS = {"state", "target_url", "log_url", "description", "environment", "environment_url",
               "auto_inactive"}  # fmt: skip
STATUS_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}


def github_requests(requests: list[Received]) -> list[tuple[str, str]]:
    """Every request as GitHub's REST API 2022-11-28 takes it (asserts); (method, path)."""
    for request in requests:
        assert request.headers["accept"] == "application/vnd.github+json", request.headers
        assert request.headers["x-github-api-version"] == "2022-11-28"
        if request.method == "POST" and request.path.endswith("/deployments"):
            body = request.json()
            assert set(body) <= DEPLOYMENT_KEYS and body["ref"], body
            assert len(body["description"]) <= 140
        elif request.method == "POST":
            body = request.json()
            assert set(body) <= STATUS_KEYS and body["state"] in STATUS_STATES, body
            assert len(body["description"]) <= 140
    return [(r.method, urlsplit(r.path).path) for r in requests]


def test_github_deployments_show_the_deploy_on_the_pr(app: Any) -> None:
    github = FakeGitHub()
    with run_receiver(github) as receiver:
        github.base = receiver.url
        subscribe(app, receiver.url, "github-deployments", ["deployment.*"], secret="ghs_x")
        event = deploy(app)
        assert dispatch(app) == 2
        requests = receiver.wait_for(6)
    assert github_requests(requests) == [
        ("GET", "/repos/octo/app/deployments"),
        ("GET", "/repos/octo/app/pulls/7"),  # no revision: the PR's head is deployed
        ("POST", "/repos/octo/app/deployments"),
        ("POST", "/repos/octo/app/deployments/1/statuses"),
        ("GET", "/repos/octo/app/deployments"),
        ("POST", "/repos/octo/app/deployments/1/statuses"),
    ]
    assert all(r.headers["authorization"] == "token ghs_x" for r in requests)
    (deployment,) = github.deployments
    assert deployment["ref"] == "abc123" and deployment["environment"] == "production"
    assert deployment["payload"] == {"trackerEventId": event["metadata"]["id"]}
    assert deployment["production_environment"] is True
    assert deployment["required_contexts"] == [] and deployment["auto_merge"] is False
    link = f"https://tracker.example/events/{event['metadata']['id']}"
    assert github.statuses == [
        (1, {"state": "in_progress", "log_url": link, "description": "api: start",
             "auto_inactive": True}),
        (1, {"state": "success", "log_url": link, "description": "api: success",
             "auto_inactive": True}),
    ]  # fmt: skip


def test_github_deploys_the_revision_with_the_environment_url_option(app: Any) -> None:
    github = FakeGitHub()
    revision = "0123456789abcdef0123456789abcdef01234567"
    with run_receiver(github) as receiver:
        github.base = receiver.url
        subscribe(
            app,
            receiver.url,
            "github-deployments",
            ["deployment.*"],
            environmentUrl="https://app.example",
        )
        deploy(app, status="failure", title="t" * 500, revision=revision)
        assert dispatch(app) == 2
        requests = receiver.wait_for(5)
    # No pull request lookup: the revision deployed is the deployment's ref.
    assert github_requests(requests) == [
        ("GET", "/repos/octo/app/deployments"),
        ("POST", "/repos/octo/app/deployments"),
        ("POST", "/repos/octo/app/deployments/1/statuses"),
        ("GET", "/repos/octo/app/deployments"),
        ("POST", "/repos/octo/app/deployments/1/statuses"),
    ]
    assert parse_qs(urlsplit(requests[0].path).query) == {
        "environment": ["production"],
        "per_page": ["100"],
    }
    (deployment,) = github.deployments
    assert deployment["ref"] == revision
    assert deployment["description"] == "t" * 139 + "\u2026"
    assert [(s["state"], s["environment_url"]) for _, s in github.statuses] == [
        ("in_progress", "https://app.example"),
        ("failure", "https://app.example"),
    ]


def test_github_errors_are_retried_with_the_same_delivery(app: Any) -> None:
    github = FakeGitHub()
    github.fail_next = 1
    with run_receiver(github) as receiver:
        github.base = receiver.url
        subscribe(app, receiver.url, "github-deployments", ["deployment.started"])
        create_event(app, status="start", links={"pullRequestLink": PR, "ticket": ""})
        assert dispatch(app) == 1
        (failed,) = deliveries(app)
        assert failed["state"] == "pending" and failed["responseCode"] == 502
        app.clock.advance(timedelta(seconds=11))
        assert dispatch(app) == 1
    (done,) = deliveries(app)
    assert done["id"] == failed["id"] and done["state"] == "delivered" and done["attempts"] == 2
    assert [s["state"] for _, s in github.statuses] == ["in_progress"]


def test_github_skips_an_event_without_a_pull_request(app: Any) -> None:
    with run_receiver() as receiver:
        subscribe(app, receiver.url, "github-deployments", ["deployment.started"])
        create_event(app, status="start")
        assert dispatch(app) == 1
        assert receiver.requests == []
    (delivery,) = deliveries(app)
    assert delivery["state"] == "delivered"
    assert delivery["error"] == "skipped: the event has no GitHub pull request link"


@pytest.mark.parametrize("kind", ["slack", "grafana", "influx"])
def test_every_sink_dead_letters_after_the_max_age(make_client: Any, kind: str) -> None:
    clock = ManualClock(START)
    client = make_client(clock=clock, webhook_dispatcher=False, webhook_max_age_seconds=60)
    with run_receiver(lambda _r: (500, {"error": "down"})) as receiver:
        subscribe(client, receiver.url + "/api/v2/write", kind, ["deployment.finished"])
        client.clock = clock
        deploy(client)
        for _ in range(10):
            assert client.app.state.dispatcher.run_once() == 1
            (delivery,) = deliveries(client)
            if delivery["state"] == "dead":
                break
            clock.advance(timedelta(seconds=30))
        requests = receiver.wait_for(delivery["attempts"])
    assert delivery["state"] == "dead" and delivery["responseCode"] == 500
    assert len(requests) == delivery["attempts"] >= 2
    assert len({r.body for r in requests}) == 1  # the same notification every time
    VALIDATORS[kind](requests[0])


#: Each receiver's validator (tests/support/payloads.py) of one recorded request.
VALIDATORS = {
    "slack": lambda request: slack_message(request.json()),
    "grafana": lambda request: grafana_annotation(request.json()),
    "influx": lambda request: influx_points(request.body),
}


def test_slack_gets_an_alert_with_its_message(make_client: Any) -> None:
    clock = ManualClock(START)
    client = make_client(
        clock=clock, webhook_dispatcher=False, alert_timer=False, alert_lock_held_seconds=60
    )
    with run_receiver(lambda _r: (200, None)) as slack:
        subscribe(client, slack.url, "slack", ["alert.fired"])
        lock = {"service": "db", "environment": "production", "who": "bob"}
        assert client.post(f"{API}/lock", json=lock).status_code == 200
        clock.advance(timedelta(seconds=61))
        state = client.app.state
        assert [o.rule for o in state.alerts.evaluate(state.outbox)] == ["lock_held"]
        assert state.dispatcher.run_once() == 1
        (request,) = slack.wait_for(1)
    header, facts = slack_message(request.json())["blocks"]
    assert header["text"]["text"] == (
        ":information_source: *alert.fired*: db in production (deployment) has been locked "
        "by bob for 61s"
    )
    assert [f["text"] for f in facts["fields"]] == [
        "*Rule*\nlock_held",
        "*Service*\ndb",
        "*Environment*\nproduction",
        "*Who*\nbob",
    ]


HOSTILE = "<!channel> ship & <https://evil.example|click here>\nnow "
HOSTILE_TITLE = HOSTILE + "x" * (500 - len(HOSTILE))  # the longest title the API takes
LONG_PR = "https://github.com/octo/app/pull/7?" + "a=b&" * 491


def test_slack_escapes_user_text_and_cuts_every_field_to_its_limit(app: Any) -> None:
    with run_receiver(lambda _r: (200, None)) as slack:
        subscribe(app, slack.url, "slack", ["deployment.finished"])
        deploy(
            app,
            title=HOSTILE_TITLE,
            service="api <!here>",
            owner="<@U123> & co",
            links={"pullRequestLink": LONG_PR[:2000], "ticket": ""},
        )
        assert dispatch(app) == 1
        (request,) = slack.wait_for(1)
    message = slack_message(request.json())
    headline, facts, _link = message["blocks"]
    assert headline["text"]["text"] == (
        ":white_check_mark: *deployment.finished*: &lt;!channel&gt; ship &amp; "
        "&lt;https://evil.example|click here&gt;\nnow " + "x" * (500 - len(HOSTILE))
    )
    texts = {f["text"].split("\n", 1)[0]: f["text"] for f in facts["fields"]}
    assert texts["*Service*"] == "*Service*\napi &lt;!here&gt;"
    assert texts["*Who*"] == "*Who*\n&lt;@U123&gt; &amp; co"
    pr = texts["*PR*"]
    # Cut to the limit, never through an escape ("&am..."): a whole "&amp;" or none.
    assert 1995 <= len(pr) <= 2000 and pr.endswith("&amp;a=b\u2026")
    assert "<!channel>" not in request.body.decode() and "<!here>" not in message["text"]


def test_webhook_test_sends_a_message_slack_accepts(app: Any) -> None:
    with run_receiver(lambda _r: (200, None)) as slack:
        hook = subscribe(app, slack.url, "slack", ["deployment.finished"])
        assert app.post(f"{API}/webhooks/{hook}/test").status_code == 202
        assert dispatch(app) == 1
        (request,) = slack.wait_for(1)
    assert slack_message(request.json()) == {
        "text": "webhook.test:",
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ":information_source: *webhook.test*: webhook.test",
                },
            }
        ],
    }


def test_slack_mentions_only_whom_the_webhook_option_names(app: Any) -> None:
    with run_receiver(lambda _r: (200, None)) as slack:
        subscribe(app, slack.url, "slack", ["deployment.started"], mention="!here")
        create_event(app, "<!channel> deploy", status="start")
        assert dispatch(app) == 1
        (request,) = slack.wait_for(1)
    headline = slack_message(request.json())["blocks"][0]["text"]["text"]
    assert headline == "<!here> :rocket: *deployment.started*: &lt;!channel&gt; deploy"


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("slack", {"mention": "<!channel>"}, "options.mention: '<!channel>' is not !here"),
        ("generic", {"mention": "!here"}, "options.mention is for slack webhooks, not generic"),
        ("grafana", {"panelId": 0}, "options.panelId must be a positive number"),
        ("slack", {"dashboardUid": "x"}, "options.dashboardUid is for grafana webhooks"),
        ("github-deployments", {"environmentUrl": "ftp://x"}, "not an http(s) URL"),
    ],
)
def test_options_its_kind_cannot_use_are_refused(
    app: Any, kind: str, options: dict[str, Any], message: str
) -> None:
    body = {"url": "https://example.com/x", "kind": kind, "events": ["*"], "options": options}
    response = app.post(f"{API}/webhooks", json=body)
    assert response.status_code == 400 and message in response.json()["message"], response.text


@pytest.mark.parametrize(
    ("service", "stored"),
    [
        ("api\nevil,service=x duration_seconds=1 1", "api evil,service=x duration_seconds=1 1"),
        ("api\r\n\tv2\x1b\x85", "api v2 "),
        ("a=b, c", "a=b, c"),
        ("trailing\\", "trailing/"),
        ("back\\ slash\\,", "back/ slash/,"),
        ("<!channel> &\u2028x", "<!channel> & x"),
    ],
)
def test_influx_writes_one_point_whatever_the_service_holds(
    app: Any, service: str, stored: str
) -> None:
    with run_receiver(lambda _r: (204, None)) as influx:
        subscribe(app, influx.url + "/api/v2/write?org=o&bucket=b", "influx", ["deployment.*"])
        deploy(app, seconds=3, service=service)
        assert dispatch(app) == 2
        (request,) = influx.wait_for(1)
    (point,) = influx_points(request.body)  # one line: no bogus point after a newline
    assert point["tags"] == {"environment": "production", "service": stored, "status": "success"}
    assert point["fields"] == {"duration_seconds": 3.0}


def test_grafana_annotates_one_dashboard_panel_with_escaped_text(app: Any) -> None:
    with run_receiver(lambda _r: (200, {"id": 1})) as grafana:
        subscribe(
            app, grafana.url, "grafana", ["deployment.finished"], dashboardUid="dep1", panelId=4
        )
        event = deploy(app, seconds=7, title='<script>alert("x")</script> & <b>', service="a<b")
        assert dispatch(app) == 1
        (request,) = grafana.wait_for(1)
    body = grafana_annotation(request.json())
    assert body["dashboardUID"] == "dep1" and body["panelId"] == 4
    assert body["timeEnd"] - body["time"] == 7_000
    assert body["tags"][2] == "service:a<b"  # a tag is data, never rendered as HTML
    link = f"https://tracker.example/events/{event['metadata']['id']}"
    assert body["text"] == (
        "deployment.finished: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; "
        f'&lt;b&gt; (success in 7s) <a href="{link}">event</a>'
    )


def test_grafana_gets_an_alert_with_its_rule_service_and_message(make_client: Any) -> None:
    clock = ManualClock(START)
    client = make_client(
        clock=clock, webhook_dispatcher=False, alert_timer=False, alert_lock_held_seconds=60
    )
    with run_receiver(lambda _r: (200, {"id": 1})) as grafana:
        subscribe(client, grafana.url, "grafana", ["alert.fired"])
        lock = {"service": "db", "environment": "production", "who": "<bob>"}
        assert client.post(f"{API}/lock", json=lock).status_code == 200
        clock.advance(timedelta(seconds=61))
        state = client.app.state
        assert [o.rule for o in state.alerts.evaluate(state.outbox)] == ["lock_held"]
        assert state.dispatcher.run_once() == 1
        (request,) = grafana.wait_for(1)
    assert grafana_annotation(request.json()) == {
        "time": int(START.timestamp() * 1000) + 61_000,
        "tags": [
            "tracker",
            "alert.fired",
            "service:db",
            "environment:production",
            "rule:lock_held",
        ],
        "text": "alert.fired lock_held db: db in production (deployment) has been locked by "
        "&lt;bob&gt; for 61s",
    }


def test_github_closes_the_same_deployment_from_an_upstream_style_closing_event(app: Any) -> None:
    github = FakeGitHub()
    with run_receiver(github) as receiver:
        github.base = receiver.url
        subscribe(app, receiver.url, "github-deployments", ["deployment.*"])
        links = {"pullRequestLink": PR, "ticket": ""}
        started = create_event(app, status="start", revision="f" * 40, links=links)
        app.clock.advance(timedelta(seconds=30))
        # Upstream closes with a new event naming the first: no revision on it.
        create_event(app, status="success", relatedId=started["metadata"]["id"], links=links)
        assert dispatch(app) == 2
        requests = receiver.wait_for(5)
    assert github_requests(requests)[-2:] == [
        ("GET", "/repos/octo/app/deployments"),
        ("POST", "/repos/octo/app/deployments/1/statuses"),
    ]
    (deployment,) = github.deployments
    assert deployment["ref"] == "f" * 40
    assert [s["state"] for _, s in github.statuses] == ["in_progress", "success"]
