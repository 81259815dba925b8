"""The README's quick start works: `make demo` runs tracked deploys on a real server."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def test_readme_quick_start_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", readme, re.S)
    assert block, "README has no quick start block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_demo_script_tracks_waiting_and_failing_deploys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "waiting for lock on demo-api/development: held by alice" in output
    assert "exit code: 7" in output
    assert re.search(r"closed as failure", output), output
    assert "no locks" in output
    # The main job ends with the dashboard's address, and the page answered.
    assert re.search(r"==> the dashboard: http://127\.0\.0\.1:\d+/ ", output), output
    assert "it shows the deploys above" in output
