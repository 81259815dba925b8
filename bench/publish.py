"""Publish the measured figures into the docs, so no figure there is typed by hand.

``python bench/publish.py`` rewrites the generated blocks of README.md and
docs/performance.md from ``bench/results.json`` (written by ``make bench``) and
``bench/quickstart.json`` (written by ``bench/quickstart.py`` from fresh clones);
``--check`` exits 1 when a block differs from what the files say (a test runs it).

A block is the text between ``<!-- generated: NAME -->`` and ``<!-- /generated: NAME -->``.
Every figure is printed with the min..max it was measured over, and each block says the
machine, the load and the commit it was measured on.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
QUICKSTART = ROOT / "bench" / "quickstart.json"
README = ROOT / "README.md"
PERFORMANCE = ROOT / "docs" / "performance.md"


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _span(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    if _number(low) == _number(high):
        return _number(low)
    return f"{_number(low)}..{_number(high)}"


def _load(machine: dict[str, Any]) -> str:
    start = machine.get("load_average_at_start") or [None]
    end = machine.get("load_average_at_end") or [None]
    parts = []
    if start[0] is not None:
        parts.append(f"{start[0]:.1f} at the start")
    if end[0] is not None:
        parts.append(f"{end[0]:.1f} at the end")
    return ", ".join(parts) or "not recorded"


def _where(results: dict[str, Any]) -> str:
    machine = results["machine"]
    commit = (results.get("git_commit") or "")[:7]
    dirty = " (with uncommitted changes)" if results.get("git_dirty") else ""
    postgresql = (machine.get("postgresql") or "?").split(" ")[0]
    return (
        f"Measured {results['date'][:10]} at commit `{commit}`{dirty} on {machine['cpus']} cores "
        f"({machine.get('cpu_model', '?')}, Python {machine.get('python', '?')}, SQLite "
        f"{machine.get('sqlite', '?')}, PostgreSQL {postgresql}), "
        f"load average {_load(machine)}, {results['events']:,} events"
        f"{' (quick run)' if results.get('quick') else ''}; the client, the server and the "
        f"database share the cores.{_pace(results)}"
    )


def _pace(results: dict[str, Any]) -> str:
    """The same-run baselines that say how fast the machine was (runs on different
    machines compare by them: absolute times scale with them, ratios much less)."""
    figures = results.get("figures") or []
    parts = [
        f"`GET /health` p50 {figure['value']:.1f} ms ({figure['backend']})"
        for figure in figures
        if figure.get("group") == "latency" and figure.get("value") is not None
    ]
    parts += sorted(
        {
            figure["baseline_text"]
            for figure in figures
            if figure.get("group") == "cli"
            and "import httpx" in (figure.get("baseline_text") or "")
        }
    )
    return f" The machine's pace in this run: {'; '.join(parts)}." if parts else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def figures_block(results: dict[str, Any]) -> str:
    """Every figure of the run: value, min..max, baseline and ratio, target, result."""
    lines = [
        _where(results),
        "",
        "| group | figure | backend | value | min..max | baseline | ratio | target | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in results["figures"]:
        target = (f.get("target") or {}).get("text", "")
        ratio = "" if f.get("ratio") is None else f"{f['ratio']:.2f}"
        status = f["status"] if f["status"] != "-" else ""
        note = f" ({f['note']})" if f.get("note") and f["status"] == "n/a" else ""
        lines.append(
            "| "
            + " | ".join(
                _cell(cell)
                for cell in (
                    f["group"],
                    f["name"],
                    f.get("backend") or "-",
                    f["value_text"],
                    _span(f.get("low"), f.get("high")),
                    f.get("baseline_text", ""),
                    ratio,
                    target,
                    status + note,
                )
            )
            + " |"
        )
    summary = results["summary"]
    lines += [
        "",
        f"Targets met: {summary['pass']} of {summary['pass'] + summary['fail']} "
        f"({summary['n/a']} not measurable in that run).",
    ]
    return "\n".join(lines)


def _claims(results: dict[str, Any]) -> Iterable[tuple[str, str, list[dict[str, Any]]]]:
    """The figures with a target, grouped by (group, target) per backend."""
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for f in results["figures"]:
        target = (f.get("target") or {}).get("text")
        if not target:
            continue
        grouped.setdefault((f["group"], target, f.get("backend") or ""), []).append(f)
    for (group, target, backend), members in grouped.items():
        yield f"{group} ({backend})" if backend else group, target, members


def _repeats(figure: dict[str, Any], judged: float) -> str:
    """`` (min..max)`` of a figure's repeats when they measure the judged quantity."""
    low, high = figure.get("low"), figure.get("high")
    if low is None or high is None or not (low * 0.999 <= judged <= high * 1.001):
        return ""
    repeats = figure.get("repeats") or 0
    over = f" over {repeats}" if repeats > 1 else ""
    return f" ({_span(low, high)}{over})"


