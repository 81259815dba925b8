"""InfluxDB v2 line protocol (``/api/v2/write``): one point per finished deployment,
``tracker_deployment,service=..,environment=..,status=.. duration_seconds=..``."""

from __future__ import annotations

import httpx

from tracker_ci.models import parse_duration
from tracker_server.sinks.base import USER_AGENT, Answer, Outgoing, skip
from tracker_server.sinks.grafana import _occurred_at


def _tag(value: str) -> str:
    # Line protocol: commas, equals signs and spaces in tag values are escaped.
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def line(outgoing: Outgoing) -> str | None:
    """The point of a finished deployment (seconds precision); None for anything else."""
    event = outgoing.event
    if outgoing.type != "deployment.finished" or event is None:
        return None
    duration = parse_duration(event.to_wire()["metadata"]["duration"])
    seconds = duration.total_seconds() if duration is not None else 0.0
    attributes = event.attributes
    tags = ",".join(
        f"{name}={_tag(value)}"
        for name, value in (
            ("service", attributes.service),
            ("environment", attributes.environment.value),
            ("status", attributes.status.value),
        )
        if value
    )
    moment = int(_occurred_at(outgoing).timestamp())
    return f"tracker_deployment,{tags} duration_seconds={seconds!r} {moment}"


class InfluxSink:
    """POST to the webhook's URL (``http://HOST:8086/api/v2/write?org=O&bucket=B``);
    the secret is an InfluxDB API token."""

    def send(self, outgoing: Outgoing, http: httpx.Client) -> Answer:
        """One point, or nothing for notifications without a duration."""
        point = line(outgoing)
        if point is None:
            return skip(f"{outgoing.type} has no duration to write")
        headers = {"User-Agent": USER_AGENT, "Content-Type": "text/plain; charset=utf-8"}
        if outgoing.secret:
            headers["Authorization"] = f"Token {outgoing.secret}"
        # Keep the URL's org and bucket: httpx's params= would replace its query.
        url = httpx.URL(outgoing.url).copy_merge_params({"precision": "s"})
        response = http.post(url, content=point.encode(), headers=headers)
        return Answer.of(response)
