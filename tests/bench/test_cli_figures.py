"""How the benchmark reads bench/cli_bench.py's figures: its --json document (min /
median / max per ratio), or the medians an older version printed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from harness import cli  # noqa: E402

pytestmark = pytest.mark.unit

DOCUMENT = {
    "runs": 4,
    "version_ratio": {"min": 1.1, "median": 1.2, "max": 1.6},
    "pair_ratio": {"min": 1.25, "median": 1.4, "max": 1.5},
    "release_ratio": {"min": 1.05, "median": 1.1, "max": 1.3},
    "baseline_ms": {
        "import_click": {"min": 40.0, "median": 45.0, "max": 50.0},
        "import_httpx_pydantic_click": {"min": 140.0, "median": 150.0, "max": 170.0},
    },
}

PRINTED = """\
python -c 'import click'                     47.0 ms
tracker-ci --version                         55.3 ms
  ratio                                      1.18  (goal <= 1.5)
python -c 'import httpx, pydantic, click'   152.0 ms
start + finish (pair)                       690.1 ms
  ratio per process (pair / 2 baselines)     2.27  (goal <= 1.5)
"""


def test_the_json_figures_carry_min_median_max_and_are_judged() -> None:
    version, pair, release = cli.figures(DOCUMENT, "json")
    assert (version.value, version.low, version.high, version.repeats) == (1.2, 1.1, 1.6, 4)
    assert version.baseline == 45.0 and version.status == "PASS"
    assert (pair.value, pair.low, pair.high) == (1.4, 1.25, 1.5)
    assert pair.baseline == 150.0 and pair.status == "FAIL"  # target <= 1.3
    assert (release.value, release.low, release.high) == (1.1, 1.05, 1.3)
    assert release.baseline == 150.0 and release.status == "PASS"  # target <= 1.2


def test_printed_medians_are_read_when_there_is_no_json() -> None:
    version, pair, release = cli.figures(cli.parse_text(PRINTED), "printed")
    assert (version.value, version.baseline, version.low) == (1.18, 47.0, None)
    assert (pair.value, pair.baseline, pair.status) == (2.27, 152.0, "FAIL")
    assert release.status == "n/a"  # the older script did not measure it


def test_a_missing_figure_is_not_available() -> None:
    version, pair, _release = cli.figures({"version_ratio": {"median": 1.0}}, "json")
    assert version.status == "PASS" and pair.status == "n/a"
    assert "pair_ratio" in pair.note
