"""Insights (extension): the DORA report."""

import enum

from pydantic import Field

from tracker_ci.wire.base import BUILT_ON_FIRST_USE, Text, Timestamp, WireModel

__all__ = [
    "DoraLevel",
    "DoraReport",
    "Percentiles",
]


class Percentiles(WireModel):
    """The median and 90th percentile of a set of durations, in seconds (null: none)."""

    p50: float | None = None
    p90: float | None = None


class DoraLevel(str, enum.Enum):
    """The DORA report's performance clusters."""

    elite = "elite"
    high = "high"
    medium = "medium"
    low = "low"


class DoraReport(WireModel):
    """``GET /insights/dora`` (extension): the four DORA keys of a service and environment
    over a window. ``level`` is null when the window holds no deployment."""

    model_config = BUILT_ON_FIRST_USE

    service: Text = ""
    environment: Text = ""
    start_date: Timestamp | None = None
    end_date: Timestamp | None = None
    deployments: int = 0
    deployments_per_day: float = 0.0
    lead_time_seconds: Percentiles = Field(default_factory=Percentiles)
    change_failure_rate: float | None = None
    recovery_time_seconds: Percentiles = Field(default_factory=Percentiles)
    level: DoraLevel | None = None
