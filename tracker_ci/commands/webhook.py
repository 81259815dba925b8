"""``tracker-ci webhook``: notifications from the bundled server (admin token needed)."""

from __future__ import annotations

import click

from tracker_ci.commands.common import AppState, pass_state
from tracker_ci.output import emit_json, render_summary, render_table

__all__ = ["webhook"]

# The vocabulary lives in tracker_ci.models (WEBHOOK_KINDS); repeated here because
# --help must not import pydantic. A test keeps the two equal.
KINDS = ("generic", "slack", "github-deployments", "grafana", "influx")


@click.group(
    epilog="""\b
Examples:
  tracker-ci webhook add https://hooks.example.com/tracker --event 'deployment.*' \\
      --secret "$HOOK_SECRET"
  tracker-ci webhook add "$SLACK_WEBHOOK_URL" --kind slack --event deployment.finished \\
      --service api --environment production
  tracker-ci webhook list
  tracker-ci webhook test 3f2a...
  tracker-ci webhook deliveries 3f2a...
  tracker-ci webhook secret rotate 3f2a... --secret "$NEW_HOOK_SECRET"
  tracker-ci webhook remove 3f2a...
"""
)
def webhook() -> None:
    """Webhooks: notify a URL, Slack, GitHub, Grafana or InfluxDB of changes (bundled server)."""


@webhook.command()
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    help="deployment.started, deployment.finished, deployment.approved, "
    "deployment.rejected, lock.acquired, lock.released, "
    "lock.expired, lock.evicted, queue.joined, queue.superseded, freeze.started, "
    "freeze.ended, freeze.broken, alert.fired; '*' patterns allowed (repeatable).",
)
@click.option("--service", default="", help="Only this service. [every service]")
@click.option("--environment", default="", help="Only this environment. [every one]")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="generic",
    show_default=True,
    help="What the URL speaks.",
)
@click.option(
    "--secret",
    envvar="TRACKER_WEBHOOK_SECRET",
    default="",
    help="generic: the HMAC key of X-Tracker-Signature-256 and webhook-signature (a "
    "whsec_<base64> secret is decoded, as Standard Webhooks does); github-deployments, "
    "grafana, influx: the receiver's token. Never shown back. [env: TRACKER_WEBHOOK_SECRET]",
)
@click.option(
    "--mention",
    default="",
    help="slack: whom each message mentions: !here, !channel, @<user id> or "
    "!subteam^<group id>. [nobody]",
)
@click.option(
    "--environment-url",
    default="",
    help="github-deployments: the deployed environment's URL on each deployment status.",
)
@click.option(
    "--dashboard-uid",
    default="",
    help="grafana: the dashboard the annotations go on. [organisation-wide]",
)
@click.option(
    "--panel-id", type=click.IntRange(min=1), default=None, help="grafana: the dashboard's panel."
)
@pass_state
def add(
    state: AppState,
    url: str,
    events: tuple[str, ...],
    service: str,
    environment: str,
    kind: str,
    secret: str,
    mention: str,
    environment_url: str,
    dashboard_uid: str,
    panel_id: int | None,
) -> None:
    """Subscribe URL to notifications; prints the webhook's id."""
    from tracker_ci.models import WebhookCreateRequest
    from tracker_ci.wire.webhooks import WebhookOptions

    request = WebhookCreateRequest(
        url=url,
        events=list(events),
        kind=kind,
        service=service,
        environment=environment,
        secret=secret,
        options=WebhookOptions(
            mention=mention,
            environment_url=environment_url,
            dashboard_uid=dashboard_uid,
            panel_id=panel_id,
        ),
    )
    with state.client() as client:
        created = client.create_webhook(request)
    if state.json:
        emit_json(created)
        return
    click.echo(created.id)


@webhook.command("list")
@pass_state
def list_webhooks(state: AppState) -> None:
    """Every webhook (never a secret), its failing deliveries; disabled ones (410)."""
    with state.client() as client:
        found = client.list_webhooks()
    if state.json:
        emit_json(found)
        return
    if not found:
        click.echo("no webhooks")
        return
    rows = [
        (
            w.id,
            w.kind,
            w.url,
            ",".join(w.events),
            w.service or "*",
            w.environment or "*",
            w.has_secret,
            w.failing,
            f"disabled: {w.disabled_reason}" if w.disabled_at is not None else "active",
        )
        for w in found
    ]
    headers = [
        "id",
        "kind",
        "url",
        "events",
        "service",
        "environment",
        "secret",
        "failing",
        "state",
    ]
    click.echo(render_table(rows, headers))


@webhook.command()
@click.argument("webhook_id")
@pass_state
def remove(state: AppState, webhook_id: str) -> None:
    """Remove a webhook and its deliveries. Exit 6 when unknown."""
    with state.client() as client:
        removed = client.delete_webhook(webhook_id)
    if state.json:
        emit_json(removed)
    else:
        click.echo(render_summary([("removed", removed.id), ("url", removed.url)]))


@webhook.command()
@click.argument("webhook_id")
@pass_state
def test(state: AppState, webhook_id: str) -> None:
    """Send a webhook.test notification (queued; see `webhook deliveries`)."""
    with state.client() as client:
        queued = client.test_webhook(webhook_id)
    if state.json:
        emit_json(queued)
    else:
        click.echo(render_summary([("queued", queued.id), ("type", queued.type)]))


@webhook.group()
def secret() -> None:
    """A webhook's secret: rotate it without refusing a delivery."""


@secret.command()
@click.argument("webhook_id")
@click.option(
    "--secret",
    "new_secret",
    envvar="TRACKER_WEBHOOK_SECRET",
    required=True,
    help="The new secret. Never shown back. [env: TRACKER_WEBHOOK_SECRET]",
)
@click.option(
    "--keep-previous",
    type=click.IntRange(0, 7 * 86400),
    default=86400,
    show_default=True,
    help="Seconds the replaced secret still signs, beside the new one (a second "
    "webhook-signature), while receivers switch; 0: stop at once.",
)
@pass_state
def rotate(state: AppState, webhook_id: str, new_secret: str, keep_previous: int) -> None:
    """Replace WEBHOOK_ID's secret; the old one signs too until --keep-previous runs out."""
    with state.client() as client:
        rotated = client.rotate_webhook_secret(
            webhook_id, new_secret, previous_valid_seconds=keep_previous
        )
    if state.json:
        emit_json(rotated)
        return
    until = rotated.previous_secret_until
    click.echo(
        render_summary(
            [("rotated", rotated.id), ("previous secret signs until", until or "no longer")]
        )
    )


@webhook.command()
@click.argument("webhook_id", required=False)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@pass_state
def deliveries(state: AppState, webhook_id: str | None, limit: int) -> None:
    """What was sent, when, the answer and the next retry (newest first)."""
    with state.client() as client:
        found = client.webhook_deliveries(webhook_id, limit=limit)
    if state.json:
        emit_json(found)
        return
    if not found:
        click.echo("no deliveries")
        return
    rows = [
        (
            d.id,
            d.webhook_id,
            d.type,
            d.state,
            d.attempts,
            d.last_attempt_at,
            d.response_code if d.response_code is not None else "",
            d.next_attempt_at,
            d.error,
        )
        for d in found
    ]
    headers = ["id", "webhook", "type", "state", "attempts", "sent", "answer", "next", "error"]
    click.echo(render_table(rows, headers))
