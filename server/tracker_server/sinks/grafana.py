"""Grafana annotations (``POST /api/annotations``): a region from start to end for a
finished deployment, a point for anything else; tags service, environment and status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from tracker_ci.models import Event, parse_duration
from tracker_server.sinks.base import USER_AGENT, Answer, Outgoing


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _occurred_at(outgoing: Outgoing) -> datetime:
    from tracker_ci.models import EventMetadata

    moment = EventMetadata.model_validate({"created_at": outgoing.body["occurredAt"]}).created_at
    return moment or outgoing.now


def annotation(outgoing: Outgoing) -> dict[str, Any]:
    """The annotation of a notification."""
    event: Event | None = outgoing.event
    lock = outgoing.body.get("lock") or {}
    end = _occurred_at(outgoing)
    tags = ["tracker", outgoing.type]
    text = outgoing.type
    body: dict[str, Any] = {"time": _millis(end)}
    if event is not None:
        attributes = event.attributes
        tags += [
            f"service:{attributes.service}",
            f"environment:{attributes.environment.value}",
            f"status:{attributes.status.value}",
        ]
        text = f"{outgoing.type}: {event.title or attributes.service}"
        duration = parse_duration(event.to_wire()["metadata"]["duration"])
        if outgoing.type == "deployment.finished" and duration is not None:
            body = {"time": _millis(end - duration), "timeEnd": _millis(end)}
        link = outgoing.event_link(event)
        if link:
            text += f' <a href="{link}">event</a>'
    elif lock:
        tags += [f"service:{lock.get('service', '')}", f"environment:{lock.get('environment', '')}"]
        text = f"{outgoing.type}: {lock.get('service', '')} by {lock.get('who', '')}"
    return {**body, "tags": tags, "text": text}


class GrafanaSink:
    """POST an annotation; the webhook's secret is a Grafana service account token."""

    def send(self, outgoing: Outgoing, http: httpx.Client) -> Answer:
        """One annotation."""
        headers = {"User-Agent": USER_AGENT}
        if outgoing.secret:
            headers["Authorization"] = f"Bearer {outgoing.secret}"
        url = f"{outgoing.url.rstrip('/')}/api/annotations"
        return Answer.of(http.post(url, json=annotation(outgoing), headers=headers))
