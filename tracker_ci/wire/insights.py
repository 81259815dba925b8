"""Insights (extension): the DORA report."""

import enum

from pydantic import Field

from tracker_ci.wire.base import BUILT_ON_FIRST_USE, Text, Timestamp, WireModel

__all__ = [
    "DoraKey",
    "DoraKeys",
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


class DoraKey(WireModel):
    """One key of a window: its value, its DORA rating (null: no value), the same key over
    the previous period of the same length, and ``change`` = value - previous (null when
    either is null)."""

    value: float | None = None
    rating: DoraLevel | None = None
    previous: float | None = None
    change: float | None = None


class DoraKeys(WireModel):
    """The four keys as rated: deployment frequency (successful deployments per day), lead
    time for changes (median, seconds), change failure rate (0..1) and failed deployment
    recovery time (median, seconds)."""

    deployment_frequency: DoraKey = Field(default_factory=DoraKey)
    lead_time: DoraKey = Field(default_factory=DoraKey)
    change_failure_rate: DoraKey = Field(default_factory=DoraKey)
    recovery_time: DoraKey = Field(default_factory=DoraKey)


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
    #: Successful deployments (``deployments`` counts every ended one: success, failure,
    #: error), failed ones (failure, error), and the changes counted in the lead time.
    successful_deployments: int = 0
    failed_deployments: int = 0
    changes: int = 0
    #: Data problems: changes whose commit is later than the deployment that shipped them
    #: (left out of the lead time).
    changes_committed_after_deployment: int = 0
    #: Runs of failed deployments that began in the window (recovered or not).
    failure_episodes: int = 0
    previous_start_date: Timestamp | None = None
    previous_end_date: Timestamp | None = None
    keys: DoraKeys = Field(default_factory=DoraKeys)
    #: Whose thresholds rate the keys.
    rated_by: Text = ""
    #: A second, incident-based recovery figure: incidents of the service and environment
    #: resolved (close or done) in the window, from opened (startDate, else createdAt) to
    #: resolved (endDate, else createdAt + duration). Not rated.
    incidents_resolved: int = 0
    incident_recovery_seconds: Percentiles = Field(default_factory=Percentiles)
