"""Time the README's quick start from a fresh clone, as a newcomer runs it.

``python bench/quickstart.py [--runs N] [--test]`` clones the committed HEAD into a
temporary directory (with ``../shared`` beside it when this checkout has one, as CI has),
then times ``make demo`` (the first run installs ``.venv``; then once more, warm) and,
with ``--test``, ``make test`` with ``CI=true`` and no stdin, as CI runs it. Each run is
appended to ``bench/quickstart.json`` with the machine, its load and the commit;
``python bench/publish.py`` turns them into the README's times (min..max over the runs).
``--keep N`` keeps only the newest N runs (default 10). Exit 1 when a command fails (the
run is not recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "bench" / "quickstart.json"


def _timed(command: list[str], cwd: Path, log: Path) -> tuple[float, int, str]:
    env = {**os.environ, "CI": "true"}
    env.pop("VIRTUAL_ENV", None)
    began = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return time.monotonic() - began, done.returncode, log.read_text(errors="replace")


def _passed(output: str) -> int | None:
    found = re.findall(r"(\d+) passed", output)
    return int(found[-1]) if found else None


def one_run(with_test: bool, workdir: Path) -> dict[str, Any]:
    place = workdir / "clone"
    place.mkdir()
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        (place / "shared").symlink_to(shared)
    checkout = place / "main"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(checkout)], check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout.strip()
    run: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }
    for key, command in (
        ("demo_cold_seconds", ["make", "demo"]),
        ("demo_warm_seconds", ["make", "demo"]),
        *((("test_seconds", ["make", "test"]),) if with_test else ()),
    ):
        seconds, code, output = _timed(command, checkout, workdir / f"{key}.log")
        print(f"quickstart: {' '.join(command)}: {seconds:.1f} s, exit {code}", flush=True)
        if code != 0:
            tail = "\n".join(output.splitlines()[-20:])
            raise SystemExit(f"quickstart: {' '.join(command)} exited {code}\n{tail}")
        run[key] = round(seconds, 1)
        if key == "test_seconds":
            run["tests_passed"] = _passed(output)
    run["load_average_at_end"] = round(os.getloadavg()[0], 2)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="fresh clones to time")
    parser.add_argument("--test", action="store_true", help="also time make test")
    parser.add_argument("--keep", type=int, default=10, help="runs kept in the record")
    args = parser.parse_args(argv)
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {"runs": []}
    for _ in range(args.runs):
        workdir = Path(tempfile.mkdtemp(prefix="tracker-ci-quickstart-"))
        try:
            record["runs"].append(one_run(args.test, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        record["runs"] = record["runs"][-args.keep :]
        RECORD.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