def headline_block(results: dict[str, Any]) -> str:
    """One row per claim: how many figures meet it and the range of what they measured."""
    lines = [
        "| what (figures) | target | measured (min..max) | met |",
        "|---|---|---|---|",
    ]
    for what, target, members in _claims(results):
        on_ratio = members[0]["target"].get("on") == "ratio"
        values = [m["ratio"] if on_ratio else m["value"] for m in members]
        values = [v for v in values if v is not None]
        unit = members[0].get("unit") or ""
        unit = "" if on_ratio or unit == "ratio" else unit
        if not values:
            measured = "n/a"
        elif len(members) == 1:
            measured = f"{_number(values[0])} {unit}".strip() + _repeats(members[0], values[0])
        else:
            measured = f"{_span(min(values), max(values))} {unit}".strip()
        met = sum(1 for m in members if m["status"] == "PASS")
        names = members[0]["name"] if len(members) == 1 else f"{len(members)} kinds"
        lines.append(
            f"| {_cell(what)}: {_cell(names)} | {_cell(target)} | {measured} | "
            f"{met} of {len(members)} |"
        )
    lines += ["", _where(results), "All figures: [docs/performance.md](docs/performance.md)."]
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return f"{value / 60:.1f} min" if value >= 120 else f"{value:.0f} s"


def _range(values: list[float]) -> str:
    if not values:
        return "not measured yet"
    low, high = min(values), max(values)
    return _seconds(low) if round(low) == round(high) else f"{_seconds(low)}..{_seconds(high)}"


def quickstart_block(quickstart: dict[str, Any]) -> str:
    """The quick start's times, measured from fresh clones by bench/quickstart.py."""
    runs = quickstart.get("runs", [])

    def times(key: str) -> list[float]:
        return [r[key] for r in runs if r.get(key) is not None]

    loads = [r["load_average_at_start"] for r in runs if r.get("load_average_at_start")]
    load = _span(min(loads), max(loads)) if loads else "not recorded"
    tests = [r["tests_passed"] for r in runs if r.get("tests_passed")]
    counted = f", {max(tests):,} tests" if tests else ""
    return (
        f"How long they take here ({_cores(runs)} cores, measured by `bench/quickstart.py` "
        f"from fresh clones; load average {load} at the start): `make demo` "
        f"{_range(times('demo_cold_seconds'))} the first time (it installs the package and the "
        f"server into `.venv`, one line per package), {_range(times('demo_warm_seconds'))} "
        f"after; `make test` {_range(times('test_seconds'))} from a fresh clone (every extra, "
        f"the dev tools, gitlab-ci-local, Debian's Chromium and PgBouncer when missing, then "
        f"the linters and the suite{counted}). On a loaded machine expect up to 3x."
    )


def _cores(runs: list[dict[str, Any]]) -> str:
    cores = sorted({r.get("cpus") for r in runs if r.get("cpus")})
    return "/".join(str(c) for c in cores) or "?"


BLOCKS: dict[Path, dict[str, Callable[[], str]]] = {
    README: {
        "quickstart-times": lambda: quickstart_block(_read(QUICKSTART, {"runs": []})),
        "bench-headline": lambda: headline_block(_read(RESULTS)),
    },
    PERFORMANCE: {"bench-figures": lambda: figures_block(_read(RESULTS))},
}


def _read(path: Path, default: dict[str, Any] | None = None) -> dict[str, Any]:
    if not path.exists() and default is not None:
        return default
    return json.loads(path.read_text())


def render(text: str, blocks: dict[str, Callable[[], str]]) -> str:
    for name, build in blocks.items():
        begin, end = f"<!-- generated: {name} -->\n", f"<!-- /generated: {name} -->"
        pattern = re.compile(f"({re.escape(begin)})(.*?)({re.escape(end)})", re.S)
        if not pattern.search(text):
            raise SystemExit(f"publish: no '<!-- generated: {name} -->' block to fill")
        body = build()
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(3), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a block is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, blocks in BLOCKS.items():
        text = path.read_text()
        wanted = render(text, blocks)
        if wanted != text:
            if args.check:
                stale.append(path.relative_to(ROOT))
            else:
                path.write_text(wanted)
    if stale:
        names = ", ".join(str(p) for p in stale)
        print(f"publish: {names} differ from the measured figures; run python bench/publish.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
