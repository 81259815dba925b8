"""How much the `tracker-ci` command costs beyond the libraries it needs (not a test).

Two ratios, each the median of N fresh processes, in one run:

1. ``tracker-ci --version`` against ``python -c "import click"``;
2. ``tracker-ci deploy start`` followed by ``tracker-ci deploy finish`` (two fresh processes,
   against a bundled server on loopback) against ``python -c "import httpx, pydantic,
   click"``. The pair does the work of two processes, so the ratio compares the pair's
   time with two baseline processes (the time per process); the pair against ONE baseline
   is printed too.

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


def median_of(runs: int, measure: Callable[[], float]) -> float:
    """Median of ``runs`` measures after one warm-up (fills the OS file cache)."""
    measure()
    return statistics.median(measure() for _ in range(runs))


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="measures per figure (median)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        env = clean_env()
        click_only = median_of(args.runs, lambda: timed([PYTHON, "-c", "import click"], env, cwd))
        version = median_of(args.runs, lambda: timed([*TRACKER_CI, "--version"], env, cwd))
        libraries = median_of(
            args.runs, lambda: timed([PYTHON, "-c", "import httpx, pydantic, click"], env, cwd)
        )

        with run_server(f"sqlite:///{cwd / 'bench.db'}", log_dir=cwd) as server:
            server_env = clean_env(TRACKER_URL=server.url, TRACKER_RETRIES="0")
            start = [*TRACKER_CI, "deploy", "start", "-s", "bench", "-e", "production"]
            finish = [*TRACKER_CI, "deploy", "finish", "-s", "bench", "-e", "production"]
            finish += ["--status", "success"]
            starts: list[float] = []
            finishes: list[float] = []

            def pair() -> float:
                first = timed(start, server_env, cwd)
                second = timed(finish, server_env, cwd)
                starts.append(first)
                finishes.append(second)
                return first + second

            lifecycle = median_of(args.runs, pair)

    version_ratio = version / click_only
    pair_ratio = lifecycle / (2 * libraries)
    print(f"runs per figure: {args.runs} (median), python {sys.version.split()[0]}")
    print(f"python -c 'import click'                 {click_only * 1000:7.1f} ms")
    print(f"tracker-ci --version                     {version * 1000:7.1f} ms")
    print(f"  ratio                                  {version_ratio:7.2f}  (goal <= {GOAL})")
    print(f"python -c 'import httpx, pydantic, click' {libraries * 1000:6.1f} ms")
    print(f"tracker-ci deploy start                  {statistics.median(starts) * 1000:7.1f} ms")
    print(f"tracker-ci deploy finish                 {statistics.median(finishes) * 1000:7.1f} ms")
    print(f"start + finish (pair)                    {lifecycle * 1000:7.1f} ms")
    print(f"  ratio per process (pair / 2 baselines) {pair_ratio:7.2f}  (goal <= {GOAL})")
    print(f"  pair / one baseline                    {lifecycle / libraries:7.2f}")


if __name__ == "__main__":
    main()
