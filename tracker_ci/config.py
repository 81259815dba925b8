"""Settings of the ``tracker-ci`` command: flag > TRACKER_* environment > files > defaults.

Files are TOML with the option names as keys (``url``, ``token``, ``service``, ...):

* the project file ``./.tracker-ci.toml`` (or the file given with ``--config`` /
  ``TRACKER_CONFIG``, which takes its place and must exist);
* the user file ``$XDG_CONFIG_HOME/tracker-ci/config.toml`` (``~/.config`` by default).

The project file wins over the user file. Every value remembers where it came from so
that ``tracker-ci config show`` can say it. This module imports only the standard library
(it runs for ``tracker-ci --help``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker_ci.exceptions import ConfigError

__all__ = [
    "DEFAULT_URL",
    "PROJECT_FILE_NAME",
    "SETTINGS",
    "Config",
    "Setting",
    "load_config",
    "mask_secret",
    "project_config_path",
    "user_config_path",
]

DEFAULT_URL = "http://127.0.0.1:8080"
PROJECT_FILE_NAME = ".tracker-ci.toml"


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


# The API's own prefix: the client adds it, so a URL copied from the API docs ends in it.
API_PREFIX = "/api/v1alpha1"


def _url(value: Any) -> str:
    text = _text(value).strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", text):
        raise ValueError(f"{value!r} is not an http(s) URL (e.g. http://127.0.0.1:8080)")
    # `http://host/api/v1alpha1` would be requested as /api/v1alpha1/api/v1alpha1/...: a 404
    # the user cannot read as "drop the suffix". The server's address is what is before it.
    if text.endswith(API_PREFIX):
        text = text[: -len(API_PREFIX)].rstrip("/")
    return text


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _text(value).strip().lower()
        if text not in choices:
            raise ValueError(f"{value!r} is not one of: {', '.join(choices)}")
        return text

    return check


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number of seconds, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds, got {value!r}") from None
    if number < 0:
        raise ValueError(f"expected a number of seconds >= 0, got {value!r}")
    return number


def _positive_seconds(value: Any) -> float:
    number = _seconds(value)
    if number == 0:
        raise ValueError("expected a number of seconds > 0, got 0")
    return number


def _whole_seconds(value: Any) -> int:
    number = _seconds(value)
    if number != int(number):
        raise ValueError(f"expected a whole number of seconds, got {value!r}")
    return int(number)


def _retries(value: Any) -> int:
    # A count, not a duration: the message must not speak of seconds.
    expected = f"expected a whole number of retries from 0 to 10, got {value!r}"
    try:
        number = _whole_seconds(value)
    except ValueError:
        raise ValueError(expected) from None
    if number > 10:
        raise ValueError(expected)
    return number


def _environment(value: Any) -> str:
    # The enum lives with the wire models (pydantic); import it only when a file sets it.
    from tracker_ci.models import Environment

    return Environment.parse(_text(value)).value


@dataclass(frozen=True)
class Setting:
    """One known setting: its key, how to check a value, and its default."""

    key: str
    check: Callable[[Any], Any]
    default: Any
    help: str
    secret: bool = False

    @property
    def env_var(self) -> str:
        return "TRACKER_" + self.key.upper()


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting("url", _url, DEFAULT_URL, "address of the Tracker server"),
        Setting("token", _text, None, "API token (Authorization: Bearer)", secret=True),
        Setting("output", _one_of("text", "json"), "text", "output format: text or json"),
        Setting("timeout", _positive_seconds, 10.0, "HTTP timeout per request, in seconds"),
        Setting("retries", _retries, 3, "extra attempts after a connection error or a 5xx"),
        Setting("service", _text, None, "default --service"),
        # The same defaults on every surface (the action's inputs, the GitLab component).
        Setting("environment", _environment, "production", "default --environment"),
        Setting("fail_policy", _one_of("open", "closed"), "closed", "open or closed"),
        Setting("wait", _seconds, 300.0, "default --wait for a held lock, in seconds"),
        # Never a lock that outlives a dead job by default: the action's default too.
        Setting("lock_ttl", _whole_seconds, 3600, "default --lock-ttl, in seconds (0: none)"),
        # Closing an event is retried through an outage until the lease ends (60 s when no
        # lease bounds it: a `deploy finish` in another process); this caps it.
        Setting(
            "close_retry",
            _seconds,
            None,
            "at most this long closing retries through an outage, in s [default: the lease]",
        ),
    )
}


@dataclass(frozen=True)
class Value:
    """An effective value and where it came from (``flag``, ``env TRACKER_URL``, a file)."""

    value: Any
    source: str


class Config:
    """The effective settings; ``config[key]`` is the value, ``config.source(key)`` its origin."""

    def __init__(self, values: Mapping[str, Value], files: list[Path]) -> None:
        self._values = dict(values)
        self.files = files

    def __getitem__(self, key: str) -> Any:
        return self._values[key].value

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is unset."""
        value = self._values[key].value if key in self._values else None
        return default if value is None else value

    def source(self, key: str) -> str:
        """Where the value of ``key`` came from."""
        return self._values[key].source

    def items(self) -> list[tuple[str, Value]]:
        """Every setting in a stable order, with its value and source."""
        return [(key, self._values[key]) for key in SETTINGS]

    def shown(self) -> list[dict[str, Any]]:
        """Rows for ``config show``: key, value (secrets masked), source, env var."""
        rows = []
        for key, value in self.items():
            shown = value.value
            if SETTINGS[key].secret and shown:
                shown = mask_secret(shown)
            rows.append(
                {"key": key, "value": shown, "source": value.source, "env": SETTINGS[key].env_var}
            )
        return rows


