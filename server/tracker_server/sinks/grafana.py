"""Grafana annotations (``POST /api/annotations``): a region from start to end for a
finished deployment (its duration in the text), a point for anything else; an alert
names its rule, service and message. Tags: ``tracker``, the notification, then
``service:``, ``environment:``, ``status:``, ``rule:`` and ``owner:`` (the service's
owner in its catalog entry) where known.

The webhook's ``dashboardUid`` (and ``panelId``) options put the annotations on one
dashboard (and panel); without them they are organisation-wide. Grafana renders an
annotation's ``text`` as HTML, so user text is HTML-escaped; the only markup is the link
to the event's page.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

import httpx

from tracker_ci.models import Event, format_duration, parse_duration
from tracker_server.sinks.base import USER_AGENT, Answer, Outgoing


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _of_event(outgoing: Outgoing, event: Event) -> tuple[dict[str, Any], list[str], str]:
    """Times, tags and text of a deployment (a region once it finished)."""
    attributes = event.attributes
    end = outgoing.occurred_at
    times: dict[str, Any] = {"time": _millis(end)}
    tags = [
        f"service:{attributes.service}",
        f"environment:{attributes.environment.value}",
        f"status:{attributes.status.value}",
    ]
    text = f"{outgoing.type}: {escape(event.title or attributes.service)}"
    duration = parse_duration(event.to_wire()["metadata"]["duration"])
    if outgoing.type == "deployment.finished" and duration is not None:
        times = {"time": _millis(end - duration), "timeEnd": _millis(end)}
        text += f" ({escape(attributes.status.value)} in {format_duration(duration)})"
    link = outgoing.event_link(event)
    if link:
        text += f' <a href="{escape(link)}">event</a>'
    return times, tags, text


def _of_details(outgoing: Outgoing) -> tuple[list[str], str]:
    """Tags and text of a lock, queue, freeze or alert notification."""
    lock = outgoing.body.get("lock") or {}
    details = outgoing.body.get("details") or {}
    service = str(lock.get("service") or details.get("service") or "")
    environment = str(lock.get("environment") or details.get("environment") or "")
    rule = str(details.get("rule") or "")
    tags = [f"service:{service}"] if service else []
    tags += [f"environment:{environment}"] if environment else []
    tags += [f"rule:{rule}"] if rule else []
    what = " ".join(part for part in (rule, service) if part)
    text = outgoing.type + (f" {escape(what)}" if what else "")
    message = str(details.get("message") or "")
    who = str(lock.get("who") or "")
    if message:
        text += f": {escape(message)}"
    elif who:
        text += f" by {escape(who)}"
    return tags, text


def annotation(outgoing: Outgoing) -> dict[str, Any]:
    """The annotation of a notification."""
    event: Event | None = outgoing.event
    options = outgoing.options
    body: dict[str, Any] = {}
    if options.dashboard_uid:
        body["dashboardUID"] = options.dashboard_uid
    if options.panel_id is not None:
        body["panelId"] = options.panel_id
    if event is not None and outgoing.type.startswith("deployment."):
        times, tags, text = _of_event(outgoing, event)
    else:
        times = {"time": _millis(outgoing.occurred_at)}
        tags, text = _of_details(outgoing)
    if outgoing.owner:
        tags.append(f"owner:{outgoing.owner}")
    return {**body, **times, "tags": ["tracker", outgoing.type, *tags], "text": text}


class GrafanaSink:
    """POST an annotation; the webhook's secret is a Grafana service account token."""

    def send(self, outgoing: Outgoing, http: httpx.Client) -> Answer:
        """One annotation."""
        headers = {"User-Agent": USER_AGENT}
        if outgoing.secret:
            headers["Authorization"] = f"Bearer {outgoing.secret}"
        url = f"{outgoing.url.rstrip('/')}/api/annotations"
        return Answer.of(http.post(url, json=annotation(outgoing), headers=headers))
