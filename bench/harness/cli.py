"""f) The CLI's figures, from ``bench/cli_bench.py`` run in a subprocess.

``cli_bench.py --json FILE`` writes ``{"cli": {"version_ratio": {"min", "median", "max"},
"pair_ratio": {...}, "release_ratio": {...}, "cpu_ratio": {...}, "baseline_ms": {...},
"command_ms": {...}, "runs": N, ...}}``; it is kept whole in results.json. An older
cli_bench.py without ``--json`` is run again without it and the medians it prints are
read instead (no min / max then).
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
RELEASE_TARGET = Target("<=", 1.2, text="<= 1.2")
#: (figure, its ratio in the JSON, its baseline in baseline_ms, the baseline's label, target)
FIGURES = (
    (
        "tracker-ci --version / python -c 'import click'",
        "version_ratio",
        "import_click",
        "import click",
        VERSION_TARGET,
    ),
    (
        "deploy start + finish / 2 library-import processes",
        "pair_ratio",
        "import_httpx_pydantic_click",
        "import httpx, pydantic, click",
        PAIR_TARGET,
    ),
    (
        "lock release / 1 library-import process",
        "release_ratio",
        "import_httpx_pydantic_click",
        "import httpx, pydantic, click",
        RELEASE_TARGET,
    ),
)

#: The lines the former cli_bench.py printed (medians only).
_TEXT = {
    ("baseline_ms", "import_click"): r"python -c 'import click'\s+([\d.]+) ms",
    ("version_ratio",): r"tracker-ci --version\s+[\d.]+ ms\s+ratio\s+([\d.]+)",
    ("baseline_ms", "import_httpx_pydantic_click"): (
        r"python -c 'import httpx, pydantic, click'\s+([\d.]+) ms"
    ),
    ("pair_ratio",): r"ratio per process \(pair / 2 baselines\)\s+([\d.]+)",
}


def parse_text(output: str) -> dict[str, Any]:
    """The printed medians, in the shape of the JSON (``{"median": x}`` each)."""
    found: dict[str, Any] = {}
    for path, pattern in _TEXT.items():
        match = re.search(pattern, output)
        if not match:
            continue
        where = found
        for name in path[:-1]:
            where = where.setdefault(name, {})
        where[path[-1]] = {"median": float(match.group(1))}
    return found


def run_cli_bench(runs: int, timeout: float = 900) -> tuple[dict[str, Any], str]:
    """cli_bench.py's figures (``{"version_ratio": ...}``) and where they came from."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cli.json"
        argv = [sys.executable, str(CLI_BENCH), "--runs", str(runs)]
        done = subprocess.run(
            [*argv, "--json", str(out)], capture_output=True, text=True, timeout=timeout
        )
        if done.returncode == 0 and out.exists():
            given = json.loads(out.read_text())
            return dict(given.get("cli", given)), "json"
        if "--json" not in done.stderr:
            raise RuntimeError(f"cli_bench.py failed ({done.returncode}): {done.stderr[-500:]}")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"cli_bench.py failed ({done.returncode}): {done.stderr[-500:]}")
        return parse_text(done.stdout), "printed medians"


def _stat(data: Any, name: str) -> float | None:
    value = data.get(name) if isinstance(data, dict) else None
    return float(value) if isinstance(value, int | float) else None


def figures(data: dict[str, Any], source: str) -> list[Figure]:
    """The CLI figures (version, lifecycle pair, lock release), min / median / max over
    rounds."""
    out = []
    for name, ratio_key, base_key, base_label, target in FIGURES:
        ratios = data.get(ratio_key)
        ratio = _stat(ratios, "median")
        if ratio is None:
            out.append(not_available("cli", name, "", f"cli_bench.py gave no {ratio_key}", target))
            continue
        base = _stat(data.get("baseline_ms", {}).get(base_key), "median")
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
                low=_stat(ratios, "min"),
                median=ratio,
                high=_stat(ratios, "max"),
                repeats=int(data.get("runs") or 0),
                detail={"source": source, "cli_bench": data},
            )
        )
    return out
