"""EXIT_CODES is the one table of exit codes: README, docs/cli.md and --help show it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tracker_ci.exit_codes import EXIT_CODES, ExitCode, exit_codes_line

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| (\d+) \| (.*) \|$")


def _table(text: str, heading: str) -> dict[int, str]:
    """The numbered rows of the first table after ``heading``."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| code |"))
    rows: dict[int, str] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        if match := ROW.match(line):
            rows[int(match[1])] = match[2]
    return rows


def _readme_cli_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text[text.index("<!-- section: cli -->") : text.index("<!-- /section: cli -->")]


def test_the_codes_are_zero_to_ten() -> None:
    assert list(EXIT_CODES) == list(range(11)) == [int(code) for code in ExitCode]


def test_readme_table_is_exit_codes() -> None:
    assert _table(_readme_cli_section(), "**Exit codes**") == dict(EXIT_CODES)


def test_docs_cli_table_is_exit_codes() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert _table(text, "## Exit codes") == dict(EXIT_CODES)


def test_the_root_help_names_every_code() -> None:
    from tracker_ci.cli import cli

    result = CliRunner().invoke(cli, ["--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert " ".join(exit_codes_line().split()) in " ".join(result.output.split())


def test_the_exit_codes_module_imports_the_standard_library_only() -> None:
    code = (
        "import sys, tracker_ci.exit_codes; "
        "print(sorted(m for m in ('click', 'httpx', 'pydantic') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_the_cli_keeps_the_old_names() -> None:
    from tracker_ci import cli

    assert (cli.EXIT_LOCKED, cli.EXIT_NOT_FOUND, cli.EXIT_LOCK_LOST) == (3, 6, 9)
