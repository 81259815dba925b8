"""Webhooks (extension): subscribe a URL to notifications, list, remove, test, and read
what was delivered. Admin-only when auth is on; a secret is never shown back."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from tracker_ci.models import (
    API_PREFIX,
    ENVIRONMENT_NAME,
    WEBHOOK_KINDS,
    WebhookCreateRequest,
    WebhookDeliveryListResponse,
    WebhookListResponse,
    WebhookResponse,
)
from tracker_server.deps import Admin, AdminWriteDep, DatabaseDep
from tracker_server.domain import InvalidInput
from tracker_server.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from tracker_server.outbox import is_known_pattern
from tracker_server.routes.common import wire
from tracker_server.store import webhooks as webhook_store
from tracker_server.validation import MAX_NAME, check_text

router = APIRouter(prefix=API_PREFIX, tags=["webhooks"])

WebhookId = Annotated[uuid.UUID, Path(description="The webhook's id.")]


def check_webhook(body: WebhookCreateRequest) -> None:
    """400 for a URL, kind, event pattern or environment that cannot work."""
    parts = urlsplit(body.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"invalid request: url: {body.url!r} is not an http(s) URL")
    check_text(body.url, "url", max_length=2000, required=True)
    if body.kind not in WEBHOOK_KINDS:
        raise InvalidInput(
            f"invalid request: kind: {body.kind!r} is not one of {', '.join(WEBHOOK_KINDS)}"
        )
    if not body.events:
        raise InvalidInput("invalid request: events: name at least one event (or '*')")
    for pattern in body.events:
        if not is_known_pattern(pattern):
            raise InvalidInput(
                f"invalid request: events: {pattern!r} matches no event "
                "(deployment.started, deployment.finished, lock.*, queue.*, freeze.*, "
                "alert.fired)"
            )
    check_text(body.service, "service", max_length=MAX_NAME)
    if body.environment and not ENVIRONMENT_NAME.fullmatch(body.environment):
        raise InvalidInput(f"invalid request: environment: {body.environment!r} is not known")
    check_text(body.secret, "secret", max_length=1000)


@router.post(
    "/webhooks", status_code=201, response_model=WebhookResponse, responses=ERROR_RESPONSES
)
def create_webhook(body: WebhookCreateRequest, write: AdminWriteDep) -> Response:
    """Subscribe a URL to notifications (``*`` patterns allowed in ``events``)."""
    check_webhook(body)
    with write.transaction() as conn:
        webhook = webhook_store.create_webhook(
            conn,
            url=body.url,
            kind=body.kind,
            events=list(dict.fromkeys(body.events)),
            service=body.service,
            environment=body.environment,
            secret=body.secret,
            now=write.now,
        )
    return wire(WebhookResponse(webhook=webhook), status_code=201)


@router.get("/webhooks", response_model=WebhookListResponse, responses=ERROR_RESPONSES)
def list_webhooks(database: DatabaseDep, _admin: Admin) -> Response:
    """Every webhook (never a secret), with its count of failing deliveries."""
    with database.read() as conn:
        found = webhook_store.list_webhooks(conn)
    return wire(WebhookListResponse(webhooks=found, total_count=len(found)))


@router.delete(
    "/webhooks/{id}",
    response_model=WebhookResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def delete_webhook(id: WebhookId, write: AdminWriteDep) -> Response:
    """Remove a webhook and its deliveries."""
    with write.transaction() as conn:
        webhook = webhook_store.delete_webhook(conn, webhook_id=str(id))
    return wire(WebhookResponse(webhook=webhook))


@router.post(
    "/webhooks/{id}/test",
    status_code=202,
    response_model=WebhookDeliveryListResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def test_webhook(id: WebhookId, write: AdminWriteDep) -> Response:
    """Queue a ``webhook.test`` delivery to this webhook (sent like any other)."""
    with write.transaction() as conn:
        delivery = webhook_store.enqueue_test(conn, webhook_id=str(id), now=write.now)
    return wire(WebhookDeliveryListResponse(deliveries=[delivery], total_count=1), 202)


@router.get(
    "/webhooks/deliveries",
    response_model=WebhookDeliveryListResponse,
    responses=ERROR_RESPONSES,
)
def list_all_deliveries(
    database: DatabaseDep,
    _admin: Admin,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 50,
) -> Response:
    """The newest deliveries of every webhook: state, attempts, answer, next retry."""
    with database.read() as conn:
        found = webhook_store.list_deliveries(conn, limit=limit)
    return wire(WebhookDeliveryListResponse(deliveries=found, total_count=len(found)))


@router.get(
    "/webhooks/{id}/deliveries",
    response_model=WebhookDeliveryListResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def list_deliveries(
    id: WebhookId,
    database: DatabaseDep,
    _admin: Admin,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 50,
) -> Response:
    """The newest deliveries of one webhook."""
    with database.read() as conn:
        found = webhook_store.list_deliveries(conn, webhook_id=str(id), limit=limit)
    return wire(WebhookDeliveryListResponse(deliveries=found, total_count=len(found)))
