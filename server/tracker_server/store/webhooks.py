"""Webhook subscriptions and their deliveries (the outbox rows; see outbox.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, func, insert, select, update

from tracker_ci.models import Webhook, WebhookDelivery
from tracker_ci.wire.webhooks import WebhookOptions
from tracker_server.domain import InvalidInput, NotFound
from tracker_server.outbox import DEAD, DELIVERED, PENDING, TEST_EVENT, Notification, enqueue
from tracker_server.tables import webhook_deliveries, webhooks


def row_to_webhook(row: Any, failing: int = 0) -> Webhook:
    """The wire model of a ``webhooks`` row: never the secret."""
    return Webhook(
        id=row.id,
        url=row.url,
        kind=row.kind,
        events=list(row.events or []),
        service=row.service,
        environment=row.environment,
        has_secret=bool(row.secret),
        created_at=row.created_at,
        failing=failing,
        options=WebhookOptions.model_validate(row.options or {}),
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        previous_secret_until=row.previous_secret_until if row.previous_secret else None,
    )


def row_to_delivery(row: Any) -> WebhookDelivery:
    """The wire model of a ``webhook_deliveries`` row (no next attempt once it is over)."""
    return WebhookDelivery(
        id=row.id,
        webhook_id=row.webhook_id,
        type=row.type,
        state=row.state,
        attempts=row.attempts,
        created_at=row.created_at,
        last_attempt_at=row.last_attempt_at,
        response_code=row.response_code,
        error=row.error,
        next_attempt_at=row.next_attempt_at if row.state == PENDING else None,
        body=row.body,
    )


def create_webhook(
    conn: Connection,
    *,
    url: str,
    kind: str,
    events: list[str],
    service: str,
    environment: str,
    secret: str,
    now: datetime,
    options: WebhookOptions | None = None,
) -> Webhook:
    """Store a subscription (its options as their wire JSON, empty ones left out)."""
    values = {
        "id": str(uuid.uuid4()),
        "url": url,
        "kind": kind,
        "events": events,
        "service": service,
        "environment": environment,
        "secret": secret,
        "created_at": now,
        "options": (options or WebhookOptions()).model_dump(by_alias=True, exclude_defaults=True),
        "disabled_at": None,
        "disabled_reason": "",
        "previous_secret": "",
        "previous_secret_until": None,
    }
    conn.execute(insert(webhooks).values(values))
    return row_to_webhook(conn.execute(select(webhooks).where(webhooks.c.id == values["id"])).one())


def _failing_counts(conn: Connection) -> dict[str, int]:
    """Per webhook: deliveries given up on, or still pending after a failed attempt."""
    failing = (webhook_deliveries.c.state == DEAD) | (
        (webhook_deliveries.c.state == PENDING) & (webhook_deliveries.c.attempts > 0)
    )
    rows = conn.execute(
        select(webhook_deliveries.c.webhook_id, func.count())
        .where(failing)
        .group_by(webhook_deliveries.c.webhook_id)
    ).all()
    return {row[0]: int(row[1]) for row in rows}


def list_webhooks(conn: Connection) -> list[Webhook]:
    """Every subscription, oldest first, with its count of failing deliveries."""
    failing = _failing_counts(conn)
    rows = conn.execute(select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id)).all()
    return [row_to_webhook(row, failing.get(row.id, 0)) for row in rows]


def require_webhook_row(conn: Connection, *, webhook_id: str) -> Any:
    """The ``webhooks`` row; 404 when there is none."""
    row = conn.execute(select(webhooks).where(webhooks.c.id == webhook_id)).first()
    if row is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return row


def disable_webhook(conn: Connection, *, webhook_id: str, now: datetime, reason: str) -> None:
    """Stop sending to a webhook whose receiver is gone (410): its pending deliveries die."""
    conn.execute(
        update(webhooks)
        .where(webhooks.c.id == webhook_id, webhooks.c.disabled_at.is_(None))
        .values(disabled_at=now, disabled_reason=reason)
    )
    conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.webhook_id == webhook_id,
            webhook_deliveries.c.state == PENDING,
        )
        .values(state=DEAD, lease_until=None, error=f"not sent: {reason}")
    )


def rotate_secret(
    conn: Connection, *, webhook_id: str, secret: str, now: datetime, previous_valid: timedelta
) -> Webhook:
    """Sign with ``secret`` from now on; the secret it replaces still signs, beside it,
    for ``previous_valid`` (none when there was no secret or the time is zero). The same
    secret again changes nothing, so a retried rotation keeps the replaced one."""
    row = require_webhook_row(conn, webhook_id=webhook_id)
    if secret == row.secret:  # a repeat (a retried request) changes nothing
        return row_to_webhook(row)
    keep = bool(row.secret) and previous_valid > timedelta(0)
    conn.execute(
        update(webhooks)
        .where(webhooks.c.id == webhook_id)
        .values(
            secret=secret,
            previous_secret=row.secret if keep else "",
            previous_secret_until=now + previous_valid if keep else None,
        )
    )
    return row_to_webhook(require_webhook_row(conn, webhook_id=webhook_id))


def delete_webhook(conn: Connection, *, webhook_id: str) -> Webhook:
    """Remove a subscription and its deliveries; the removed subscription."""
    row = require_webhook_row(conn, webhook_id=webhook_id)
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
    conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
    return row_to_webhook(row)


def enqueue_test(conn: Connection, *, webhook_id: str, now: datetime) -> WebhookDelivery:
    """A ``webhook.test`` delivery to one webhook, sent by the dispatcher like any other."""
    hook = require_webhook_row(conn, webhook_id=webhook_id)
    if hook.disabled_at is not None:
        raise InvalidInput(
            f"invalid request: webhook {webhook_id} is disabled ({hook.disabled_reason}); "
            "remove it and add it again once the receiver is back"
        )
    notification = Notification(TEST_EVENT, details={"webhookId": webhook_id})
    delivery_id = enqueue(conn, hook=hook, notification=notification, journal_id=0, occurred_at=now)
    row = conn.execute(
        select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
    ).one()
    return row_to_delivery(row)


def list_deliveries(
    conn: Connection, *, webhook_id: str | None = None, limit: int = 50
) -> list[WebhookDelivery]:
    """The newest deliveries (of one webhook, or of all)."""
    query = select(webhook_deliveries)
    if webhook_id is not None:
        require_webhook_row(conn, webhook_id=webhook_id)
        query = query.where(webhook_deliveries.c.webhook_id == webhook_id)
    rows = conn.execute(
        query.order_by(
            webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.journal_id.desc()
        ).limit(limit)
    ).all()
    return [row_to_delivery(row) for row in rows]


@dataclass(frozen=True)
class FailingWebhook:
    """A subscription with failing deliveries, as the dashboard shows it: the receiver's
    host only (a Slack or webhook URL's path is a secret of its own)."""

    id: str
    kind: str
    host: str
    failing: int
    response_code: int | None
    error: str
    last_attempt_at: datetime | None


def failing_webhooks(conn: Connection) -> list[FailingWebhook]:
    """The webhooks with dead deliveries or pending ones that failed, most failing first."""
    failing = _failing_counts(conn)
    if not failing:
        return []
    found = []
    for row in conn.execute(select(webhooks).where(webhooks.c.id.in_(list(failing)))).all():
        last = conn.execute(
            select(webhook_deliveries)
            .where(
                webhook_deliveries.c.webhook_id == row.id,
                webhook_deliveries.c.attempts > 0,
                webhook_deliveries.c.state != DELIVERED,
            )
            .order_by(webhook_deliveries.c.last_attempt_at.desc())
            .limit(1)
        ).first()
        found.append(
            FailingWebhook(
                id=row.id,
                kind=row.kind,
                host=urlsplit(row.url).hostname or "",
                failing=failing[row.id],
                response_code=last.response_code if last is not None else None,
                error=last.error if last is not None else "",
                last_attempt_at=last.last_attempt_at if last is not None else None,
            )
        )
    return sorted(found, key=lambda hook: (-hook.failing, hook.id))
