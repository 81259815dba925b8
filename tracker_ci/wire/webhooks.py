"""Webhooks (extension): subscriptions, their deliveries, the events they may name."""

import re
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
    "SLACK_MENTION",
    "WEBHOOK_KINDS",
    "Webhook",
    "WebhookCreateRequest",
    "WebhookDelivery",
    "WebhookDeliveryListResponse",
    "WebhookListResponse",
    "WebhookOptions",
    "WebhookResponse",
    "WebhookSecretRequest",
]


#: The notifications a webhook can subscribe to (``*`` patterns allowed: ``lock.*``).
WEBHOOK_EVENTS: tuple[str, ...] = (
    "deployment.started",
    "deployment.finished",
    "deployment.approved",
    "deployment.rejected",
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
#: What a Slack webhook's ``mention`` option may hold: a special mention, a user or a group.
SLACK_MENTION = re.compile(
    r"!here|!channel|!everyone|@[UW][A-Z0-9]{2,30}|!subteam\^S[A-Z0-9]{2,30}"
)
#: Where a webhook delivers: its URL's receiver speaks one of these.
WEBHOOK_KINDS: tuple[str, ...] = ("generic", "slack", "github-deployments", "grafana", "influx")


class WebhookOptions(WireModel):
    """A webhook's settings for its receiver; each kind reads its own, the others stay
    empty. ``mention`` (slack): whom the messages mention, in Slack's syntax without the
    brackets (``!here``, ``!channel``, ``@U0123ABCD``, ``!subteam^S0123ABCD``; nobody by
    default). ``environmentUrl`` (github-deployments): the deployed environment's address
    on each deployment status. ``dashboardUid`` and ``panelId`` (grafana): the dashboard
    (and panel) the annotations go on (organisation-wide without them)."""

    mention: Text = ""
    environment_url: Text = ""
    dashboard_uid: Text = ""
    panel_id: int | None = None


def _new_options() -> WebhookOptions:
    """Empty options: the ``default_factory`` of the options fields."""
    return WebhookOptions()


class WebhookCreateRequest(WireModel):
    """Body of ``POST /webhooks`` (extension). ``secret``: the HMAC key (generic) or the
    receiver's token (GitHub, Grafana, InfluxDB); it is never shown back."""

    url: Text = ""
    events: TextList = Field(default_factory=new_list)
    kind: Text = "generic"
    service: Text = ""
    environment: Text = ""
    secret: Text = ""
    options: WebhookOptions = Field(default_factory=_new_options)


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
    options: WebhookOptions = Field(default_factory=_new_options)
    #: Set when the receiver answered 410 (gone): nothing is sent to it any more.
    disabled_at: Timestamp | None = None
    disabled_reason: Text = ""
    #: After a secret rotation: until when the replaced secret still signs (beside the new).
    previous_secret_until: Timestamp | None = None


class WebhookSecretRequest(WireModel):
    """Body of ``POST /webhooks/{id}/secret`` (extension): the new secret; the one it
    replaces still signs, beside it, for ``previousValidSeconds`` (0: not at all)."""

    secret: Text = ""
    previous_valid_seconds: int = 86400


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
