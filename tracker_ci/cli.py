"""The ``tracker-ci`` command line: global options, subcommands and exit codes.

This is the only place that turns ``TrackerError`` subclasses into exit codes: each class
names its code (``exit_code``), ``tracker_ci.exit_codes.EXIT_CODES`` says what they mean.
``deploy run`` exits with its command's own code (130/143 on SIGINT/SIGTERM).
Importing this module imports click and the standard library only, so ``--help`` and
``--version`` stay fast; each subcommand's module is imported when that command runs (a
``deploy start`` never imports the event, lock or token commands), and the client, models
and CI libraries load inside commands.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from tracker_ci import __version__
from tracker_ci.commands.common import AppState
from tracker_ci.exit_codes import ExitCode, exit_codes_line

__all__ = [
    "EXIT_AUTH",
    "EXIT_ERROR",
    "EXIT_FROZEN",
    "EXIT_LOCKED",
    "EXIT_LOCK_LOST",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_SUPERSEDED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "cli",
    "exit_code_for",
]

# The names the exit codes had before tracker_ci.exit_codes, kept for importers.
EXIT_OK = ExitCode.OK
EXIT_ERROR = ExitCode.ERROR
EXIT_USAGE = ExitCode.USAGE
EXIT_LOCKED = ExitCode.LOCKED
EXIT_UNREACHABLE = ExitCode.UNREACHABLE
EXIT_AUTH = ExitCode.AUTH
EXIT_NOT_FOUND = ExitCode.NOT_FOUND
EXIT_FROZEN = ExitCode.FROZEN
EXIT_SUPERSEDED = ExitCode.SUPERSEDED
EXIT_LOCK_LOST = ExitCode.LOCK_LOST


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of a TrackerError (1 for anything else)."""
    from tracker_ci.exceptions import exit_code_for as code_of  # not at --help time

    return code_of(exc)


#: The root's options (taking a value or not) that may also follow the command.
GLOBAL_OPTIONS = {
    "--url": True,
    "--token": True,
    "--output": True,
    "-o": True,
    "--timeout": True,
    "--config": True,
    "--fail-policy": True,
    "--debug": False,
}


def _takes_value(command: click.Command) -> dict[str, bool]:
    """Every option name of a command, and whether it takes a value."""
    names: dict[str, bool] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for name in (*param.opts, *param.secondary_opts):
                names[name] = not (param.is_flag or param.count)
    return names


def _leaf(group: click.Group, args: list[str]) -> tuple[Any, int]:
    """The command the words name and the index after its name (None: leave args alone)."""
    index, command = 0, group
    while isinstance(command, click.Group):
        while index < len(args) and args[index].startswith("-"):
            word = args[index].split("=", 1)[0]
            takes = GLOBAL_OPTIONS.get(word, False) and "=" not in args[index]
            index += 2 if takes and command is group else 1
        if index >= len(args) or args[index] in LAZY_COMMANDS:
            return None, index
        name = args[index]
        if isinstance(command, TrackerGroup):
            command = command.load(name)  # type: ignore[assignment]
        else:
            command = command.commands.get(name)  # type: ignore[assignment]
        index += 1
        if command is None:
            return None, index
    return command, index


def hoist_global_options(group: click.Group, args: list[str]) -> list[str]:
    """``args`` with the global options that follow the command moved to the front."""
    leaf, start = _leaf(group, args)
    if leaf is None:
        return args
    own = _takes_value(leaf)
    interspersed = leaf.allow_interspersed_args
    moved: list[str] = []
    kept = args[:start]
    index = start
    while index < len(args):
        word = args[index]
        name = word.split("=", 1)[0]
        if word == "--" or (not word.startswith("-") and not interspersed):
            kept += args[index:]  # the rest is arguments (deploy run's command)
            break
        width = 2 if own.get(name) and "=" not in word else 1
        if name in GLOBAL_OPTIONS and name not in own:
            width = 2 if GLOBAL_OPTIONS[name] and "=" not in word else 1
            moved += args[index : index + width]
        else:
            kept += args[index : index + width]
        index += width
    return moved + kept if moved else args


def report_failure(message: str, code: int) -> None:
    """In GitHub Actions, a failed command is also an error annotation with its fix."""
    import os

    if os.environ.get("GITHUB_ACTIONS") == "true":
        from tracker_ci.ci.github_report import StepReport

        StepReport().failed(message, code)


