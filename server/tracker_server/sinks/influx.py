"""InfluxDB v2 line protocol (``/api/v2/write``): one point per finished deployment,
``tracker_deployment,environment=..,owner=..,service=..,status=.. duration_seconds=..
<seconds>`` (``owner``: the service's owner in its catalog entry, when it has one).

Tag values follow the line protocol's grammar: commas, equals signs and spaces are
escaped with a backslash. The grammar has no escape for a newline (a raw one ends the
point and starts a bogus one) nor for other control characters, and parsers read a
backslash next to an escape differently (InfluxDB takes ``\\\\`` as one backslash, others
as two; a trailing one would escape the separator after it), so before escaping, every
run of control characters becomes one space and a backslash becomes ``/``. Tags are
written sorted by key, as InfluxDB recommends; an empty value leaves its tag out.
"""

from __future__ import annotations

import re

import httpx

from tracker_ci.models import parse_duration
from tracker_server.sinks.base import USER_AGENT, Answer, Outgoing, skip

MEASUREMENT = "tracker_deployment"
#: C0 and C1 control characters, DEL, and Unicode's line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_TAG_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})


def tag_value(value: str) -> str:
    """A tag value as the line protocol writes it (controls and backslashes replaced)."""
    return _CONTROL.sub(" ", value).replace("\\", "/").translate(_TAG_ESCAPES)


def line(outgoing: Outgoing) -> str | None:
    """The point of a finished deployment (seconds precision); None for anything else."""
    event = outgoing.event
    if outgoing.type != "deployment.finished" or event is None:
        return None
    duration = parse_duration(event.to_wire()["metadata"]["duration"])
    seconds = duration.total_seconds() if duration is not None else 0.0
    attributes = event.attributes
    tags = {
        "environment": attributes.environment.value,
        "service": attributes.service,
        "status": attributes.status.value,
        "owner": outgoing.owner,
    }
    tag_set = "".join(f",{key}={tag_value(value)}" for key, value in sorted(tags.items()) if value)
    moment = int(outgoing.occurred_at.timestamp())
    return f"{MEASUREMENT}{tag_set} duration_seconds={seconds!r} {moment}"


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
