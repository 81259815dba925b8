"""Jinja2 templates and the helpers they use (durations, safe links, inline SVG charts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from tracker_server.web import csrf

HERE = Path(__file__).parent
#: The only schemes a stored URL may have to become a link on a page.
LINK_SCHEMES = ("http://", "https://")


def human_seconds(seconds: float | None) -> str:
    """``"2 h 05 min"``, ``"3 min 20 s"``, ``"45 s"``; an em dash for none; a negative
    duration (a change) with its sign first: ``"-1 d 23 h"``."""
    if seconds is None:
        return "—"
    if seconds < 0:
        return "-" + human_seconds(-seconds)
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def utc(value: datetime) -> datetime:
    """The same moment in UTC (a naive one is taken as UTC already).

    A time is converted BEFORE it is labelled: a recurring freeze's end is computed in
    its own zone (Europe/Paris) and printing it with a UTC label was an hour wrong.
    """
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def moment(value: datetime | None) -> str:
    """A timestamp as ``2026-03-01 10:00:00 UTC`` (converted to UTC first)."""
    return utc(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def iso(value: datetime | None) -> str:
    """A timestamp for ``<time datetime=...>`` (converted to UTC first)."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def in_zone(value: datetime | None, zone: str) -> str:
    """A timestamp in an IANA zone, named: ``2026-03-01 08:00 Europe/Paris``."""
    if value is None or not zone or zone == "UTC":
        return ""
    from zoneinfo import ZoneInfo

    try:
        local = utc(value).astimezone(ZoneInfo(zone))
    except (KeyError, ValueError):
        return ""
    return local.strftime(f"%Y-%m-%d %H:%M {zone}")


def moment_from_now(value: datetime | None, now: datetime) -> str:
    """``2026-03-01 10:00:00 UTC (in 40 min)``: absolute, then relative."""
    ago = relative(value, now)
    return f"{moment(value)} ({ago})" if ago else moment(value)


def _span(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min" if minutes and hours < 10 else f"{hours} h"
    return f"{hours // 24} d"


def relative(value: datetime | None, now: datetime | None) -> str:
    """``in 40 min``, ``3 h ago``, ``now`` (under a minute): a moment against ``now``."""
    if value is None or now is None:
        return ""
    seconds = (utc(value) - utc(now)).total_seconds()
    if abs(seconds) < 60:
        return "now"
    return f"in {_span(seconds)}" if seconds > 0 else f"{_span(-seconds)} ago"


def safe_url(value: object) -> str:
    """The URL when it may be a link (an absolute http or https URL), else "".

    Stored URLs come from clients and from imported history (``javascript:alert(3)``):
    a template shows a value this refuses as text, never as an ``href``. Control
    characters and spaces are refused too (browsers drop some of them from schemes).
    """
    if not isinstance(value, str) or not value.lower().startswith(LINK_SCHEMES):
        return ""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return ""
    return value if value.split("://", 1)[1][:1] not in ("", "/") else ""


def percent(value: float | None) -> str:
    """``0.25`` as ``25 %``."""
    return "—" if value is None else f"{value * 100:.1f} %"


@dataclass(frozen=True)
class ShownKey:
    """One DORA key as the insights page shows it."""

    title: str
    name: str
    value: str
    rating: str
    previous: str
    change: str
    #: "better", "worse" or "" (same, or nothing to compare).
    trend: str


def _per_day(value: float | None) -> str:
    return "—" if value is None else f"{value:g} per day"


def _points(value: float) -> str:
    return f"{value * 100:.1f} pt"


def _signed(value: float, show: Any) -> str:
    return ("+" if value > 0 else "") + show(value)


def _trend(change: float | None, *, higher_is_better: bool) -> str:
    if not change:
        return ""
    return "better" if (change > 0) == higher_is_better else "worse"


def dora_keys(report: Any) -> list[ShownKey]:
    """The four keys of a report: value, rating, previous period and change, as text."""
    keys = report.keys
    rows = [
        ("Deployment frequency", "deploymentFrequency", keys.deployment_frequency, _per_day, None),
        ("Lead time for changes", "leadTime", keys.lead_time, human_seconds, None),
        (
            "Change failure rate",
            "changeFailureRate",
            keys.change_failure_rate,
            percent,
            _points,
        ),
        (
            "Failed deployment recovery time",
            "recoveryTime",
            keys.recovery_time,
            human_seconds,
            None,
        ),
    ]
    return [
        ShownKey(
            title=title,
            name=name,
            value=show(key.value),
            rating=key.rating.value if key.rating else "",
            previous=show(key.previous),
            change="—" if key.change is None else _signed(key.change, change_show or show),
            trend=_trend(key.change, higher_is_better=name == "deploymentFrequency"),
        )
        for title, name, key, show, change_show in rows
    ]


@dataclass(frozen=True)
class Bar:
    """One bar of a chart: its label, value, geometry and text."""

    label: str
    value: float
    x: float
    y: float
    width: float
    height: float
    text: str


def bars(
    points: list[tuple[str, float | None]], *, width: float = 600, height: float = 120
) -> list[Bar]:
    """Bars for ``(label, value)`` points scaled into ``width`` x ``height`` (None = 0)."""
    if not points:
        return []
    top = max((v or 0.0) for _, v in points) or 1.0
    step = width / len(points)
    out = []
    for index, (label, value) in enumerate(points):
        size = (value or 0.0) / top * (height - 16)  # room above the tallest for its value
        out.append(
            Bar(
                label=label,
                value=value or 0.0,
                x=index * step + 1,
                y=height - size,
                width=max(step - 2, 1),
                height=size,
                text="—" if value is None else f"{value:g}",
            )
        )
    return out


@cache
def time_zones() -> tuple[str, ...]:
    """Every IANA time zone this system knows, sorted (the freeze form suggests them)."""
    from zoneinfo import available_timezones

    return tuple(sorted(available_timezones()))


@cache
def environment() -> Any:
    """The template environment (built once; Jinja2 is imported only when pages are)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["human"] = human_seconds
    env.filters["moment"] = moment
    env.filters["iso"] = iso
    env.filters["relative"] = relative
    env.filters["in_zone"] = in_zone
    env.filters["percent"] = percent
    env.filters["safe_url"] = safe_url
    env.globals["bars"] = bars
    env.globals["dora_keys"] = dora_keys
    env.globals["time_zones"] = time_zones
    return env


def page(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render a page; ``root`` is the reverse proxy's prefix every link starts with,
    ``csrf_token`` the value every form repeats (its cookie is set when the browser has
    none), ``auth`` whether forms need a token."""
    root = request.scope.get("root_path", "").rstrip("/")
    # Relative times ("in 40 min") are counted from the server's clock (tests move it).
    context.setdefault("now", request.app.state.clock.now())
    known = csrf.session_token(request)
    token = known or csrf.new_token()
    html = (
        environment()
        .get_template(template)
        .render(
            request=request,
            root=root,
            path=request.url.path,
            csrf_token=token,
            auth=request.app.state.settings.auth,
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status_code)
    if known is None:
        csrf.set_cookie(response, request, token)
    return response
