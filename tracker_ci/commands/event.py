"""``tracker-ci event``: create, read, change and search Tracker events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from tracker_ci.commands.common import (
    AppState,
    WireChoice,
    environment_option,
    pass_state,
    service_option,
)
from tracker_ci.output import emit_json, format_seconds, render_summary, render_table

__all__ = ["event"]

_DATE = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"])


@click.group(
    epilog="""\b
Examples:
  tracker-ci event create -s api -e production --type incident --priority P1 \\
      --status open --title "API down"
  tracker-ci event update 1f0c... --status done
  tracker-ci event search --service api --status failure --since 2026-01-01
  tracker-ci --output json event today
"""
)
def event() -> None:
    """Tracker events: deployments, incidents, operations, drifts."""


def print_event(state: AppState, ev: Any) -> None:
    """The event as JSON, or a short summary."""
    if state.json:
        emit_json(ev)
        return
    a = ev.attributes
    duration = ev.metadata.duration.total_seconds() if ev.metadata.duration else None
    click.echo(
        render_summary(
            [
                ("id", ev.metadata.id),
                ("title", ev.title),
                ("type", a.type),
                ("status", a.status),
                ("service", a.service),
                ("environment", a.environment),
                ("priority", a.priority),
                ("owner", a.owner),
                ("source", a.source),
                ("message", a.message),
                ("pull request", ev.links.pull_request_link),
                ("ticket", ev.links.ticket),
                ("created", ev.metadata.created_at),
                ("duration", format_seconds(duration)),
            ]
        )
    )


def print_events(state: AppState, answer: Any) -> None:
    """A list answer as JSON, or a table."""
    if state.json:
        emit_json(answer)
        return
    if not answer.events:
        click.echo("no events")
        return
    rows = [
        (
            e.metadata.created_at,
            e.attributes.type,
            e.attributes.status,
            e.attributes.service,
            e.attributes.environment,
            e.title,
            e.metadata.id,
        )
        for e in answer.events
    ]
    click.echo(
        render_table(rows, ["created", "type", "status", "service", "environment", "title", "id"])
    )
    if answer.total_count > len(answer.events):
        click.echo(f"({len(answer.events)} of {answer.total_count}; see --page)")


@event.command()
@click.option("--title", "-t", required=True, help="What happened, in a few words.")
@service_option
@environment_option
@click.option(
    "--type",
    "event_type",
    type=WireChoice("EventType"),
    default="deployment",
    show_default=True,
    help="Kind of event.",
)
@click.option(
    "--status",
    type=WireChoice("Status"),
    default="start",
    show_default=True,
    help="A deployment or operation created as start or in_progress takes the lock of "
    "the service in the environment until it is closed.",
)
@click.option("--priority", type=WireChoice("Priority"), default="P3", show_default=True)
@click.option("--message", "-m", default="", help="Longer description.")
@click.option("--source", default="tracker-ci", show_default=True)
@click.option("--owner", help="Who is responsible. [default: the CI actor or $USER]")
@click.option("--pr-url", help="Pull/merge request URL.")
@click.option("--ticket", default="", help="Ticket URL or key.")
@click.option("--related-id", default="", help="Id of an event this one follows.")
@click.option("--impact/--no-impact", default=False, help="Whether users are affected.")
@click.option("--start-date", type=_DATE, help="When it started (UTC). [default: now]")
@click.option(
    "--lock-ttl",
    type=click.IntRange(min=0),
    default=None,
    help="TTL of the automatic lock of an opening deployment, in seconds (0: never "
    "expires). [env: TRACKER_LOCK_TTL; config: lock_ttl; default: 3600]",
)
@click.option(
    "--new-environment",
    is_flag=True,
    envvar="TRACKER_NEW_ENVIRONMENT",
    help="The environment is a new name, not a misspelling (our server refuses a name "
    "close to one the service used unless told). [env: TRACKER_NEW_ENVIRONMENT]",
)
@pass_state
def create(
    state: AppState,
    title: str,
    service: str | None,
    environment: Any,
    event_type: Any,
    status: Any,
    priority: Any,
    message: str,
    source: str,
    owner: str | None,
    pr_url: str | None,
    ticket: str,
    related_id: str,
    impact: bool,
    start_date: datetime | None,
    lock_ttl: int | None,
    new_environment: bool,
) -> None:
    """Create an event; prints its id."""
    from tracker_ci.commands.common import require
    from tracker_ci.commands.context import check_pr_url, detect_run
    from tracker_ci.models import (
        CreateEventRequest,
        Environment,
        EventAttributes,
        EventLinks,
        utcnow,
    )

    service = require(service, state, "service", "--service")
    env = Environment.parse(require(environment, state, "environment", "--environment"))
    request = CreateEventRequest(
        title=title,
        attributes=EventAttributes(
            message=message,
            source=source,
            type=event_type,
            priority=priority,
            related_id=related_id,
            service=service,
            status=status,
            environment=env,
            impact=impact,
            owner=owner or detect_run().owner,
            start_date=start_date or utcnow(),
        ),
        links=EventLinks(pull_request_link=check_pr_url(pr_url) or "", ticket=ticket),
    )
    with state.client() as client:
        ttl = state.config["lock_ttl"] if lock_ttl is None else lock_ttl
        created = client.create_event(
            request, lock_ttl_seconds=ttl, new_environment=new_environment
        )
    from tracker_ci.models import takes_lock

    if takes_lock(created.attributes.type, created.attributes.status):
        # With the defaults (deployment, start) a note like `event create -t "restarted
        # pods"` holds the deployment lock until closed: never let that happen silently.
        kind = created.attributes.type.value
        click.echo(
            f"tracker-ci: event {created.metadata.id} holds the {kind} lock of "
            f"{service} in {env.value} until it is closed: tracker-ci event update "
            f"{created.metadata.id} --status success (or failure, done)",
            err=True,
        )
    if state.json:
        emit_json(created)
    else:
        click.echo(created.metadata.id)


@event.command()
@click.argument("event_id")
@pass_state
def get(state: AppState, event_id: str) -> None:
    """Show one event (by id or Slack id). Exit 6 when it does not exist."""
    with state.client() as client:
        print_event(state, client.get_event(event_id))


@event.command()
@click.argument("event_id")
@click.option("--title", "-t")
@click.option("--status", type=WireChoice("Status"))
@click.option("--priority", type=WireChoice("Priority"))
@click.option("--message", "-m")
@click.option("--owner")
@click.option("--pr-url")
@click.option("--ticket")
@click.option("--impact/--no-impact", default=None)
@pass_state
def update(
    state: AppState,
    event_id: str,
    title: str | None,
    status: Any,
    priority: Any,
    message: str | None,
    owner: str | None,
    pr_url: str | None,
    ticket: str | None,
    impact: bool | None,
) -> None:
    """Change some fields of an event (the rest is kept)."""
    from tracker_ci.commands.context import check_pr_url
    from tracker_ci.models import UpdateEventRequest

    changes = (title, status, priority, message, owner, pr_url, ticket, impact)
    if all(change is None for change in changes):
        # Nothing given: a silent no-op PUT would look like a successful update.
        raise click.UsageError(
            "nothing to change: give --title, --status, --priority, --message, --owner, "
            "--pr-url, --ticket or --impact/--no-impact"
        )
    pr_url = check_pr_url(pr_url)
    with state.client() as client:
        current = client.get_event(event_id)
        attributes = current.attributes.model_copy(
            update={
                key: value
                for key, value in {
                    "status": status,
                    "priority": priority,
                    "message": message,
                    "owner": owner,
                    "impact": impact,
                }.items()
                if value is not None
            }
        )
        links = current.links.model_copy(
            update={
                k: v
                for k, v in {"pull_request_link": pr_url, "ticket": ticket}.items()
                if v is not None
            }
        )
        updated = client.update_event(
            UpdateEventRequest(
                id=current.metadata.id,
                title=current.title if title is None else title,
                attributes=attributes,
                links=links,
                slack_id=current.metadata.slack_id,
            )
        )
    print_event(state, updated)


@event.command()
@click.argument("event_id")
@pass_state
def delete(state: AppState, event_id: str) -> None:
    """Delete an event (bundled server; upstream answers 501)."""
    with state.client() as client:
        client.delete_event(event_id)
    if state.json:
        emit_json({"deleted": event_id})
    else:
        click.echo(f"deleted {event_id}")


page_options = [
    click.option("--page", type=click.IntRange(min=1), default=1, show_default=True),
    click.option("--per-page", type=click.IntRange(min=1, max=1000), default=50, show_default=True),
]


def _with_paging(func: Any) -> Any:
    for option in reversed(page_options):
        func = option(func)
    return func


@event.command("list")
@_with_paging
@pass_state
def list_events(state: AppState, page: int, per_page: int) -> None:
    """The newest events."""
    with state.client() as client:
        print_events(state, client.list_events(page=page, per_page=per_page))


@event.command()
@_with_paging
@pass_state
def today(state: AppState, page: int, per_page: int) -> None:
    """Events that start today (UTC)."""
    with state.client() as client:
        print_events(state, client.today_events(page=page, per_page=per_page))


@event.command()
@service_option
@environment_option
@click.option("--type", "event_type", type=WireChoice("EventType"))
@click.option("--status", type=WireChoice("Status"))
@click.option("--priority", type=WireChoice("Priority"))
@click.option("--source")
@click.option("--since", type=_DATE, help="Start date from (UTC), e.g. 2026-01-31.")
@click.option("--until", type=_DATE, help="Start date up to (UTC), inclusive.")
@pass_state
def search(
    state: AppState,
    service: str | None,
    environment: Any,
    event_type: Any,
    status: Any,
    priority: Any,
    source: str | None,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Events matching every filter given (at least one)."""
    filters = {
        "service": service,
        "environment": environment,
        "type": event_type,
        "status": status,
        "priority": priority,
        "source": source,
        "start_date": since,
        "end_date": until,
    }
    given = {key: value for key, value in filters.items() if value not in (None, "")}
    if not given:
        raise click.UsageError("give at least one filter (--service, --status, --since, ...)")
    with state.client() as client:
        print_events(state, client.search_events(**given))


