"""Each receiver's own rules applied to what the suite's sinks sent: Slack's block models
and formatting rules (``slack_sdk``), InfluxDB's line protocol (an independent parser,
``line-protocol-parser``, and InfluxDB's own writer, ``influxdb-client``'s ``Point``),
Grafana's annotation API (its HTTP API reference: the body's fields and types).

A test calls the validator of its receiver on every request its loopback receiver
recorded, so every payload the suite sends is checked against the receiver's rules, not
only against the test's expectations.
"""

from __future__ import annotations

import re
from typing import Any

from influxdb_client import Point, WritePrecision
from line_protocol_parser import parse_line
from slack_sdk.models.blocks import Block, ContextBlock, SectionBlock

#: Slack: a section field's text (not checked by slack_sdk's models), a message's text.
SLACK_FIELD_MAX = 2000
SLACK_TEXT_MAX = 4000
#: The only ``<...>`` a message of ours may hold: a link to the event page, or the
#: webhook's mention option.
_SLACK_CONTROL = re.compile(r"<([^<>]*)>")
_SLACK_ALLOWED = re.compile(r"https://[^|<>]+\|Open event|!here|!channel|@U[A-Z0-9]+")


def _slack_texts(block: Block) -> list[str]:
    if isinstance(block, SectionBlock):
        texts = [block.text.text] if block.text is not None else []
        for item in block.fields or []:
            assert len(item.text) <= SLACK_FIELD_MAX, f"a field of {len(item.text)} characters"
            texts.append(item.text)
        return texts
    assert isinstance(block, ContextBlock), f"unexpected block {block.type}"
    return [element.text for element in block.elements]


def _slack_text(text: str) -> None:
    # Slack's formatting rules: a raw & is only the start of an escape; < > only wrap a
    # link or mention of ours.
    assert not re.search(r"&(?!amp;|lt;|gt;)", text), f"an unescaped & in {text!r}"
    for control in _SLACK_CONTROL.findall(text):
        assert _SLACK_ALLOWED.fullmatch(control), f"<{control}> in {text!r}"
    assert "<" not in _SLACK_CONTROL.sub("", text) and ">" not in _SLACK_CONTROL.sub("", text)


def slack_message(message: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message as Slack would take it (asserts); the message."""
    assert set(message) == {"text", "blocks"}, message
    assert 0 < len(message["text"]) <= SLACK_TEXT_MAX
    _slack_text(message["text"])
    assert message["blocks"], "a message without blocks"
    for raw in message["blocks"]:
        block = Block.parse(raw)
        assert block is not None and block.to_dict() == raw, raw  # nothing unknown dropped
        block.validate_json()  # slack_sdk: limits, a section with text or fields
        for text in _slack_texts(block):
            _slack_text(text)
    return message


def influx_points(body: bytes) -> list[dict[str, Any]]:
    """The points of a line-protocol write as an independent parser reads them (asserts
    each line parses, and that InfluxDB's own writer writes the same point back the same)."""
    points = []
    for text in body.decode().split("\n"):
        point = parse_line(text + "\n")
        again = Point(point["measurement"]).time(point["time"], WritePrecision.S)
        for key, value in point["tags"].items():
            again = again.tag(key, value)
        for key, value in point["fields"].items():
            again = again.field(key, value)
        assert parse_line(again.to_line_protocol() + "\n") == point, (text, again)
        points.append(point)
    return points


#: Grafana's ``POST /api/annotations`` body (HTTP API reference): field -> JSON type.
GRAFANA_ANNOTATION = {
    "dashboardUID": str,
    "panelId": int,
    "time": int,
    "timeEnd": int,
    "tags": list,
    "text": str,
}


def grafana_annotation(body: dict[str, Any]) -> dict[str, Any]:
    """An annotation as Grafana's API takes it (asserts): times in epoch milliseconds, a
    region's end after its start, tags strings, no markup in the text but our link."""
    for name, value in body.items():
        assert isinstance(value, GRAFANA_ANNOTATION[name]), (name, value)
    assert 1_000_000_000_000 < body["time"] < 10_000_000_000_000, "not epoch milliseconds"
    assert body.get("timeEnd", body["time"]) >= body["time"]
    assert "panelId" not in body or "dashboardUID" in body
    assert all(isinstance(tag, str) and tag for tag in body["tags"])
    markup = re.sub(r'<a href="https://[^"<>]+">event</a>$', "", body["text"])
    assert "<" not in markup and ">" not in markup and '"' not in markup, body["text"]
    return body
