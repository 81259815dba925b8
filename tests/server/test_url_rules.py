"""Every stored URL is http(s): events, locks, the queue, the batch and webhooks refuse
any other scheme with the one error body naming the field (validation.check_urls)."""

from __future__ import annotations

from typing import Any

import pytest
from tracker_server.domain import InvalidInput
from tracker_server.validation import check_ticket, check_web_url

from tests.server.helpers import API, assert_error, create_event, event_body, update_body

pytestmark = pytest.mark.server

BAD_URLS = [
    "javascript:alert(1)",
    " JavaScript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "ftp://example.com/x",
    "//example.com/no-scheme",
    "example.com/pull/1",
    "http://",
    "http://[::1",
]
GOOD_URLS = ["", "http://example.com", "https://github.com/acme/app/pull/7", "HTTPS://X.org/a"]


@pytest.mark.parametrize("value", BAD_URLS)
def test_the_url_rule_refuses_other_schemes(value: str) -> None:
    with pytest.raises(InvalidInput, match="jobUrl"):
        check_web_url(value, "jobUrl")


@pytest.mark.parametrize("value", GOOD_URLS)
def test_the_url_rule_keeps_http_and_https(value: str) -> None:
    check_web_url(value, "jobUrl")


@pytest.mark.parametrize(
    "value", ["JIRA-1", "OPS 7: fix", "jira:ABC-1", "https://jira.example/browse/A-1", ""]
)
def test_a_ticket_may_be_free_text(value: str) -> None:
    check_ticket(value, "links.ticket")


@pytest.mark.parametrize(
    "value",
    ["javascript:alert(1)", "\x01javascript:x", "data:,x", "vbscript:x", "file:///x", "ftp://x/y"],
)
def test_a_ticket_is_never_another_schemes_url(value: str) -> None:
    with pytest.raises(InvalidInput, match="links.ticket"):
        check_ticket(value, "links.ticket")


def _event(**fields: Any) -> dict[str, Any]:
    return event_body(status="start", **fields)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_event(links={"pullRequestLink": "javascript:alert(1)", "ticket": ""}), "pullRequestLink"),
        (_event(links={"pullRequestLink": "", "ticket": "data:text/html,x"}), "links.ticket"),
        ({**_event(), "jobUrl": "file:///etc/passwd"}, "jobUrl"),
        (
            _event(changes=[{"kind": "commit", "id": "abc", "url": "vbscript:x"}]),
            "attributes.changes[0].url",
        ),
    ],
)
def test_post_event_refuses_a_bad_url(client: Any, body: dict[str, Any], field: str) -> None:
    assert_error(client.post(f"{API}/event", json=body), 400, 3, field, "http(s)")
    assert client.get(f"{API}/events/list").json()["totalCount"] == 0


def test_put_event_refuses_a_bad_url(client: Any) -> None:
    event = create_event(client)
    body = update_body(event, links={"pullRequestLink": "javascript:x", "ticket": ""})
    assert_error(client.put(f"{API}/event", json=body), 400, 3, "links.pullRequestLink")


def test_good_urls_are_kept(client: Any) -> None:
    links = {"pullRequestLink": "https://github.com/acme/app/pull/7", "ticket": "OPS-7"}
    event = create_event(client, links=links)
    assert event["links"] == links


def test_locks_and_the_queue_refuse_a_bad_job_url(client: Any) -> None:
    lock = {"service": "api", "environment": "production", "who": "me", "jobUrl": "data:,x"}
    assert_error(client.post(f"{API}/lock", json=lock), 400, 3, "jobUrl")
    assert_error(client.post(f"{API}/lock/queue", json=lock), 400, 3, "jobUrl")
    lock["jobUrl"] = "https://ci.example/job/1"
    assert client.post(f"{API}/lock", json=lock).status_code == 200


def test_the_batch_refuses_each_bad_item_with_the_same_body(client: Any) -> None:
    bad = _event(links={"pullRequestLink": "javascript:x", "ticket": ""})
    also_bad = {**event_body(), "jobUrl": "ftp://x/y"}
    response = client.post(f"{API}/events/batch", json={"events": [bad, event_body(), also_bad]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == ["refused", "created", "refused"]
    for result, field in ((results[0], "links.pullRequestLink"), (results[2], "jobUrl")):
        error = result["error"]
        assert set(error) == {"code", "message", "details"}
        assert error["code"] == 3
        assert field in error["message"]


@pytest.mark.parametrize("url", ["javascript:x", "file:///etc/passwd", "ftp://x"])
def test_webhooks_refuse_a_bad_url(client: Any, url: str) -> None:
    body = {"url": url, "events": ["*"]}
    assert_error(client.post(f"{API}/webhooks", json=body), 400, 3, "url", "http(s)")
