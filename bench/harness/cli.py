"""f) The CLI's figures, from ``bench/cli_bench.py`` run in a subprocess.

With ``--json FILE`` it writes its figures there; a cli_bench.py without that option
prints them, and the printed lines are read instead.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.report import Figure, Target, not_available

CLI_BENCH = Path(__file__).resolve().parent.parent / "cli_bench.py"
VERSION_TARGET = Target("<=", 1.5, text="<= 1.5")
PAIR_TARGET = Target("<=", 1.3, text="<= 1.3")
VERSION = "tracker-ci --version / python -c 'import click'"
PAIR = "deploy start + finish / 2 library-import processes"

_TEXT = {
    "click_ms": r"python -c 'import click'\s+([\d.]+) ms",
    "version_ms": r"tracker-ci --version\s+([\d.]+) ms",
    "version_ratio": r"tracker-ci --version\s+[\d.]+ ms\s+ratio\s+([\d.]+)",
    "libraries_ms": r"python -c 'import httpx, pydantic, click'\s+([\d.]+) ms",
    "pair_ms": r"start \+ finish \(pair\)\s+([\d.]+) ms",
    "pair_ratio": r"ratio per process \(pair / 2 baselines\)\s+([\d.]+)",
}


def parse_text(output: str) -> dict[str, float]:
    """The figures cli_bench.py prints, by name (those it printed)."""
    found = {}
    for name, pattern in _TEXT.items():
        match = re.search(pattern, output)
        if match:
            found[name] = float(match.group(1))
    return found


def run_cli_bench(runs: int, timeout: float = 600) -> tuple[dict[str, Any], str]:
    """cli_bench.py's figures (its JSON, or its printed lines parsed) and how they came."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cli.json"
        argv = [sys.executable, str(CLI_BENCH), "--runs", str(runs)]
        done = subprocess.run(
            [*argv, "--json", str(out)], capture_output=True, text=True, timeout=timeout
        )
        if done.returncode == 0 and out.exists():
            return json.loads(out.read_text()), "json"
        if "--json" not in done.stderr:
            raise RuntimeError(f"cli_bench.py failed ({done.returncode}): {done.stderr[-500:]}")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"cli_bench.py failed ({done.returncode}): {done.stderr[-500:]}")
        return parse_text(done.stdout), "text"


def _number(data: dict[str, Any], *names: str) -> float | None:
    for name in names:
        value = data.get(name)
        if isinstance(value, int | float):
            return float(value)
    return None


def figures(data: dict[str, Any], source: str) -> list[Figure]:
    """The two CLI figures (version, lifecycle pair) from cli_bench.py's numbers."""
    out = []
    for name, ratio_key, base_key, base_label, target in (
        (VERSION, "version_ratio", "click_ms", "import click", VERSION_TARGET),
        (PAIR, "pair_ratio", "libraries_ms", "import httpx, pydantic, click", PAIR_TARGET),
    ):
        ratio = _number(data, ratio_key)
        if ratio is None:
            out.append(not_available("cli", name, "", f"cli_bench.py gave no {ratio_key}", target))
            continue
        base = _number(data, base_key)
        spread = data.get(f"{ratio_key}_spread") or {}
        out.append(
            Figure(
                "cli",
                name,
                "",
                "ratio",
                ratio,
                f"{ratio:.2f}",
                baseline=base,
                baseline_text=f"{base_label} {base:.0f} ms" if base is not None else "",
                ratio=ratio,
                target=target,
                low=_number(spread, "low", "min"),
                median=_number(spread, "median") or ratio,
                high=_number(spread, "high", "max"),
                repeats=int(_number(data, "runs") or 0),
                detail={"source": source, **{k: v for k, v in data.items() if k != "figures"}},
            )
        )
    return out
