"""Slack incoming webhooks: a Block Kit message naming service, environment, status, who,
duration and PR, with a link to the event."""

from __future__ import annotations

from typing import Any

import httpx

from tracker_ci.models import Event, format_duration
from tracker_server.sinks.base import USER_AGENT, Answer, Outgoing

_EMOJI = {"success": ":white_check_mark:", "failure": ":x:", "error": ":x:", "start": ":rocket:"}


def _facts(outgoing: Outgoing, event: Event | None) -> dict[str, str]:
    lock = outgoing.body.get("lock") or {}
    details = outgoing.body.get("details") or {}
    if event is not None:
        attributes = event.attributes
        duration = event.metadata.duration
        return {
            "Service": attributes.service,
            "Environment": attributes.environment.value,
            "Status": attributes.status.value,
            "Who": attributes.owner or lock.get("who", ""),
            "Duration": format_duration(duration) if duration is not None else "",
            "PR": event.links.pull_request_link,
        }
    return {
        "Service": lock.get("service", details.get("service", "")),
        "Environment": lock.get("environment", details.get("environment", "")),
        "Who": lock.get("who", details.get("who", "")),
    }


def blocks(outgoing: Outgoing) -> dict[str, Any]:
    """The Slack message of a notification."""
    event = outgoing.event
    facts = {name: value for name, value in _facts(outgoing, event).items() if value}
    status = facts.get("Status", "")
    details = outgoing.body.get("details") or {}
    # An alert says what happened in its message; a change is named by its event's title.
    title = details.get("message") or (event.title if event is not None else "") or outgoing.type
    headline = f"{_EMOJI.get(status, ':information_source:')} *{outgoing.type}*: {title}"
    message: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in facts.items()
            ],
        },
    ]
    link = outgoing.event_link(event) if event is not None else ""
    if link:
        message.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open event>"}]}
        )
    summary = " ".join(f"{name.lower()}={value}" for name, value in facts.items())
    return {"text": f"{outgoing.type}: {summary}", "blocks": message}


class SlackSink:
    """POST a Block Kit message to a Slack incoming webhook URL."""

    def send(self, outgoing: Outgoing, http: httpx.Client) -> Answer:
        """One message."""
        response = http.post(
            outgoing.url, json=blocks(outgoing), headers={"User-Agent": USER_AGENT}
        )
        return Answer.of(response)
