"""What the CLI prints: compact tables and summaries for people, JSON for scripts.

Models are printed through their wire form (``to_wire()``: camelCase, every field), so
``--output json`` is the same JSON the API speaks. This module imports only the standard
library and click; it never imports the models itself.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import click

__all__ = [
    "emit_error",
    "end_live_line",
    "emit_json",
    "error_document",
    "format_time",
    "format_seconds",
    "jsonable",
    "live_line_shown",
    "render_summary",
    "render_table",
    "wants_json",
    "warn",
]


def jsonable(value: Any) -> Any:
    """Turn models, states, lists and dicts into plain JSON values."""
    if hasattr(value, "to_wire"):
        return value.to_wire()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime):
        return format_time(value, full=True)
    if hasattr(value, "value") and hasattr(value, "name"):  # an enum member
        return value.value
    return value


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(jsonable(value), indent=2, ensure_ascii=False))


def error_document(message: str, exit_code: int) -> dict[str, Any]:
    """THE JSON body of a failed command under ``--output json`` (a test guards its shape):
    ``{"error": <the exit code's short name>, "message": ..., "exitCode": N}``."""
    from tracker_ci.exit_codes import EXIT_CODES

    kind = EXIT_CODES.get(exit_code, "error").split(":", 1)[0]
    return {"error": kind, "message": message, "exitCode": exit_code}


def emit_error(message: str, exit_code: int, *, as_json: bool) -> None:
    """A failed command's one line on stderr: ``error: ...``, or the JSON document."""
    end_live_line()
    if as_json:
        text = json.dumps(error_document(message, exit_code), ensure_ascii=False)
        click.echo(text, err=True)
    else:
        click.echo(f"error: {message}", err=True)


def wants_json(args: Sequence[str], environ: dict[str, str] | None = None) -> bool:
    """Whether a command line asks for JSON (``-o json``, ``--output=json``, ``-ojson``,
    or TRACKER_OUTPUT), read before click parsed it: for the errors of parsing itself."""
    words = list(args)
    if "--" in words:
        words = words[: words.index("--")]
    choice = (os.environ if environ is None else environ).get("TRACKER_OUTPUT", "")
    for index, word in enumerate(words):
        if word in ("-o", "--output") and index + 1 < len(words):
            choice = words[index + 1]
        elif word.startswith("--output="):
            choice = word.split("=", 1)[1]
        elif word.startswith("-o") and not word.startswith("--") and len(word) > 2:
            choice = word[2:]
    return choice.strip().lower() == "json"


def format_time(value: datetime | str | None, *, full: bool = False) -> str:
    """``2026-01-31 12:01:03Z`` (or ISO ``...T...Z`` with ``full``); empty for none."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if full:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def format_seconds(seconds: float | None) -> str:
    """``95.2`` -> ``1m35s``; ``None`` -> empty."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(item) for item in value)
    text = str(value.value if hasattr(value, "value") and hasattr(value, "name") else value)
    return text.replace("\n", " ")


def render_table(
    rows: Iterable[Sequence[Any]], headers: Sequence[str], *, max_width: int = 60
) -> str:
    """A compact left-aligned table with upper-case headers; long cells are cut with ``…``."""
    cells = [[_cell(value) for value in row] for row in rows]
    cut = [
        [text if len(text) <= max_width else text[: max_width - 1] + "…" for text in row]
        for row in cells
    ]
    widths = [len(header) for header in headers]
    for row in cut:
        for index, text in enumerate(row):
            widths[index] = max(widths[index], len(text))
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cut:
        lines.append("  ".join(t.ljust(w) for t, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def render_summary(pairs: Sequence[tuple[str, Any]]) -> str:
    """``label: value`` lines with the labels aligned; empty values are left out."""
    shown = [(label, _cell(value)) for label, value in pairs if _cell(value) != ""]
    width = max((len(label) for label, _ in shown), default=0)
    return "\n".join(f"{(label + ':').ljust(width + 1)} {value}" for label, value in shown)


#: How to clear the live line shown on the terminal now (a lock wait's), if any.
_live_line: list[Callable[[], None]] = []


def live_line_shown(clear: Callable[[], None]) -> None:
    """A live line (rewritten in place, no newline) is on the terminal; ``clear`` erases it."""
    _live_line[:] = [clear]


def end_live_line() -> None:
    """Erase the live line, if one is shown, before another message is printed."""
    while _live_line:
        _live_line.pop()()


def warn(message: str) -> None:
    """One ``warning: ...`` line on stderr (and a warning annotation in GitHub Actions)."""
    end_live_line()
    click.echo(f"warning: {message}", err=True)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        from tracker_ci.ci.github_report import StepReport

        StepReport().annotate("warning", message)


def is_interactive() -> bool:
    """True when stderr is a terminal (live lines may then rewrite themselves)."""
    return sys.stderr.isatty()
