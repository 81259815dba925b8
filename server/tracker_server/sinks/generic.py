"""The generic webhook: the notification as JSON, signed as GitHub signs its webhooks.

Headers: ``X-Tracker-Event`` (the event name), ``X-Tracker-Delivery`` (the delivery id, the
same on every retry), ``X-Tracker-Timestamp`` (when this attempt was sent, also ``sentAt``
in the signed body so that a receiver can refuse replays) and, with a secret,
``X-Tracker-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from tracker_ci.models import format_timestamp
from tracker_server.sinks.base import USER_AGENT, Answer, Outgoing


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of the raw body with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class GenericSink:
    """POST the signed JSON document to the webhook's URL."""

    def send(self, outgoing: Outgoing, http: httpx.Client) -> Answer:
        """One signed POST."""
        sent_at = format_timestamp(outgoing.now)
        raw = json.dumps({**outgoing.body, "sentAt": sent_at}, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Tracker-Event": outgoing.type,
            "X-Tracker-Delivery": outgoing.id,
            "X-Tracker-Timestamp": sent_at,
        }
        if outgoing.secret:
            headers["X-Tracker-Signature-256"] = signature(outgoing.secret, raw)
        return Answer.of(http.post(outgoing.url, content=raw, headers=headers))
