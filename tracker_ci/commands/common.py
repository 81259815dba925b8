"""What every command shares: the app state (settings, client), enum options, live lines.

Imports here stay light (click and the standard library): the models (pydantic) and the
client (httpx) are imported when a command runs, never when ``--help`` is shown.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tracker_ci.output import (
    end_live_line,
    format_seconds,
    format_time,
    is_interactive,
    live_line_shown,
)

if TYPE_CHECKING:
    from tracker_ci.client import TrackerClient
    from tracker_ci.config import Config

__all__ = [
    "AppState",
    "LiveWaitLine",
    "WireChoice",
    "environment_option",
    "pass_state",
    "require",
    "service_option",
]


@dataclass
class AppState:
    """The root group's options; settings are resolved on first use (not for ``--help``)."""

    flags: dict[str, tuple[Any, str]] = field(default_factory=dict)
    config_file: Path | None = None
    debug: bool = False
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from tracker_ci.config import load_config

            self._config = load_config(self.flags, config_file=self.config_file)
        return self._config

    @property
    def json(self) -> bool:
        return self.config["output"] == "json"

    @contextmanager
    def client(self, *, on_warning: Callable[[str], None] | None = None) -> Iterator[TrackerClient]:
        """A TrackerClient for the configured server, closed afterwards; ``on_warning`` is
        told each warning the server sends back (a soft freeze, broken glass)."""
        from tracker_ci.client import TrackerClient

        config = self.config
        transport = None
        if config["url"].startswith("http://"):
            import httpx

            # Plain HTTP never does TLS: skip the default transport's SSL context, whose
            # CA bundle loading is a large part of a short command's run time.
            transport = httpx.HTTPTransport(verify=False)
        with TrackerClient(
            base_url=config["url"],
            token=config.get("token"),
            timeout=config["timeout"],
            retries=config["retries"],
            transport=transport,
            on_warning=on_warning,
        ) as client:
            yield client


pass_state = click.make_pass_decorator(AppState, ensure=True)


def require(value: Any, state: AppState, key: str, option: str) -> Any:
    """The option's value, else the configured one, else a usage error naming every source."""
    if value not in (None, ""):
        return value
    configured = state.config.get(key)
    if configured not in (None, ""):
        return configured
    raise click.UsageError(
        f"missing {option}: give it, or set TRACKER_{key.upper()} or `{key}` in .tracker-ci.toml"
    )


class Seconds(click.ParamType):
    """A number of seconds (``300``, ``2.5``; ``whole``: an integer), 0 or more. A bad
    value says what is wanted, not click's "not a valid float range"."""

    name = "seconds"

    def __init__(self, *, whole: bool = False, zero: str = "0: none") -> None:
        self.whole = whole
        self.zero = zero  # what 0 means for this option, for the error message

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number: float = value
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                number = float("nan")
        kind = "a whole number of seconds" if self.whole else "a number of seconds"
        if number != number or number < 0 or (self.whole and number != int(number)):
            self.fail(f"{value!r} is not {kind}: give one like 300 ({self.zero})", param, ctx)
        return int(number) if self.whole else float(number)


def describe_eta(seconds: float | None, state: str = "waiting", *, overran: bool = False) -> str:
    """An expected wait for people: ``~1m05s``, ``now`` (granted), or ``unknown`` when
    there is no history or the holder already took longer than the usual duration (the
    server's estimate is then 0, which would read "any moment now"). ``overran``: the
    holder is past its usual duration, so a later place waits at least ``seconds``."""
    if state == "granted":
        return "now"
    if seconds is None or seconds <= 0:
        return "unknown"
    return f"{'over ' if overran else '~'}{format_seconds(seconds)}"


#: What upstream's action sent as the environment (none): accepted when named in full.
UNSPECIFIED_ENVIRONMENT = "ENVIRONMENT_UNSPECIFIED"


