"""How much the `tracker-ci` command costs beyond the libraries it needs (not a test).

Three ratios, each measured in N rounds of fresh processes (round-robin, after one
warm-up round, so that a change of machine load hits the baselines and the commands alike):

1. ``tracker-ci --version`` against ``python -c "import click"`` (goal <= 1.5);
2. ``tracker-ci deploy start`` followed by ``tracker-ci deploy finish`` (two fresh
   processes, against a bundled server on loopback) against TWO ``python -c "import
   httpx, pydantic, click"`` processes (goal <= 1.3): the pair does the work of two
   processes, so it is compared with two baseline processes;
3. ``tracker-ci lock release ID`` against ONE such process (goal <= 1.2); the lock is
   taken before each round by a plain HTTP request of this script (not timed).

A ratio is taken within each round (the commands against that round's baselines), and
min / median / max are over the rounds. The figures are wall times; beside them the
same ratios of the processes' own CPU time (user + system, from ``getrusage``), which a
loaded machine disturbs far less (the server's work is not in them).

What is measured is the package as users run it: by default the working tree's
``tracker_ci`` is installed into a fresh virtualenv in a temporary directory the way pip
installs the wheel (the package in site-packages, the console script pip writes) and
byte-compiled (``compileall``); its libraries (click, httpx, pydantic...) come from this
virtualenv's site-packages through a ``.pth`` file, and the baselines run on that same
interpreter. The project's own ``.venv`` is an editable
install run with ``PYTHONDONTWRITEBYTECODE``, which compiles every module of the package
on every run: ``--editable`` measures that form instead, for comparison.

``import pydantic`` alone loads almost nothing (pydantic imports lazily); for reference
the script also times the baseline with ``pydantic.BaseModel`` touched.

Usage: ``python bench/cli_bench.py [--runs N] [--json PATH] [--editable]``. ``--json``
writes ``{"cli": {"version_ratio": {"min", "median", "max"}, "pair_ratio": {...},
"release_ratio": {...}, "baseline_ms": {...}, "command_ms": {...}, ...}}``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import run_server  # noqa: E402 - needs the repo root on the path

PYTHON = sys.executable
VERSION_GOAL = 1.5
PAIR_GOAL = 1.3
RELEASE_GOAL = 1.2


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without CI or tracker settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRACKER_", "GITHUB_", "GITLAB_", "CI_"))
    }
    return {**env, **extra}


#: The CPU time (user + system) of the last process ``timed`` ran.
_last_cpu = [0.0]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one process, which must succeed (its CPU time in ``_last_cpu``)."""
    cpu = _children_cpu()
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - began
    _last_cpu[0] = _children_cpu() - cpu
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed


def _quiet(*argv: str | Path) -> None:
    subprocess.run([str(arg) for arg in argv], stdout=subprocess.DEVNULL, check=True)


