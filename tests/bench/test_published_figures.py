"""The figures in README.md and docs/performance.md are generated from what was measured
(bench/results.json, bench/quickstart.json) by bench/publish.py, never typed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import publish  # noqa: E402

pytestmark = pytest.mark.unit

RESULTS = {
    "date": "2026-12-06T21:00:00+00:00",
    "git_commit": "0123456789abcdef",
    "git_dirty": False,
    "quick": False,
    "events": 1_000_000,
    "machine": {
        "cpus": 2,
        "cpu_model": "Test CPU",
        "python": "3.11.7",
        "sqlite": "3.40.1",
        "postgresql": "15.20 (Debian)",
        "load_average_at_start": [0.5, 0.4, 0.3],
        "load_average_at_end": [2.0, 1.0, 0.5],
    },
    "summary": {"pass": 2, "fail": 1, "n/a": 0},
    "figures": [
        {
            "group": "search",
            "name": "search type",
            "backend": "sqlite",
            "unit": "ms",
            "value": 7.2,
            "value_text": "p50 5.8 / p95 7.2 ms",
            "baseline_text": "health p50 1.3 ms",
            "ratio": 5.5,
            "target": {"op": "<", "bound": 20, "on": "value", "text": "p95 < 20 ms"},
            "low": 5.4,
            "high": 58.2,
            "repeats": 60,
            "note": "",
            "status": "PASS",
        },
        {
            "group": "search",
            "name": "search type+priority",
            "backend": "sqlite",
            "unit": "ms",
            "value": 24.6,
            "value_text": "p50 20.2 / p95 24.6 ms",
            "baseline_text": "health p50 1.3 ms",
            "ratio": 12.0,
            "target": {"op": "<", "bound": 20, "on": "value", "text": "p95 < 20 ms"},
            "low": 17.1,
            "high": 39.2,
            "repeats": 60,
            "note": "",
            "status": "FAIL",
        },
        {
            "group": "ingest",
            "name": "creates / health",
            "backend": "sqlite",
            "unit": "ratio",
            "value": 0.72,
            "value_text": "700 creates/s",
            "baseline_text": "",
            "ratio": 0.72,
            "target": {"op": ">=", "bound": 0.7, "on": "ratio", "text": ">= 0.7"},
            "low": 0.70,
            "high": 0.75,
            "repeats": 5,
            "note": "",
            "status": "PASS",
        },
    ],
}


def test_the_committed_docs_match_the_committed_measurements() -> None:
    assert publish.main(["--check"]) == 0, "run: python bench/publish.py"


def test_headline_gives_ranges_counts_and_where_it_was_measured() -> None:
    block = publish.headline_block(RESULTS)
    assert "| search (sqlite): 2 kinds | p95 < 20 ms | 7.20..24.6 ms | 1 of 2 |" in block
    assert "| ingest (sqlite): creates / health | >= 0.7 | 0.72 (0.70..0.75 over 5) | 1 of 1 |" in (
        block
    )
    assert "commit `0123456`" in block and "2 cores (Test CPU" in block
    assert "load average 0.5 at the start, 2.0 at the end" in block


def test_every_figure_is_in_the_full_table_with_its_min_max() -> None:
    block = publish.figures_block(RESULTS)
    assert "| search | search type | sqlite | p50 5.8 / p95 7.2 ms | 5.40..58.2 |" in block
    assert "Targets met: 2 of 3" in block


def test_quickstart_times_are_ranges_over_the_recorded_runs() -> None:
    runs = [
        {
            "cpus": 2,
            "load_average_at_start": 0.3,
            "demo_cold_seconds": 28.0,
            "demo_warm_seconds": 4.0,
            "test_seconds": 1000.0,
            "tests_passed": 1800,
        },
        {
            "cpus": 2,
            "load_average_at_start": 1.2,
            "demo_cold_seconds": 41.0,
            "demo_warm_seconds": 4.2,
        },
    ]
    text = publish.quickstart_block({"runs": runs})
    assert "`make demo` 28 s..41 s the first time" in text
    assert "4 s after" in text
    assert "`make test` 16.7 min from a fresh clone" in text
    assert "1,800 tests" in text and "load average 0.30..1.20" in text


def test_a_stale_block_is_reported_and_left_alone(tmp_path: Path, monkeypatch) -> None:
    page = tmp_path / "page.md"
    page.write_text("a\n<!-- generated: x -->\nold figure\n<!-- /generated: x -->\nb\n")
    monkeypatch.setattr(publish, "BLOCKS", {page: {"x": lambda: "new figure"}})
    monkeypatch.setattr(publish, "ROOT", tmp_path)
    assert publish.main(["--check"]) == 1
    assert "old figure" in page.read_text()
    assert publish.main([]) == 0
    assert page.read_text() == "a\n<!-- generated: x -->\nnew figure\n<!-- /generated: x -->\nb\n"
