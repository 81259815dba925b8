"""What every sink shares: the delivery it is given and the answer it gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

from tracker_ci.models import Event, EventMetadata
from tracker_ci.wire.webhooks import WebhookOptions

USER_AGENT = "tracker-ci-webhooks"


@dataclass(frozen=True)
class Outgoing:
    """One attempt at one delivery: the same ``id`` on every attempt."""

    id: str
    type: str
    body: dict[str, Any]
    attempt: int
    url: str
    secret: str
    now: datetime
    public_url: str = ""
    #: The webhook's settings for its sink (Slack mention, Grafana dashboard...).
    options: WebhookOptions = field(default_factory=WebhookOptions)
    #: Secrets a rotation replaced that still sign, beside ``secret`` (generic sink).
    previous_secrets: tuple[str, ...] = ()

    @property
    def event(self) -> Event | None:
        """The Tracker event the notification is about, if any."""
        raw = self.body.get("event")
        return Event.model_validate(raw) if isinstance(raw, dict) else None

    @property
    def occurred_at(self) -> datetime:
        """When the change happened (the notification's ``occurredAt``), else now."""
        raw = self.body.get("occurredAt")
        moment = EventMetadata.model_validate({"created_at": raw}).created_at if raw else None
        return moment or self.now

    @property
    def owner(self) -> str:
        """The service's owner from its catalog entry ("" without one)."""
        service = self.body.get("service")
        return str(service.get("owner") or "") if isinstance(service, dict) else ""

    @property
    def channel(self) -> str:
        """The service's communication channel from its catalog entry: its name, else its
        URL ("" without one)."""
        service = self.body.get("service")
        channel = service.get("channel") if isinstance(service, dict) else None
        if not isinstance(channel, dict):
            return ""
        return str(channel.get("name") or channel.get("url") or "")

    def event_link(self, event: Event) -> str:
        """The event's dashboard page (needs the server's public address, ``public_url``)."""
        if not self.public_url:
            return ""
        return f"{self.public_url.rstrip('/')}/events/{event.id}"


@dataclass(frozen=True)
class Answer:
    """What the receiver said: a 2xx ``status_code`` is delivered; ``skipped`` means the
    sink had nothing to send for this notification (it counts as delivered)."""

    status_code: int | None
    error: str = ""
    skipped: bool = False
    #: The receiver's ``Retry-After`` with a 429 or 503 (seconds or an HTTP date), as sent.
    retry_after: str = ""

    @property
    def ok(self) -> bool:
        """Delivered (or nothing to deliver)."""
        return self.skipped or (self.status_code is not None and 200 <= self.status_code < 300)

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        """The answer of an HTTP response (its first 200 characters as the error)."""
        if response.is_success:
            return cls(response.status_code)
        wait = response.headers.get("retry-after", "") if response.status_code in BUSY else ""
        return cls(
            response.status_code,
            f"HTTP {response.status_code}: {response.text[:200]}",
            retry_after=wait,
        )


#: Answers that say "later": their ``Retry-After`` is honoured (dispatcher.py).
BUSY = frozenset({429, 503})
#: The answer that says "never again": the webhook is disabled.
GONE = 410


class Sink(Protocol):
    """Sends one attempt of a delivery; raises ``httpx.HTTPError`` when it cannot."""

    def send(self, outgoing: Outgoing, http: httpx.Client) -> Answer:
        """Send it; the receiver's answer."""
        ...


def ellipsize(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def skip(reason: str) -> Answer:
    """Nothing to send for this notification."""
    return Answer(None, f"skipped: {reason}", skipped=True)
