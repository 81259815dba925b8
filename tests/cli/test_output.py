"""Tables and summaries for people."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tracker_ci.output import format_seconds, format_time, render_summary, render_table

pytestmark = pytest.mark.unit


def test_render_table_aligns_columns_and_cuts_long_cells() -> None:
    text = render_table(
        [("api", "x" * 80), ("web-frontend", None)], ["service", "title"], max_width=12
    )
    assert text.splitlines() == [
        "SERVICE       TITLE",
        "api           xxxxxxxxxxx…",
        "web-frontend",
    ]


def test_render_summary_leaves_out_empty_values() -> None:
    when = datetime(2026, 1, 31, 12, 1, 3, tzinfo=UTC)
    assert render_summary([("id", "e1"), ("ticket", ""), ("created", when)]) == (
        "id:      e1\ncreated: 2026-01-31 12:01:03Z"
    )


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, ""), (3.25, "3.2s"), (95, "1m35s"), (3725, "1h02m05s")]
)
def test_format_seconds(seconds: float | None, text: str) -> None:
    assert format_seconds(seconds) == text


def test_format_time() -> None:
    assert format_time(datetime(2026, 1, 31, 12, 1, 3, tzinfo=UTC), full=True) == (
        "2026-01-31T12:01:03Z"
    )
    assert format_time(None) == ""