def mask_secret(secret: str) -> str:
    """Show enough of a secret to recognise it (its first 6 characters), never the rest."""
    if len(secret) <= 12:
        return "****"
    return secret[:6] + "****"


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/tracker-ci/config.toml``, ``~/.config/...`` when unset."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tracker-ci" / "config.toml"


def project_config_path(cwd: Path | None = None) -> Path:
    """``./.tracker-ci.toml`` in the working directory."""
    return (cwd or Path.cwd()) / PROJECT_FILE_NAME


def _line_of_key(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^[ \t]*[\"']?{re.escape(key)}[\"']?\s*=", re.MULTILINE)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _where(path: Path, text: str, key: str) -> str:
    line = _line_of_key(text, key)
    return f"{path}:{line}" if line else str(path)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read and check one TOML file; raise ConfigError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    import tomllib  # only when a config file exists: most CI jobs have none

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message ends with "(at line L, column C)".
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    checked: dict[str, Any] = {}
    for key, raw in data.items():
        setting = SETTINGS.get(key.replace("-", "_"))
        if setting is None:
            known = ", ".join(SETTINGS)
            raise ConfigError(
                f"{_where(path, text, key)}: unknown key {key!r}; known keys: {known}"
            )
        try:
            checked[setting.key] = setting.check(raw)
        except ValueError as exc:
            raise ConfigError(f"{_where(path, text, key)}: bad value for {key!r}: {exc}") from None
    return checked


def load_config(
    given: Mapping[str, tuple[Any, str]] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Resolve every setting: ``given`` (flag or env seen by click) > env > files > default.

    ``given`` maps a key to ``(value, source)`` for values click already resolved.
    ``config_file`` replaces the project file and must exist.
    """
    environ = os.environ if environ is None else environ
    given = given or {}
    layers: list[tuple[Path, dict[str, Any]]] = []
    files: list[Path] = []
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file {config_file} does not exist")
        project = config_file
    else:
        project = project_config_path(cwd)
    for path in (project, user_config_path(environ)):
        if path.is_file():
            layers.append((path, read_config_file(path)))
            files.append(path)

    values = {
        key: _resolve(key, setting, given, environ, layers) for key, setting in SETTINGS.items()
    }
    return Config(values, files)


def _resolve(
    key: str,
    setting: Setting,
    given: Mapping[str, tuple[Any, str]],
    environ: Mapping[str, str],
    layers: list[tuple[Path, dict[str, Any]]],
) -> Value:
    """One setting's value and where it came from: flag > env > files > default."""
    if key in given and given[key][0] is not None:
        return Value(given[key][0], given[key][1])
    env_value = environ.get(setting.env_var)
    if env_value not in (None, ""):
        try:
            return Value(setting.check(env_value), f"env {setting.env_var}")
        except ValueError as exc:
            raise ConfigError(f"bad value in {setting.env_var}: {exc}") from None
    for path, data in layers:
        if key in data:
            return Value(data[key], f"file {path}")
    return Value(setting.default, "default")


def check_value(key: str, value: Any) -> Any:
    """Check one value given on the command line; raise ConfigError when it is bad."""
    try:
        return SETTINGS[key].check(value)
    except ValueError as exc:
        raise ConfigError(f"bad value for {key}: {exc}") from None
