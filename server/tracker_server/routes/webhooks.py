"""Webhooks (extension): subscribe a URL to notifications, list, remove, test, and read
what was delivered. Admin-only when auth is on; a secret is never shown back."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from sqlalchemy import Connection

from tracker_ci.models import (
    API_PREFIX,
    ENVIRONMENT_NAME,
    WEBHOOK_KINDS,
    WebhookCreateRequest,
    WebhookDeliveryListResponse,
    WebhookListResponse,
    WebhookResponse,
    WebhookSecretRequest,
)
from tracker_ci.wire.webhooks import SLACK_MENTION
from tracker_server import targets
from tracker_server.deps import Admin, AdminWriteDep, DatabaseDep, get_settings
from tracker_server.domain import InvalidInput
from tracker_server.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from tracker_server.outbox import is_known_pattern
from tracker_server.routes.common import IdempotencyKey, wire
from tracker_server.settings import ServerSettings
from tracker_server.store import webhooks as webhook_store
from tracker_server.validation import MAX_LINK, MAX_NAME, check_text, check_urls

router = APIRouter(prefix=API_PREFIX, tags=["webhooks"])

WebhookId = Annotated[uuid.UUID, Path(description="The webhook's id.")]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]


def check_webhook(body: WebhookCreateRequest) -> None:
    """400 for a URL, kind, event pattern or environment that cannot work."""
    check_text(body.url, "url", max_length=2000, required=True)
    check_urls(body)
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
                "(deployment.started, deployment.finished, deployment.approved, "
                "deployment.rejected, lock.*, queue.*, freeze.*, "
                "alert.fired)"
            )
    check_text(body.service, "service", max_length=MAX_NAME)
    if body.environment and not ENVIRONMENT_NAME.fullmatch(body.environment):
        raise InvalidInput(f"invalid request: environment: {body.environment!r} is not known")
    check_text(body.secret, "secret", max_length=1000)
    check_options(body)


#: Which kind reads which option (WebhookOptions): an option another kind would ignore
#: is refused rather than silently dropped.
OPTION_KINDS = {
    "mention": "slack",
    "environmentUrl": "github-deployments",
    "dashboardUid": "grafana",
    "panelId": "grafana",
}


def check_options(body: WebhookCreateRequest) -> None:
    """400 for an option its kind does not read, or a value its receiver cannot take."""
    options = body.options
    for name in options.model_dump(by_alias=True, exclude_defaults=True):
        if OPTION_KINDS[name] != body.kind:
            raise InvalidInput(
                f"invalid request: options.{name} is for {OPTION_KINDS[name]} webhooks, "
                f"not {body.kind}"
            )
    if options.mention and not SLACK_MENTION.fullmatch(options.mention):
        raise InvalidInput(
            f"invalid request: options.mention: {options.mention!r} is not !here, !channel, "
            "!everyone, @<user id> or !subteam^<group id>"
        )
    check_text(options.environment_url, "options.environmentUrl", max_length=MAX_LINK)
    if options.environment_url and not options.environment_url.startswith(("https://", "http://")):
        raise InvalidInput("invalid request: options.environmentUrl is not an http(s) URL")
    check_text(options.dashboard_uid, "options.dashboardUid", max_length=MAX_NAME)
    if options.panel_id is not None and (options.panel_id < 1 or not options.dashboard_uid):
        raise InvalidInput(
            "invalid request: options.panelId must be a positive number, with a dashboardUid"
        )


@router.post(
    "/webhooks", status_code=201, response_model=WebhookResponse, responses=ERROR_RESPONSES
)
def create_webhook(
    body: WebhookCreateRequest,
    write: AdminWriteDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Subscribe a URL to notifications (``*`` patterns allowed in ``events``). A URL whose
    host is (or resolves to) a link-local, cloud metadata or, unless the server allows
    private webhooks, a loopback or private address is refused; a name that does not
    resolve yet is accepted (every delivery checks its address again)."""
    check_webhook(body)
    check_target(body.url, allow_private=settings.allow_private_webhooks)

    def work(conn: Connection) -> Response:
        webhook = webhook_store.create_webhook(
            conn,
            url=body.url,
            kind=body.kind,
            events=list(dict.fromkeys(body.events)),
            service=body.service,
            environment=body.environment,
            secret=body.secret,
            now=write.now,
            options=body.options,
        )
        return wire(WebhookResponse(webhook=webhook), status_code=201)

    return write.once(
        scope=f"POST /webhooks {write.principal.token_id}",
        key=idempotency_key,
        body=body,
        work=work,
    )


def check_target(url: str, *, allow_private: bool) -> None:
    """400 when the URL's host is an address webhooks may not reach (targets.py)."""
    try:
        targets.check_url(url, allow_private=allow_private)
    except targets.RefusedTarget as exc:
        raise InvalidInput(f"invalid request: url: {exc}") from None
    except targets.UnresolvedTarget:
        pass  # a receiver not in DNS yet: each delivery is checked (and fails) until it is


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


#: The longest a replaced secret may go on signing after a rotation: a week.
MAX_PREVIOUS_VALID_SECONDS = 7 * 86400


@router.post(
    "/webhooks/{id}/secret",
    response_model=WebhookResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def rotate_secret(id: WebhookId, body: WebhookSecretRequest, write: AdminWriteDep) -> Response:
    """Replace the webhook's secret. The one it replaces goes on signing beside it
    (a second ``webhook-signature``) for ``previousValidSeconds`` (default a day, at most a
    week), so that receivers can switch without refusing a delivery."""
    check_text(body.secret, "secret", max_length=1000, required=True)
    if not 0 <= body.previous_valid_seconds <= MAX_PREVIOUS_VALID_SECONDS:
        raise InvalidInput(
            "invalid request: previousValidSeconds must be between 0 and "
            f"{MAX_PREVIOUS_VALID_SECONDS} (a week)"
        )
    with write.transaction() as conn:
        webhook = webhook_store.rotate_secret(
            conn,
            webhook_id=str(id),
            secret=body.secret,
            now=write.now,
            previous_valid=timedelta(seconds=body.previous_valid_seconds),
        )
    return wire(WebhookResponse(webhook=webhook))


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
