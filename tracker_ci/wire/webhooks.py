"""Webhooks (extension): subscriptions, their deliveries, the events they may name."""

from typing import Any

from pydantic import Field

from tracker_ci.wire.base import (
    BUILT_ON_FIRST_USE,
    Flag,
    Text,
    TextList,
    Timestamp,
    WireModel,
    new_list,
)

__all__ = [
    "WEBHOOK_EVENTS",
    "WEBHOOK_KINDS",
    "Webhook",
    "WebhookCreateRequest",
    "WebhookDelivery",
    "WebhookDeliveryListResponse",
    "WebhookListResponse",
    "WebhookResponse",
]


#: The notifications a webhook can subscribe to (``*`` patterns allowed: ``lock.*``).
WEBHOOK_EVENTS: tuple[str, ...] = (
    "deployment.started",
    "deployment.finished",
    "lock.acquired",
    "lock.released",
    "lock.expired",
    "lock.evicted",
    "queue.joined",
    "queue.superseded",
    "freeze.started",
    "freeze.ended",
    "freeze.broken",
    "alert.fired",
)
#: Where a webhook delivers: its URL's receiver speaks one of these.
WEBHOOK_KINDS: tuple[str, ...] = ("generic", "slack", "github-deployments", "grafana", "influx")


class WebhookCreateRequest(WireModel):
    """Body of ``POST /webhooks`` (extension). ``secret``: the HMAC key (generic) or the
    receiver's token (GitHub, Grafana, InfluxDB); it is never shown back."""

    url: Text = ""
    events: TextList = Field(default_factory=new_list)
    kind: Text = "generic"
    service: Text = ""
    environment: Text = ""
    secret: Text = ""


class Webhook(WireModel):
    """A subscription as listed: never its secret, only whether it has one."""

    id: Text = ""
    url: Text = ""
    kind: Text = ""
    events: TextList = Field(default_factory=new_list)
    service: Text = ""
    environment: Text = ""
    has_secret: Flag = False
    created_at: Timestamp | None = None
    failing: int = 0


class WebhookResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    webhook: Webhook


class WebhookListResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    webhooks: list[Webhook] = Field(default_factory=new_list)
    total_count: int = 0


class WebhookDelivery(WireModel):
    """One notification to one webhook: its id is the same on every attempt."""

    id: Text = ""
    webhook_id: Text = ""
    type: Text = ""
    state: Text = ""
    attempts: int = 0
    created_at: Timestamp | None = None
    last_attempt_at: Timestamp | None = None
    response_code: int | None = None
    error: Text = ""
    next_attempt_at: Timestamp | None = None
    #: The notification as the generic sink sends it (less its ``sentAt``).
    body: dict[str, Any] | None = None


class WebhookDeliveryListResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    deliveries: list[WebhookDelivery] = Field(default_factory=new_list)
    total_count: int = 0
