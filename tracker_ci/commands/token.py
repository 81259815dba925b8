"""``tracker-ci token``: API tokens of the bundled server (admin token needed)."""

from __future__ import annotations

import click

from tracker_ci.commands.common import AppState, pass_state
from tracker_ci.output import emit_json, render_summary, render_table

__all__ = ["token"]


@click.group(
    epilog="""\b
Examples:
  TRACKER_TOKEN=$ADMIN tracker-ci token create --name ci-api --service api
  tracker-ci token list
  tracker-ci token revoke 3f2a...
"""
)
def token() -> None:
    """API tokens (bundled server with --auth; needs the admin token)."""


@token.command()
@click.option("--name", required=True, help="What the token is for, e.g. ci-api.")
@click.option(
    "--service",
    "services",
    multiple=True,
    help="Limit writes to this service (repeatable; none: every service).",
)
@click.option("--admin", is_flag=True, help="May manage tokens too.")
@click.option(
    "--read-only", is_flag=True, help="May only read (dashboards, scripts): every write is 403."
)
@pass_state
def create(
    state: AppState, name: str, services: tuple[str, ...], admin: bool, read_only: bool
) -> None:
    """Create a token and print its secret (shown only this once)."""
    from tracker_ci.ci.github import mask

    with state.client() as client:
        created = client.create_token(
            name=name, services=services, admin=admin, read_only=read_only
        )
    mask(created.secret)
    if state.json:
        emit_json(created)
        return
    click.echo(created.secret)
    click.echo(
        f"token {created.token.id} ({name}): store the secret now, it is not shown again", err=True
    )


@token.command("list")
@pass_state
def list_tokens(state: AppState) -> None:
    """Every token (never their secrets)."""
    with state.client() as client:
        tokens = client.list_tokens()
    if state.json:
        emit_json(tokens)
        return
    if not tokens:
        click.echo("no tokens")
        return
    click.echo(
        render_table(
            [
                (t.id, t.name, t.prefix, t.services or "*", t.admin, t.created_at, t.last_used_at)
                for t in tokens
            ],
            ["id", "name", "prefix", "services", "admin", "created", "last used"],
        )
    )


@token.command()
@click.argument("token_id")
@pass_state
def revoke(state: AppState, token_id: str) -> None:
    """Revoke a token: it stops working at once. Exit 6 when unknown."""
    with state.client() as client:
        revoked = client.revoke_token(token_id)
    if state.json:
        emit_json(revoked)
    else:
        click.echo(render_summary([("revoked", revoked.id), ("name", revoked.name)]))
