"""The generic webhook: the notification as JSON, signed as GitHub signs its webhooks and
as the Standard Webhooks specification (standardwebhooks.com) signs them.

Headers: ``X-Tracker-Event`` (the event name), ``X-Tracker-Delivery`` (the delivery id, the
same on every retry), ``X-Tracker-Timestamp`` (when this attempt was sent, also ``sentAt``
in the signed body so that a receiver can refuse replays) and, with a secret,
``X-Tracker-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``. Standard Webhooks:
``webhook-id`` (the delivery id), ``webhook-timestamp`` (the attempt's Unix seconds) and,
with a secret, ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, so
the id and time are signed too and a captured request cannot be replayed under a new id.
The key of that signature is the secret's bytes, or, for a ``whsec_<base64>`` secret (the
specification's format), the decoded bytes, as the specification's libraries read it.
After a secret rotation (``POST /webhooks/{id}/secret``) the replaced secret still signs
for a while: ``webhook-signature`` then carries both signatures, space-separated, as the
specification allows; ``X-Tracker-Signature-256`` is always the new secret's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime

import httpx

from tracker_ci.models import format_timestamp
from tracker_server.sinks.base import USER_AGENT, Answer, Outgoing


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of the raw body with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signing_key(secret: str) -> bytes:
    """The Standard Webhooks key of a secret: ``whsec_<base64>`` decoded, else its bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_") + "==", validate=False)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: the whole secret is the key
    return secret.encode()


def standard_signature(secret: str, delivery_id: str, sent: datetime, body: bytes) -> str:
    """``v1,<base64>``: HMAC-SHA256 of ``id.timestamp.body`` (Standard Webhooks)."""
    signed = f"{delivery_id}.{int(sent.timestamp())}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


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
            "webhook-id": outgoing.id,
            "webhook-timestamp": str(int(outgoing.now.timestamp())),
        }
        if outgoing.secret:
            headers["X-Tracker-Signature-256"] = signature(outgoing.secret, raw)
            headers["webhook-signature"] = " ".join(
                standard_signature(secret, outgoing.id, outgoing.now, raw)
                for secret in (outgoing.secret, *outgoing.previous_secrets)
            )
        return Answer.of(http.post(outgoing.url, content=raw, headers=headers))
