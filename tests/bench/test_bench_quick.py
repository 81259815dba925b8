"""The benchmark's harness end to end on a tiny data set (SQLite, one repeat): the run
succeeds and bench/results.json has every figure, with its baseline, ratio, target and
min / median / max. Timings are not checked (they belong to the benchmark itself)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from harness.fill import DataSet  # noqa: E402
from harness.measures import lookup_kinds, search_kinds  # noqa: E402

pytestmark = [pytest.mark.server, pytest.mark.timeout(240)]

EVENTS = 2000
TINY = [
    "--events", str(EVENTS), "--backends", "sqlite", "--no-cli",
    "--repeats", "1", "--seconds", "0.2", "--samples", "2", "--search-budget", "0.5",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "results.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), *TINY, "--workdir", str(tmp / "work"),
         "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def test_results_name_the_run(tiny_run: tuple[dict, str]) -> None:
    results, _ = tiny_run
    assert re.fullmatch(r"[0-9a-f]{40}", results["git_commit"])
    assert results["events"] == EVENTS and results["backends"] == ["sqlite"]
    assert results["machine"]["cpus"] >= 1 and results["machine"]["sqlite"]
    fill = results["fills"]["sqlite"]
    assert fill["events"] == EVENTS and fill["reused_cache"] is False
    assert fill["fill_seconds"] > 0 and fill["cache_key"]
    assert results["errors"] == []


def test_every_search_kind_and_lookup_is_measured(tiny_run: tuple[dict, str]) -> None:
    results, table = tiny_run
    data = DataSet(events=EVENTS, anchor="2026-01-01T00:00:00+00:00")
    wanted = {*search_kinds(data), *lookup_kinds(data, [])}
    figures = {f["name"]: f for f in results["figures"] if f["group"] in ("search", "lookup")}
    assert set(figures) == wanted
    health = next(f for f in results["figures"] if f["name"] == "GET /health (baseline)")
    for name, figure in figures.items():
        assert figure["backend"] == "sqlite"
        assert figure["baseline"] == health["value"]
        assert figure["ratio"] == pytest.approx(figure["value"] / figure["baseline"])
        assert figure["value"] == figure["detail"]["p95"] >= figure["detail"]["p50"]
        assert figure["low"] <= figure["median"] <= figure["high"]
        assert figure["repeats"] >= 2
        bound = 5.0 if name.startswith("lookup") else 20.0
        assert figure["target"]["bound"] == bound
        assert figure["status"] == ("PASS" if figure["value"] < bound else "FAIL")
        assert name in table


def test_ingest_batch_and_startup_figures(tiny_run: tuple[dict, str]) -> None:
    results, _ = tiny_run
    by_group: dict[str, list[dict]] = {}
    for figure in results["figures"]:
        by_group.setdefault(figure["group"], []).append(figure)
    rate, fairness = by_group["ingest"]
    assert rate["target"]["bound"] == 0.7 and fairness["target"]["bound"] == 3.0
    assert rate["detail"]["create_rates"][0] > 0 and rate["detail"]["health_rates"][0] > 0
    batch = by_group["batch"]
    if batch[0]["status"] == "n/a":  # a server without POST /events/batch
        assert len(batch) == 1 and "no batch endpoint" in batch[0]["note"]
    else:
        capacity, alone, floor = batch
        assert capacity["baseline"] == rate["detail"]["create_rates"][0]  # one repeat
        assert capacity["ratio"] == pytest.approx(capacity["value"] / capacity["baseline"])
        assert capacity["target"]["bound"] == 10.0 and capacity["status"] in ("PASS", "FAIL")
        assert alone["value"] == alone["ratio"] > 0 and alone["target"] is None
        # The storage floor: the database's own time for the same rows, two transactions
        # a repeat; the batch's capacity as a share of it.
        assert "storage floor" in floor["name"] and floor["target"] is None
        assert floor["baseline"] == capacity["baseline"] and floor["repeats"] == 2
        assert floor["ratio"] == pytest.approx(floor["value"] / floor["baseline"])
        assert floor["low"] <= floor["value"] <= floor["high"]
        share = floor["detail"]["batch_share"]
        assert share == pytest.approx(capacity["value"] / floor["value"]) and share > 0
    (startup,) = by_group["startup"]
    assert startup["target"]["bound"] == 2.0 and startup["detail"]["seconds"][0] > 0
    for figure in rate, fairness, startup:
        assert figure["status"] in ("PASS", "FAIL")
        assert figure["low"] <= figure["median"] <= figure["high"]
    counts = results["summary"]
    statuses = [f["status"] for f in results["figures"]]
    assert counts == {
        "pass": statuses.count("PASS"),
        "fail": statuses.count("FAIL"),
        "n/a": statuses.count("n/a"),
    }
