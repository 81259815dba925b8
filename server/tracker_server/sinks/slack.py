"""Slack incoming webhooks: a Block Kit message naming service, environment, status, who,
duration and PR, the service's owner and channel (from its catalog entry), with a link to
the event, built with ``slack_sdk``'s block models (which
refuse what Slack refuses: an empty section, too many fields, a section text too long).

Slack's formatting rules: in ``mrkdwn`` text ``&``, ``<`` and ``>`` are control characters
(``<!channel>`` pings a channel, ``<https://x|y>`` is a disguised link), so every piece of
user text (titles, services, owners, messages) is sent escaped as ``&amp;``, ``&lt;`` and
``&gt;``, the message's notification ``text`` too. Every text is cut to its limit with an
ellipsis, never in the middle of an escape. Nobody is mentioned unless the webhook's
``mention`` option names whom (``!here``, ``!channel``, ``@U0123ABCD``,
``!subteam^S0123ABCD``).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from tracker_ci.models import Event, format_duration
from tracker_ci.wire.webhooks import SLACK_MENTION
from tracker_server.sinks.base import USER_AGENT, Answer, Outgoing

#: Slack's limits: a section's text, one of its fields, a message's ``text`` (Slack cuts
#: longer ones itself), the number of fields of a section.
MAX_SECTION_TEXT = SectionBlock.text_max_length
MAX_FIELD_TEXT = 2000
MAX_MESSAGE_TEXT = 4000
MAX_FIELDS = SectionBlock.fields_max_length

_EMOJI = {"success": ":white_check_mark:", "failure": ":x:", "error": ":x:", "start": ":rocket:"}
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_CONTROL = re.compile("[&<>]")
_CUT_ESCAPE = re.compile(r"&[a-z]{0,3}$")


def escape(text: str) -> str:
    """User text as Slack shows it literally: ``&``, ``<`` and ``>`` escaped, nothing else."""
    return _CONTROL.sub(lambda found: _ESCAPES[found.group()], text)


def fit(mrkdwn: str, limit: int) -> str:
    """Escaped text cut to ``limit`` characters with an ellipsis, never inside an escape."""
    if len(mrkdwn) <= limit:
        return mrkdwn
    return _CUT_ESCAPE.sub("", mrkdwn[: limit - 1]) + "\u2026"


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
            "Owner": outgoing.owner,
            "Channel": outgoing.channel,
        }
    return {
        "Rule": str(details.get("rule", "")),
        "Service": lock.get("service", details.get("service", "")),
        "Environment": lock.get("environment", details.get("environment", "")),
        "Who": lock.get("who", details.get("who", "")),
        "Owner": outgoing.owner,
        "Channel": outgoing.channel,
    }


def _field(name: str, value: str) -> MarkdownTextObject:
    label = f"*{name}*\n"
    return MarkdownTextObject(text=label + fit(escape(value), MAX_FIELD_TEXT - len(label)))


def _headline(outgoing: Outgoing, event: Event | None, status: str) -> str:
    details = outgoing.body.get("details") or {}
    # An alert says what happened in its message; a change is named by its event's title.
    title = details.get("message") or (event.title if event is not None else "") or outgoing.type
    mention = outgoing.options.mention
    prefix = f"<{mention}> " if SLACK_MENTION.fullmatch(mention) else ""
    emoji = _EMOJI.get(status, ":information_source:")
    return fit(f"{prefix}{emoji} *{outgoing.type}*: {escape(title)}", MAX_SECTION_TEXT)


def message_blocks(outgoing: Outgoing) -> list[Block]:
    """The blocks of a notification: a headline, its facts (when it has any), the link."""
    event = outgoing.event
    facts = {name: value for name, value in _facts(outgoing, event).items() if value}
    found: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(text=_headline(outgoing, event, facts.get("Status", "")))
        )
    ]
    if facts:
        fields = [_field(name, value) for name, value in facts.items()][:MAX_FIELDS]
        found.append(SectionBlock(fields=fields))
    link = outgoing.event_link(event) if event is not None else ""
    if link:
        text = f"<{escape(link)}|Open event>"
        found.append(ContextBlock(elements=[MarkdownTextObject(text=text)]))
    return found


def blocks(outgoing: Outgoing) -> dict[str, Any]:
    """The Slack message of a notification (``to_dict`` validates every block)."""
    event = outgoing.event
    facts = {name: value for name, value in _facts(outgoing, event).items() if value}
    summary = " ".join(f"{name.lower()}={value}" for name, value in facts.items())
    text = fit(escape(f"{outgoing.type}: {summary}".strip()), MAX_MESSAGE_TEXT)
    return {"text": text, "blocks": [block.to_dict() for block in message_blocks(outgoing)]}


class SlackSink:
    """POST a Block Kit message to a Slack incoming webhook URL."""

    def send(self, outgoing: Outgoing, http: httpx.Client) -> Answer:
        """One message."""
        response = http.post(
            outgoing.url, json=blocks(outgoing), headers={"User-Agent": USER_AGENT}
        )
        return Answer.of(response)
