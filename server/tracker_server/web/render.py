"""Jinja2 templates and the helpers they use (durations, links, inline SVG charts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

HERE = Path(__file__).parent


def human_seconds(seconds: float | None) -> str:
    """``"2 h 05 min"``, ``"3 min 20 s"``, ``"45 s"``; an em dash for none."""
    if seconds is None:
        return "—"
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


def moment(value: datetime | None) -> str:
    """A timestamp as ``2026-03-01 10:00:00 UTC``."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def iso(value: datetime | None) -> str:
    """A timestamp for ``<time datetime=...>``."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def percent(value: float | None) -> str:
    """``0.25`` as ``25 %``."""
    return "—" if value is None else f"{value * 100:.1f} %"


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
        size = (value or 0.0) / top * (height - 4)
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
    env.filters["percent"] = percent
    env.globals["bars"] = bars
    return env


def page(request: Request, template: str, **context: Any) -> HTMLResponse:
    """Render a page; ``root`` is the reverse proxy's prefix every link starts with."""
    root = request.scope.get("root_path", "").rstrip("/")
    html = (
        environment()
        .get_template(template)
        .render(request=request, root=root, path=request.url.path, **context)
    )
    return HTMLResponse(html)