def _json_output(ctx: click.Context, state: AppState | None) -> bool:
    """Whether errors are JSON: the settings', else (a bad config file) the flag's or env's."""
    try:
        if state is not None:
            return state.json
    except Exception:
        pass
    from tracker_ci.output import wants_json

    flag = ctx.find_root().params.get("output")
    return wants_json(["--output", flag] if flag else [])


def _is_tracker_error(exc: BaseException) -> bool:
    # Only consult the exceptions module if it is loaded: nothing else can raise its errors.
    import sys

    module = sys.modules.get("tracker_ci.exceptions")
    return module is not None and isinstance(exc, module.TrackerError)


# Our subcommands, each imported when it runs (or when its own --help is shown): name ->
# (import path, the short help the root's --help shows without importing it; a test keeps
# it equal to the command's own).
COMMANDS = {
    "catalog": (
        "tracker_ci.commands.catalog:catalog",
        "The service catalog: owners, links, dependencies and versions; import from Backstage.",
    ),
    "config": (
        "tracker_ci.commands.config_cmd:config",
        "Settings: flag > TRACKER_* environment > ./.tracker-ci.toml > user file > default.",
    ),
    "deploy": (
        "tracker_ci.commands.deploy:deploy",
        "Track a deployment: event, lock, PR/MR link, status and duration.",
    ),
    "doctor": (
        "tracker_ci.commands.doctor:doctor",
        "Check the server, token, lock, freezes, PR and changes lookups, the catalog, and "
        "fail policy.",
    ),
    "dora": (
        "tracker_ci.commands.dora:dora",
        "DORA's four keys over a window, computed by the bundled server: deployment "
        "frequency, lead time for changes, change failure rate, failed deployment recovery "
        "time, and the performance level.",
    ),
    "event": (
        "tracker_ci.commands.event:event",
        "Tracker events: deployments, incidents, operations, drifts.",
    ),
    "freeze": (
        "tracker_ci.commands.freeze:freeze",
        "Freeze windows: the bundled server refuses deploys in a hard one (exit 7) and warns "
        "in a soft one; --break-glass REASON on deploy passes a hard one.",
    ),
    "lock": (
        "tracker_ci.commands.lock:lock",
        "Deployment locks: one deployment per service and environment at a time.",
    ),
    "token": (
        "tracker_ci.commands.token:token",
        "API tokens (bundled server with --auth; needs the admin token).",
    ),
    "webhook": (
        "tracker_ci.commands.webhook:webhook",
        "Webhooks: notify a URL, Slack, GitHub, Grafana or InfluxDB of changes (bundled server).",
    ),
}

# Subcommands of another distribution, imported only when they run: `server` pulls in
# FastAPI, SQLAlchemy and uvicorn. name -> (import path, short help shown by --help).
LAZY_COMMANDS = {
    "server": ("tracker_server.main:serve_command", "Run the bundled Tracker server."),
}


def _imported(target: str) -> Any:
    module_name, attribute = target.split(":")
    return getattr(__import__(module_name, fromlist=[attribute]), attribute)


