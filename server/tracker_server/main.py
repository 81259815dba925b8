"""The ``serve_command`` click command (also mounted as ``tracker-ci server``).

Only click and the standard library are imported at module level: the ``tracker-ci`` CLI
imports this module lazily, and FastAPI, SQLAlchemy and uvicorn would slow its ``--help``.
"""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING, Any

import click

from tracker_server.backup import backup_command, restore_command

if TYPE_CHECKING:
    from tracker_server.settings import ServerSettings

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def serve(settings: ServerSettings) -> None:
    """Create or upgrade the schema, then serve until SIGTERM or SIGINT (graceful)."""
    import uvicorn

    from tracker_server import wakeup
    from tracker_server.app import create_app
    from tracker_server.protocol import JsonErrorH11Protocol

    app = create_app(settings)

    class AnnouncingServer(uvicorn.Server):
        """A uvicorn server that prints where it listens once it accepts connections."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                print(f"listening on http://{host}:{port}", flush=True)

        async def shutdown(self, sockets: Any = None) -> None:
            # Long polls answer now ("come back"), before uvicorn waits for them to end:
            # a waiter would otherwise hold the stop for its whole poll (up to the grace).
            wakeup.begin_shutdown()
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Access lines are plain text; keep stdout to our JSON lines unless debugging.
        access_log=settings.log_level == "debug",
        server_header=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
        http=JsonErrorH11Protocol,  # malformed HTTP answered with the JSON error body
    )
    # uvicorn re-raises the signal it caught once it has drained the connections; these
    # handlers turn that into a clean exit status instead of death by signal.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    server = AnnouncingServer(config)
    try:
        server.run()
    except SystemExit as stop:
        # uvicorn exits 3 when it cannot bind; 3 means "lock held" to tracker-ci's users.
        if not server.started and stop.code not in (0, 130):
            print(
                f"tracker-ci server: cannot listen on {settings.host}:{settings.port} "
                "(address in use or not available here); choose another --host/--port",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(1) from None
        raise


@click.group(
    name="server",
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--host", envvar="TRACKER_HOST", default=None, help="Address to bind. [127.0.0.1]")
@click.option("--port", envvar="TRACKER_PORT", type=int, default=None, help="Port. [8080]")
@click.option(
    "--database-url",
    envvar="TRACKER_DATABASE_URL",
    default=None,
    help="sqlite:///PATH or postgresql://USER@HOST/DB. [sqlite:///./tracker.db]",
)
@click.option(
    "--direct-database-url",
    envvar="TRACKER_DIRECT_DATABASE_URL",
    default=None,
    help="Behind a pooler (PgBouncer): a direct PostgreSQL URL for the replicas' "
    "LISTEN/NOTIFY wake-ups. [the database URL]",
)
@click.option(
    "--auth/--no-auth",
    envvar="TRACKER_AUTH",
    default=None,
    help="Require a bearer token for every write. [off]",
)
@click.option(
    "--admin-token",
    envvar="TRACKER_ADMIN_TOKEN",
    default=None,
    help="The token that may manage tokens (required with --auth).",
)
@click.option(
    "--public-reads/--no-public-reads",
    envvar="TRACKER_PUBLIC_READS",
    default=None,
    help="With --auth, let reads through without a token. [on]",
)
@click.option(
    "--approvers",
    envvar="TRACKER_APPROVERS",
    type=click.Choice(["any", "catalog-owner"]),
    default=None,
    help="With --auth, who may approve a deploy waiting for approval: any token but the "
    "requester's, or only the service's catalog owner (a token named as the owner, or "
    "OWNER/...) and admins. [any]",
)
@click.option(
    "--max-body-bytes",
    envvar="TRACKER_MAX_BODY_BYTES",
    type=int,
    default=None,
    help="Largest request body accepted (413 above). [1048576]",
)
@click.option(
    "--root-path",
    envvar="TRACKER_ROOT_PATH",
    default=None,
    help="The path prefix a reverse proxy serves this server under (e.g. /tracker). ['']",
)
@click.option(
    "--allow-private-webhooks/--no-allow-private-webhooks",
    envvar="TRACKER_ALLOW_PRIVATE_WEBHOOKS",
    default=None,
    help="Let webhooks send to loopback and private addresses (link-local and cloud "
    "metadata addresses stay refused). [off]",
)
@click.option(
    "--log-level",
    envvar="TRACKER_LOG_LEVEL",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=None,
    help="Log level. [info]",
)
@click.pass_context
def serve_command(ctx: click.Context, **options: Any) -> None:
    """Run the bundled Tracker server (creates or upgrades its database schema first).

    Without a subcommand it serves; `backup PATH` / `restore PATH` copy its SQLite database.
    """
    if ctx.invoked_subcommand is not None:
        return  # backup / restore: they take their own options
    from pydantic import ValidationError

    from tracker_server.settings import ServerSettings

    given = {name: value for name, value in options.items() if value is not None}
    if "log_level" in given:
        given["log_level"] = given["log_level"].lower()
    try:
        settings = ServerSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise click.UsageError(problems) from None
    _check_database_urls(settings)
    busy = _port_taken(settings.host, settings.port)
    if busy:
        click.echo(f"tracker-ci server: {busy}", err=True)
        sys.exit(1)
    try:
        serve(settings)
    except Exception as exc:  # the one catch-all: a clean line instead of a traceback
        click.echo(f"tracker-ci server: cannot start: {exc}", err=True)
        sys.exit(1)


def _check_database_urls(settings: ServerSettings) -> None:
    """A database URL of a kind we do not run on is a usage error (exit 2), said once."""
    from tracker_server.db import normalize_database_url

    for option, url in (
        ("--database-url", settings.database_url),
        ("--direct-database-url", settings.direct_database_url),
    ):
        if not url:
            continue
        try:
            normalize_database_url(url)
        except Exception as exc:  # ValueError, or SQLAlchemy's ArgumentError for a non-URL
            raise click.BadParameter(str(exc), param_hint=f"'{option}'") from None


def _port_taken(host: str, port: int) -> str:
    """Why ``host:port`` cannot be listened on ("" when it can), before uvicorn tries: its
    own failure comes after four lines of its log."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host"
    family, kind, proto, _, address = infos[0]
    probe = socket.socket(family, kind, proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (
                f"cannot listen on {host}:{port}: the address is already in use (another "
                "server runs there?); choose another --port, or stop what listens on it"
            )
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host/--port"
    finally:
        probe.close()
    return ""


serve_command.add_command(backup_command)
serve_command.add_command(restore_command)
