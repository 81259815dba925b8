"""Figures (a value, its baseline from the same run, their ratio, a target), the table
printed at the end and ``bench/results.json``."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

PASS, FAIL, NA, INFO = "PASS", "FAIL", "n/a", "-"


@dataclass
class Target:
    """``value <op> bound``, e.g. p95 < 20 ms; ``on`` says which number it judges."""

    op: str  # "<", "<=", ">="
    bound: float
    on: str = "value"  # "value" or "ratio"
    text: str = ""

    def judge(self, value: float | None, ratio: float | None) -> str:
        judged = value if self.on == "value" else ratio
        if judged is None:
            return NA
        checks: dict[str, Callable[[float, float], bool]] = {
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">=": lambda a, b: a >= b,
        }
        return PASS if checks[self.op](judged, self.bound) else FAIL


@dataclass
class Figure:
    """One measured figure. ``value`` is what the target judges; ``low``/``median``/``high``
    are the min / median / max over the repeats (or over the samples of a latency)."""

    group: str
    name: str
    backend: str
    unit: str
    value: float | None
    value_text: str
    baseline: float | None = None
    baseline_text: str = ""
    ratio: float | None = None
    target: Target | None = None
    low: float | None = None
    median: float | None = None
    high: float | None = None
    repeats: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    status: str = INFO

    def __post_init__(self) -> None:
        if self.target is not None:
            self.status = self.target.judge(self.value, self.ratio)
        if self.value is None and self.status == INFO:
            self.status = NA


class Spread(TypedDict):
    low: float
    median: float
    high: float


def spread(values: Sequence[float]) -> Spread:
    """min / median / max of the values."""
    return {
        "low": min(values),
        "median": statistics.median(values),
        "high": max(values),
    }


def not_available(group: str, name: str, backend: str, why: str, target: Target | None) -> Figure:
    figure = Figure(group, name, backend, "", None, "n/a", target=target, note=why)
    figure.status = NA
    return figure


def _fmt(number: float | None, digits: int = 2) -> str:
    return "" if number is None else f"{number:.{digits}f}"


def _short(number: float) -> str:
    return f"{number:,.0f}" if abs(number) >= 100 else f"{number:.2f}"


def table(figures: Sequence[Figure]) -> str:
    """The figures as a fixed-width table, one line each; min..max over the repeats (or
    over the samples of a latency, in ms)."""
    header = ("backend", "figure", "value", "min..max", "baseline", "ratio", "target", "result")
    rows = [header]
    for f in figures:
        target = f.target.text if f.target else ""
        span = "" if f.low is None or f.high is None else f"{_short(f.low)}..{_short(f.high)}"
        rows.append(
            (
                f.backend or "-",
                f.name,
                f.value_text,
                span,
                f.baseline_text,
                _fmt(f.ratio),
                target,
                f.status + (f" ({f.note})" if f.note and f.status == NA else ""),
            )
        )
    widths = [min(max(len(row[i]) for row in rows), 60) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def summary(figures: Sequence[Figure]) -> dict[str, int]:
    counts = {PASS: 0, FAIL: 0, NA: 0}
    for f in figures:
        if f.status in counts:
            counts[f.status] += 1
    return {"pass": counts[PASS], "fail": counts[FAIL], "n/a": counts[NA]}


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _postgres_version() -> str:
    try:
        import psycopg

        from harness.fill import POSTGRES_ADMIN

        with psycopg.connect(POSTGRES_ADMIN, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else ""
    except Exception:  # noqa: BLE001 - no PostgreSQL: the field stays empty
        return ""


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "load_average_at_end": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _postgres_version(),
    }


def provenance() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def figure_json(figure: Figure) -> dict[str, Any]:
    data = asdict(figure)
    data["target"] = None if figure.target is None else asdict(figure.target)
    return data


def write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