def install(tmp: Path, package: Path) -> Path:
    """Install the working tree's package into a fresh venv as pip installs its wheel, and
    byte-compile it; returns the venv's interpreter.

    The package directory goes into the venv's site-packages and its console script is
    written from ``[project.scripts]`` the way pip writes it (this venv's setuptools
    cannot build a wheel offline: no ``bdist_wheel``). The libraries (click, httpx,
    pydantic...) come from this venv's site-packages, already byte-compiled by pip,
    through a ``.pth`` file: the editable finders' .pth files there are not run.
    """
    venv = tmp / "venv"
    _quiet(PYTHON, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(subprocess.check_output([python, "-c", code], text=True).strip())
    libraries = Path(subprocess.check_output([PYTHON, "-c", code], text=True).strip())
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(package, site / "tracker_ci", ignore=ignore)
    (site / "zz_bench_libraries.pth").write_text(f"{libraries}\n")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        module, function = target.split(":")
        script = venv / "bin" / name
        script.write_text(CONSOLE_SCRIPT.format(python=python, module=module, function=function))
        script.chmod(0o755)
    _quiet(python, "-m", "compileall", "-q", site / "tracker_ci")
    where = subprocess.check_output(
        [python, "-c", "import tracker_ci; print(tracker_ci.__file__)"], text=True, cwd=tmp
    )
    if not where.startswith(str(site)):
        raise SystemExit(f"the bench venv imports tracker_ci from {where.strip()}, not {site}")
    return python


#: The console script pip writes for an entry point.
CONSOLE_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {function}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({function}())
"""


def take_lock(url: str, service: str) -> str:
    """Take a lock with one plain HTTP request (the release's set-up, not timed); its id."""
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port or 80)
    body = {"service": service, "environment": "production", "who": "bench"}
    try:
        connection.request(
            "POST", "/api/v1alpha1/lock", json.dumps(body), {"Content-Type": "application/json"}
        )
        answer = connection.getresponse()
        data = json.loads(answer.read())
    finally:
        connection.close()
    if answer.status != 200:
        raise SystemExit(f"POST /lock answered {answer.status}: {data}")
    return str(data["lock"]["id"])


def spread(values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """min / median / max, rounded."""
    digits = 1 if scale != 1.0 else 3
    return {
        "min": round(min(values) * scale, digits),
        "median": round(statistics.median(values) * scale, digits),
        "max": round(max(values) * scale, digits),
    }


def measure(python: Path, runs: int, cwd: Path) -> dict[str, list[float]]:
    """N rounds of every figure (after one warm-up round) against a fresh server; the
    CPU times under ``<name>_cpu``."""
    script = python.parent / "tracker-ci"
    tracker_ci = [str(script)] if script.exists() else [str(python), "-m", "tracker_ci"]
    env = clean_env()
    samples: dict[str, list[float]] = {
        name: []
        for name in ("click", "version", "libraries", "loaded", "start", "finish", "release")
        for name in (name, f"{name}_cpu")
    }
    with run_server(f"sqlite:///{cwd / 'bench.db'}", log_dir=cwd) as server:
        server_env = clean_env(TRACKER_URL=server.url, TRACKER_RETRIES="0")
        key = ["-s", "bench", "-e", "production"]
        measures: dict[str, Callable[[], float]] = {
            "click": lambda: timed([str(python), "-c", "import click"], env, cwd),
            "version": lambda: timed([*tracker_ci, "--version"], env, cwd),
            "libraries": lambda: timed(
                [str(python), "-c", "import httpx, pydantic, click"], env, cwd
            ),
            # `import pydantic` is lazy: touching BaseModel loads what models need.
            "loaded": lambda: timed(
                [str(python), "-c", "import httpx, pydantic, click; pydantic.BaseModel"],
                env,
                cwd,
            ),
            "start": lambda: timed([*tracker_ci, "deploy", "start", *key], server_env, cwd),
            "finish": lambda: timed(
                [*tracker_ci, "deploy", "finish", *key, "--status", "success"], server_env, cwd
            ),
            "release": lambda: timed(
                [*tracker_ci, "lock", "release", take_lock(server.url, "bench-release")],
                server_env,
                cwd,
            ),
        }
        for round_number in range(runs + 1):
            for name, run in measures.items():
                elapsed = run()
                if round_number:
                    samples[name].append(elapsed)
                    samples[f"{name}_cpu"].append(_last_cpu[0])
    return samples


def figures(samples: dict[str, list[float]], form: str) -> dict[str, object]:
    """The ratios per round and the times, as min / median / max."""
    pairs = [s + f for s, f in zip(samples["start"], samples["finish"], strict=True)]
    rounds = range(len(pairs))
    version_ratios = [samples["version"][i] / samples["click"][i] for i in rounds]
    pair_ratios = [pairs[i] / (2 * samples["libraries"][i]) for i in rounds]
    loaded_ratios = [pairs[i] / (2 * samples["loaded"][i]) for i in rounds]
    release_ratios = [samples["release"][i] / samples["libraries"][i] for i in rounds]
    cpu = {name[:-4]: values for name, values in samples.items() if name.endswith("_cpu")}
    cpu_pairs = [s + f for s, f in zip(cpu["start"], cpu["finish"], strict=True)]
    return {
        "runs": len(pairs),
        "python": sys.version.split()[0],
        "installed": form,
        "version_ratio": spread(version_ratios),
        "pair_ratio": spread(pair_ratios),
        "pair_ratio_vs_basemodel": spread(loaded_ratios),
        "release_ratio": spread(release_ratios),
        "cpu_ratio": {
            "version": spread([cpu["version"][i] / cpu["click"][i] for i in rounds]),
            "pair": spread([cpu_pairs[i] / (2 * cpu["libraries"][i]) for i in rounds]),
            "release": spread([cpu["release"][i] / cpu["libraries"][i] for i in rounds]),
        },
        "cpu_ms": {
            "import_httpx_pydantic_click": spread(cpu["libraries"], 1000),
            "deploy_start": spread(cpu["start"], 1000),
            "deploy_finish": spread(cpu["finish"], 1000),
            "lock_release": spread(cpu["release"], 1000),
        },
        "goal": {
            "version_ratio": VERSION_GOAL,
            "pair_ratio": PAIR_GOAL,
            "release_ratio": RELEASE_GOAL,
        },
        "baseline_ms": {
            "import_click": spread(samples["click"], 1000),
            "import_httpx_pydantic_click": spread(samples["libraries"], 1000),
            "with_basemodel": spread(samples["loaded"], 1000),
        },
        "command_ms": {
            "version": spread(samples["version"], 1000),
            "deploy_start": spread(samples["start"], 1000),
            "deploy_finish": spread(samples["finish"], 1000),
            "pair": spread(pairs, 1000),
            "lock_release": spread(samples["release"], 1000),
        },
    }


def report(cli: dict[str, object]) -> None:
    """Print the figures, each as min / median / max."""

    def row(label: str, value: object, goal: float | None = None) -> None:
        f = value if isinstance(value, dict) else {}
        text = f"{label:<44} {f['min']:>8} {f['median']:>8} {f['max']:>8}"
        print(text + (f"   (goal <= {goal})" if goal else ""))

    base, cmd = cli["baseline_ms"], cli["command_ms"]
    assert isinstance(base, dict) and isinstance(cmd, dict)
    print(f"{cli['runs']} rounds, python {cli['python']}, tracker-ci {cli['installed']}")
    print(f"{'':<44} {'min':>8} {'median':>8} {'max':>8}")
    row("python -c 'import click' (ms)", base["import_click"])
    row("tracker-ci --version (ms)", cmd["version"])
    row("  ratio", cli["version_ratio"], VERSION_GOAL)
    row("python -c 'import httpx, pydantic, click' (ms)", base["import_httpx_pydantic_click"])
    row("tracker-ci deploy start (ms)", cmd["deploy_start"])
    row("tracker-ci deploy finish (ms)", cmd["deploy_finish"])
    row("start + finish (ms)", cmd["pair"])
    row("  ratio: pair / two baseline processes", cli["pair_ratio"], PAIR_GOAL)
    row("tracker-ci lock release (ms)", cmd["lock_release"])
    row("  ratio: release / one baseline process", cli["release_ratio"], RELEASE_GOAL)
    cpu, cpu_ms = cli["cpu_ratio"], cli["cpu_ms"]
    assert isinstance(cpu, dict) and isinstance(cpu_ms, dict)
    print("the same in CPU time (user + system) of the processes:")
    row("python -c 'import httpx, pydantic, click' (ms)", cpu_ms["import_httpx_pydantic_click"])
    row("tracker-ci deploy start (ms)", cpu_ms["deploy_start"])
    row("tracker-ci deploy finish (ms)", cpu_ms["deploy_finish"])
    row("tracker-ci lock release (ms)", cpu_ms["lock_release"])
    row("  ratio: --version / import click", cpu["version"])
    row("  ratio: pair / two baseline processes", cpu["pair"])
    row("  ratio: release / one baseline process", cpu["release"])
    print("for reference (pydantic's lazy import made eager):")
    row("python -c '... pydantic.BaseModel' (ms)", base["with_basemodel"])
    row("  ratio: pair / two of those", cli["pair_ratio_vs_basemodel"])


def main() -> None:
    """Install (or not), measure, print, and write the JSON when asked."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds (default 15)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures here")
    parser.add_argument(
        "--editable",
        action="store_true",
        help="measure this venv's editable install instead of a byte-compiled wheel",
    )
    parser.add_argument(
        "--package",
        type=Path,
        default=ROOT / "tracker_ci",
        metavar="DIR",
        help="the tracker_ci package directory to install (default: the working tree's)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as tmp:
        cwd = Path(tmp)
        if args.editable:
            python, form = Path(PYTHON), "editable in this venv, as the environment compiles"
        else:
            python, form = (
                install(cwd, args.package.resolve()),
                "installed in a fresh venv, byte-compiled",
            )
        cli = figures(measure(python, args.runs, cwd), form)
    report(cli)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cli": cli}, indent=2) + "\n")


if __name__ == "__main__":
    main()
