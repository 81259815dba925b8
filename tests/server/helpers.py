"""Small builders of request bodies shared by the server tests."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

API = "/api/v1alpha1"


def token_headers(client: Any, name: str, admin: dict[str, str], *services: str) -> dict[str, str]:
    """The ``Authorization`` header of a new token ``name`` made by ``admin`` (limited to
    ``services`` when given), for a client of a server with auth on."""
    body: dict[str, Any] = {"name": name} | ({"services": list(services)} if services else {})
    response = client.post(f"{API}/tokens", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['secret']}"}


def event_body(title: str = "deploy api", **attributes: Any) -> dict[str, Any]:
    """A POST /event body; attributes default to a finished deployment of ``api``."""
    links = attributes.pop("links", {"pullRequestLink": "", "ticket": ""})
    slack_id = attributes.pop("slackId", "")
    base = {
        "type": "deployment",
        "status": "success",
        "service": "api",
        "environment": "production",
        "priority": "P3",
        "owner": "alice",
        "message": "hello",
        "source": "github",
    }
    return {"title": title, "attributes": base | attributes, "links": links, "slackId": slack_id}


def create_event(client: Any, title: str = "deploy api", **attributes: Any) -> dict[str, Any]:
    """POST /event and return the created event (asserts 200)."""
    response = client.post(f"{API}/event", json=event_body(title, **attributes))
    assert response.status_code == 200, response.text
    return response.json()["event"]


def update_body(event: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    """A PUT /event body replacing ``event``'s attributes with ``attributes`` merged in."""
    title = attributes.pop("title", event["title"])
    links = attributes.pop("links", event["links"])
    return {
        "id": event["metadata"]["id"],
        "title": title,
        "attributes": event["attributes"] | attributes,
        "links": links,
    }


def assert_error(response: Any, status: int, code: int, *fragments: str) -> dict[str, Any]:
    """The response is the one error body with this status, code and message fragments."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code, body
    assert body["details"] == []
    for fragment in fragments:
        assert fragment in body["message"], body
    return body


class Racers:
    """HTTP clients (alternating between two server URLs) and a thread for each,
    created once: creating clients costs more than the race itself."""

    def __init__(self, urls, clients=50):
        self.urls = urls
        self.clients = [httpx.Client(base_url=urls[i % 2], timeout=30) for i in range(clients)]
        self.pool = ThreadPoolExecutor(clients)

    def race(self, path, bodies, headers=None):
        """POST each body at the same instant (a barrier); the responses in order."""
        barrier = threading.Barrier(len(bodies))

        def one(i):
            barrier.wait(timeout=30)
            return self.clients[i].post(path, json=bodies[i], headers=headers)

        return list(self.pool.map(one, range(len(bodies))))

    def close(self):
        self.pool.shutdown()
        for client in self.clients:
            client.close()
