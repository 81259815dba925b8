"""``tracker-ci config``: what the settings are and where each one comes from."""

from __future__ import annotations

import click

from tracker_ci.commands.common import AppState, pass_state
from tracker_ci.output import emit_json, render_table

__all__ = ["config"]


@click.group()
def config() -> None:
    """Settings: flag > TRACKER_* environment > ./.tracker-ci.toml > user file > default."""


@config.command()
@pass_state
def show(state: AppState) -> None:
    """Print every effective setting with its source (tokens masked)."""
    from tracker_ci.config import project_config_path, user_config_path

    rows = state.config.shown()
    if state.json:
        emit_json({row["key"]: {"value": row["value"], "source": row["source"]} for row in rows})
        return
    click.echo(
        render_table(
            [
                (r["key"], "" if r["value"] is None else r["value"], r["source"], r["env"])
                for r in rows
            ],
            ["setting", "value", "source", "env"],
            max_width=80,
        )
    )
    project = state.config_file or project_config_path()
    click.echo(f"\nproject file: {project}{'' if project.is_file() else ' (absent)'}")
    user = user_config_path()
    click.echo(f"user file:    {user}{'' if user.is_file() else ' (absent)'}")
