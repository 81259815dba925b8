"""The action's `reason` and `break-glass` inputs reach the one tracker-ci command line."""

from __future__ import annotations

import pytest

from tracker_ci.ci.github_action import INPUT_NAMES, build_cli_argv, parse_inputs, read_inputs

pytestmark = pytest.mark.unit


def _raw(**values: str) -> dict[str, str]:
    raw = dict.fromkeys(INPUT_NAMES, "")
    raw.update({"service": "shop", "environment": "production", "command": "./deploy.sh"})
    raw.update({name.replace("_", "-"): value for name, value in values.items()})
    return raw


@pytest.mark.parametrize("mode", ["run", "start", "lock"])
def test_reason_and_break_glass_become_options(mode: str) -> None:
    inputs = parse_inputs(_raw(mode=mode, reason="release 2.1", break_glass="hotfix INC-9"))
    argv = build_cli_argv(inputs)
    assert argv[argv.index("--reason") + 1] == "release 2.1"
    assert argv[argv.index("--break-glass") + 1] == "hotfix INC-9"


def test_empty_reason_and_break_glass_add_nothing() -> None:
    argv = build_cli_argv(parse_inputs(_raw(mode="run")))
    assert "--reason" not in argv and "--break-glass" not in argv


def test_break_glass_is_read_in_both_spellings() -> None:
    assert read_inputs({"INPUT_BREAK-GLASS": "why"})["break-glass"] == "why"
    assert read_inputs({"INPUT_BREAK_GLASS": "why"})["break-glass"] == "why"