@event.command()
@click.argument("event_id")
@click.option("--comment", help="Add a comment entry instead of listing.")
@click.option("--user", help="Author of the comment. [default: the CI actor or $USER]")
@_with_paging
@pass_state
def changelog(
    state: AppState, event_id: str, comment: str | None, user: str | None, page: int, per_page: int
) -> None:
    """An event's history (or add a comment to it with --comment)."""
    from tracker_ci.commands.context import detect_run
    from tracker_ci.models import ChangelogEntry, ChangeType

    with state.client() as client:
        if comment is not None:
            entry = ChangelogEntry(
                change_type=ChangeType.commented, comment=comment, user=user or detect_run().owner
            )
            print_event(state, client.add_changelog_entry(event_id, entry))
            return
        answer = client.get_changelog(event_id, page=page, per_page=per_page)
    if state.json:
        emit_json(answer)
        return
    click.echo(
        render_table(
            [
                (c.timestamp, c.user, c.change_type, c.field, c.old_value, c.new_value, c.comment)
                for c in answer.changelog
            ],
            ["time", "user", "change", "field", "old", "new", "comment"],
        )
    )


@event.command()
@click.argument("event_id")
@click.option("--comment", default="", help="Why, recorded in the changelog.")
@pass_state
def approve(state: AppState, event_id: str, comment: str) -> None:
    """Approve a deployment waiting for approval (bundled server): it may start.
    Not with the token that opened it (an admin may). Exit 2 when it is not waiting."""
    with state.client() as client:
        print_event(state, client.decide_approval(event_id, approved=True, comment=comment))


@event.command()
@click.argument("event_id")
@click.option("--comment", default="", help="Why, recorded in the changelog.")
@pass_state
def reject(state: AppState, event_id: str, comment: str) -> None:
    """Reject a deployment waiting for approval (bundled server): it is closed as a
    failure and its deploy exits 10. Not with the token that opened it (an admin may)."""
    with state.client() as client:
        print_event(state, client.decide_approval(event_id, approved=False, comment=comment))


# Its own module: the importer is long, and `event --help` needs only its name.
from tracker_ci.commands.event_import import import_events  # noqa: E402

event.add_command(import_events)