class TrackerGroup(click.Group):
    """The root group: maps TrackerError to exit codes and imports each command on first use.

    ``commands`` holds the commands imported so far; reading the ``commands`` attribute
    from outside (a reference generator, a test) imports all of ours first, so it stays the
    complete mapping click documents. The run path never reads it: ``get_command`` imports
    the one command it is asked for.
    """

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        for name in COMMANDS:
            self.load(name)
        return self._loaded

    @commands.setter
    def commands(self, value: Any) -> None:
        self._loaded: dict[str, click.Command] = dict(value or {})

    def load(self, name: str) -> click.Command | None:
        """One of our commands, imported the first time it is asked for (None: not ours)."""
        command = self._loaded.get(name)
        if command is None and name in COMMANDS:
            command = self._loaded[name] = _imported(COMMANDS[name][0])
        return command

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        # click's own would store through ``commands``, importing every command first.
        name = name or cmd.name
        if name is None:
            raise TypeError("Command has no name.")
        self._loaded[name] = cmd

    def help_line(self, name: str, limit: int) -> str | None:
        """The line --help shows for a command, without importing it (None: hidden)."""
        command = self._loaded.get(name)
        if command is not None:
            return None if command.hidden else command.get_short_help_str(limit)
        text = (COMMANDS.get(name) or LAZY_COMMANDS[name])[1]
        return click.Command(name, help=text).get_short_help_str(limit)  # cut as click cuts

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not _is_tracker_error(exc):
                raise
            from tracker_ci.output import emit_error

            state = ctx.find_object(AppState)
            code = exit_code_for(exc)
            emit_error(str(exc), code, as_json=_json_output(ctx, state))
            if state is not None and state.debug:
                import traceback

                traceback.print_exc()
            report_failure(str(exc), code)
            ctx.exit(code)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Global options typed after the command (`tracker-ci deploy start -o json`) are
        # moved before it, unless that command has an option of the same name.
        return super().parse_args(ctx, hoist_global_options(self, args))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self._loaded, *COMMANDS, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self._loaded:
            try:
                command: click.Command = _imported(LAZY_COMMANDS[cmd_name][0])
            except ImportError as exc:
                raise click.ClickException(
                    f"`tracker-ci {cmd_name}` needs the bundled server: install the "
                    f"[server] extra, e.g. pip install '.[server]' in a clone ({exc})"
                ) from None
            return command
        return self.load(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Like click's, but a command not imported yet shows its static help line.
        rows = []
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        for name in self.list_commands(ctx):
            text = self.help_line(name, limit)
            if text is not None:
                rows.append((name, text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


EPILOG = (
    """\b
Examples:
  export TRACKER_URL=https://tracker.example TRACKER_TOKEN=trk_...
  tracker-ci deploy run -s api -e production --wait 600 -- ./deploy.sh
  tracker-ci deploy start -s api -e production     # prints the event id
  tracker-ci deploy finish -s api -e production --status success   # or --event-id ID
  tracker-ci lock status -s api -e production
  tracker-ci --output json event search --service api --status failure
  tracker-ci config show

\b
"""
    + textwrap.fill(
        f"Exit codes: {exit_codes_line()}; `deploy run` passes on its command's code "
        "(130/143 when interrupted).",
        width=80,
    )
    + "\n"
)


def _flag(ctx: click.Context, name: str, value: Any) -> tuple[Any, str] | None:
    # Only values typed on the command line are passed on as flags: config.load_config
    # reads the TRACKER_* variables itself, so it can name them as the source.
    if value is not None and ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
        return value, "flag"
    return None


@click.group(cls=TrackerGroup, epilog=EPILOG, context_settings={"max_content_width": 100})
@click.option(
    "--url",
    envvar="TRACKER_URL",
    metavar="URL",
    help="Tracker server address. [env: TRACKER_URL; default: http://127.0.0.1:8080]",
)
@click.option(
    "--token", envvar="TRACKER_TOKEN", metavar="TOKEN", help="API token. [env: TRACKER_TOKEN]"
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"], case_sensitive=False),
    envvar="TRACKER_OUTPUT",
    help="Output format. [env: TRACKER_OUTPUT; default: text]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    envvar="TRACKER_TIMEOUT",
    metavar="SECONDS",
    help="HTTP timeout per request. [env: TRACKER_TIMEOUT; default: 10]",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="TRACKER_CONFIG",
    help="Config file used instead of ./.tracker-ci.toml. [env: TRACKER_CONFIG]",
)
@click.option(
    "--fail-policy",
    type=click.Choice(["open", "closed"], case_sensitive=False),
    envvar="TRACKER_FAIL_POLICY",
    help="When the server is unreachable or fails: open = deploy untracked, closed = stop. "
    "[env: TRACKER_FAIL_POLICY; default: closed]",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="TRACKER_DEBUG",
    help="Show tracebacks of errors. [env: TRACKER_DEBUG]",
)
@click.version_option(
    __version__, "--version", "-V", prog_name="tracker-ci", message="%(prog)s %(version)s"
)
@click.pass_context
def cli(
    ctx: click.Context,
    url: str | None,
    token: str | None,
    output: str | None,
    timeout: float | None,
    config_file: Path | None,
    fail_policy: str | None,
    debug: bool,
) -> None:
    """Make every deployment visible and safe: Tracker events and deployment locks from CI.

    `deploy run` opens a deployment event (taking the lock of the service in the
    environment, waiting for it with --wait), runs your command, and closes the event as
    success or failure, releasing the lock even when the command fails or is cancelled.
    """
    flags = {
        key: given
        for key, value in (
            ("url", url),
            ("token", token),
            ("output", output),
            ("timeout", timeout),
            ("fail_policy", fail_policy and fail_policy.lower()),
        )
        if (given := _flag(ctx, key, value)) is not None
    }
    if "url" in flags:
        from tracker_ci.config import check_value

        try:
            flags["url"] = (check_value("url", url), "flag")
        except Exception as exc:
            raise click.BadParameter(str(exc), param_hint="'--url'") from None
    if "output" in flags:
        flags["output"] = (str(output).lower(), "flag")
    ctx.obj = AppState(flags=flags, config_file=config_file, debug=debug)
