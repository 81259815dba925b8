"""How much the `tracker-ci` command costs beyond the libraries it needs (not a test).

Two ratios, each the median of N fresh processes, in one run:

1. ``tracker-ci --version`` against ``python -c "import click"``;
2. ``tracker-ci deploy start`` followed by ``tracker-ci deploy finish`` (two fresh processes,
   against a bundled server on loopback) against ``python -c "import httpx, pydantic,
   click"``. The pair does the work of two processes, so the ratio compares the pair's
   time with two baseline processes (the time per process); the pair against ONE baseline
   is printed too.

``import pydantic`` alone loads almost nothing (pydantic imports lazily); for reference the
script also times the same baseline with ``pydantic.BaseModel`` touched, which loads the
part of pydantic that any model needs.

The goal is at most 1.5 for each. Usage: ``python bench/cli_bench.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import run_server  # noqa: E402 - needs the repo root on the path

PYTHON = sys.executable
_SCRIPT = Path(PYTHON).parent / "tracker-ci"
TRACKER_CI = [str(_SCRIPT)] if _SCRIPT.exists() else [PYTHON, "-m", "tracker_ci"]
GOAL = 1.5


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without CI or tracker settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRACKER_", "GITHUB_", "GITLAB_", "CI_"))
    }
    return {**env, **extra}


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one process, which must succeed."""
    began = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="measures per figure (median)")
    args = parser.parse_args()

    samples: dict[str, list[float]] = {
        name: [] for name in ("click", "version", "libraries", "loaded", "start", "finish")
    }
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        env = clean_env()
        with run_server(f"sqlite:///{cwd / 'bench.db'}", log_dir=cwd) as server:
            server_env = clean_env(TRACKER_URL=server.url, TRACKER_RETRIES="0")
            lifecycle = ["deploy", "start", "-s", "bench", "-e", "production"]
            closing = ["deploy", "finish", "-s", "bench", "-e", "production"]
            measures: dict[str, Callable[[], float]] = {
                "click": lambda: timed([PYTHON, "-c", "import click"], env, cwd),
                "version": lambda: timed([*TRACKER_CI, "--version"], env, cwd),
                "libraries": lambda: timed(
                    [PYTHON, "-c", "import httpx, pydantic, click"], env, cwd
                ),
                # `import pydantic` is lazy: touching BaseModel loads what models need.
                "loaded": lambda: timed(
                    [PYTHON, "-c", "import httpx, pydantic, click; pydantic.BaseModel"], env, cwd
                ),
                "start": lambda: timed([*TRACKER_CI, *lifecycle], server_env, cwd),
                "finish": lambda: timed(
                    [*TRACKER_CI, *closing, "--status", "success"], server_env, cwd
                ),
            }
            # Round-robin, after one warm-up round, so that a change of machine load
            # affects the baselines and the commands alike.
            for round_number in range(args.runs + 1):
                for name, measure in measures.items():
                    elapsed = measure()
                    if round_number:
                        samples[name].append(elapsed)

    median = {name: statistics.median(values) for name, values in samples.items()}
    pairs = [s + f for s, f in zip(samples["start"], samples["finish"], strict=True)]
    pair = statistics.median(pairs)
    version_ratio = median["version"] / median["click"]
    pair_ratio = pair / (2 * median["libraries"])
    ms = {name: value * 1000 for name, value in median.items()}
    print(f"runs per figure: {args.runs} (median, round-robin), python {sys.version.split()[0]}")
    print(f"python -c 'import click'                  {ms['click']:7.1f} ms")
    print(f"tracker-ci --version                      {ms['version']:7.1f} ms")
    print(f"  ratio                                   {version_ratio:7.2f}  (goal <= {GOAL})")
    print(f"python -c 'import httpx, pydantic, click' {ms['libraries']:7.1f} ms")
    print(f"tracker-ci deploy start                   {ms['start']:7.1f} ms")
    print(f"tracker-ci deploy finish                  {ms['finish']:7.1f} ms")
    print(f"start + finish (pair)                     {pair * 1000:7.1f} ms")
    print(f"  ratio per process (pair / 2 baselines)  {pair_ratio:7.2f}  (goal <= {GOAL})")
    print(f"  pair / one baseline                     {pair / median['libraries']:7.2f}")
    print("for reference (pydantic's lazy import made eager):")
    print(f"python -c '... pydantic.BaseModel'        {ms['loaded']:7.1f} ms")
    print(f"  ratio per process against it            {pair / (2 * median['loaded']):7.2f}")


if __name__ == "__main__":
    main()