class WireChoice(click.ParamType):
    """An option whose value is a member of a wire enum (``Environment``, ``Status``...).

    Case-insensitive, numbers accepted as on the wire; a bad value lists the choices. The
    enum is imported from ``tracker_ci.models`` only when a value is converted or help is
    shown for the command, so the models stay the single source of truth. ``aliases`` and
    ``only`` may name a table of the models the same way (``aliases="STATUS_ALIASES",
    only="FINISH_STATUSES"``), or be given as values.
    """

    name = "choice"

    def __init__(
        self,
        enum_name: str,
        aliases: dict[str, str] | str | None = None,
        only: tuple[str, ...] | str | None = None,
    ) -> None:
        self.enum_name = enum_name
        self._aliases = aliases
        self._only = only  # the members this option accepts, when not all of them

    @staticmethod
    def _from_models(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        from tracker_ci import models

        return getattr(models, value)

    @property
    def aliases(self) -> dict[str, str]:
        """Other words for members (``failed`` -> ``failure``), lower-case."""
        return dict(self._from_models(self._aliases) or {})

    @property
    def only(self) -> tuple[str, ...] | None:
        """The member names this option accepts, or None for all of them."""
        only = self._from_models(self._only)
        return None if only is None else tuple(only)

    def enum(self) -> Any:
        return self._from_models(self.enum_name)

    def choices(self) -> list[str]:
        """The names this option accepts, in the enum's order."""
        names = self.enum().choices()
        only = self.only
        return [name for name in names if only is None or name in only]

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(self.choices()) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        enum = self.enum()
        if isinstance(value, enum):
            return value
        aliases = self.aliases
        text = str(value).strip()
        text = aliases.get(text.lower(), text)
        accepted = ", ".join(self.choices())
        if aliases:
            accepted += f" (or {', '.join(aliases)})"
        if enum.other_names():
            accepted += f" (or, {enum.other_names()})"
        try:
            member = enum.parse(text)
        except ValueError:
            self.fail(f"{value!r} is not one of: {accepted}", param, ctx)
        if getattr(member, "custom", False):
            return member  # an environment name of our server's own
        if self.enum_name == "Environment" and text == member.value == UNSPECIFIED_ENVIRONMENT:
            return member  # upstream's "no environment", named in full (its action's default)
        if member.value.endswith("_UNSPECIFIED") or member.value not in self.choices():
            self.fail(f"{value!r} is not one of: {accepted}", param, ctx)
        return member


def service_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--service`` (TRACKER_SERVICE, or ``service`` in a config file)."""
    return click.option(
        "--service",
        "-s",
        envvar="TRACKER_SERVICE",
        help="Service name, e.g. api. [env: TRACKER_SERVICE; config: service]",
    )(func)


def environment_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--environment`` validated against the Environment enum."""
    return click.option(
        "--environment",
        "-e",
        envvar="TRACKER_ENVIRONMENT",
        type=WireChoice("Environment"),
        help="Target environment: one of upstream's eight, or on the bundled server any "
        "name (staging, eu-west-1). [env: TRACKER_ENVIRONMENT; config: environment; "
        "default: production]",
    )(func)


class LiveWaitLine:
    """The line that says who holds the lock we wait for, refreshed on every poll.

    On a terminal the line rewrites itself; in a CI log it is printed at most every
    ``every`` seconds so the log stays readable.
    """

    def __init__(self, what: str, wait: float, *, every: float = 10.0) -> None:
        self.what = what
        self.deadline = time.monotonic() + wait
        self.every = every
        self.interactive = is_interactive()
        self._last_printed = -1e9
        self._last_place = ""
        self._shown = False

    def text(self, holder: Any) -> str:
        """``waiting for lock on api/production: held by alice since 12:01:03Z (...)``."""
        left = max(0, int(round(self.deadline - time.monotonic())))
        return f"{self.place(holder)}, {left}s left"

    def place(self, holder: Any) -> str:
        """The line without its countdown: who holds it and, when queued, where we stand;
        or, while the server is away, that we wait for it to come back."""
        from tracker_ci.exceptions import LockHeld, TrackerError

        if isinstance(holder, TrackerError) and not isinstance(holder, LockHeld):
            return (
                f"waiting for lock on {self.what}: the server is unreachable ({holder}); "
                "keeping our place and trying again, the deploy does not run until the "
                "lock is ours"
            )
        who = getattr(holder, "who", None) or getattr(holder, "holder", None) or "someone"
        if not isinstance(who, str):
            who = getattr(who, "who", "") or "someone"
        since = getattr(holder, "created_at", None) or getattr(holder, "since", None)
        event_id = getattr(holder, "event_id", "")
        text = f"waiting for lock on {self.what}: held by {who}"
        if since is not None:
            text += f" since {format_time(since, full=True)[11:]}"
        if event_id:
            text += f" (event {event_id})"
        position = getattr(holder, "position", 0)
        if position:
            text += f"; position {position} of {getattr(holder, 'waiting', position)}"
            eta = getattr(holder, "expected_wait_seconds", None)
            text += f", ETA {describe_eta(eta, getattr(holder, 'state', 'waiting'))}"
        frozen_by = getattr(holder, "frozen_by", "")
        if frozen_by:
            text += f"; your turn came but waits: {frozen_by}"
        return text

    def __call__(self, holder: Any, waited: float = 0.0) -> None:
        now = time.monotonic()
        if self.interactive:
            sys.stderr.write("\r\033[K" + self.text(holder))
            sys.stderr.flush()
            self._shown = True
            live_line_shown(self.clear)
            return
        # In a CI log: a plain line when the place changes, else at most every `every` s.
        place = self.place(holder)
        if place != self._last_place or now - self._last_printed >= self.every:
            click.echo(self.text(holder), err=True)
            self._last_printed = now
            self._last_place = place

    def clear(self) -> None:
        """Erase the rewritten line (on a terminal), so the next message starts clean."""
        if self._shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._shown = False

    def done(self) -> None:
        """The wait is over: erase the rewritten line, so what follows starts clean."""
        end_live_line()
        self.clear()
