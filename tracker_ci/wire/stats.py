"""Event statistics: upstream's stats and monthly stats answers."""

from pydantic import Field

from tracker_ci.wire.base import BUILT_ON_FIRST_USE, Int64, Text, WireModel, new_list

__all__ = [
    "MonthlyStat",
    "MonthlyStatsResponse",
    "StatsResponse",
]


class StatsResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    total_count: Int64 = 0
    start_date: Text = ""
    end_date: Text = ""


class MonthlyStat(WireModel):
    year: int = 0
    month: int = 0
    count: Int64 = 0
    service: Text = ""


class MonthlyStatsResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    stats: list[MonthlyStat] = Field(default_factory=new_list)
    total_count: Int64 = 0
    start_date: Text = ""
    end_date: Text = ""
