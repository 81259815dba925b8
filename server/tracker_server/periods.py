"""Time bounds read from a request: RFC 3339 timestamps or bare dates, inclusive ranges,
and the DORA window. Shared by the API routes and the pages (neither imports the other).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from tracker_server.domain import InvalidInput

#: Without a start_date, a DORA window is this long (ending at end_date, else now).
DEFAULT_WINDOW = timedelta(days=30)


def parse_query_time(value: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    """An RFC 3339 timestamp (or a bare date) from a query parameter; 400 otherwise.

    A bare date as an upper bound means the end of that day, so bounds stay inclusive.
    """
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.min, tzinfo=UTC)
            return moment + timedelta(days=1, microseconds=-1) if end_of_day else moment
        from tracker_ci.models import EventMetadata

        parsed = EventMetadata.model_validate({"created_at": text}).created_at
    except ValueError as exc:
        if "out of range" in str(exc):
            raise InvalidInput(
                f"invalid request: query parameter {name}: {value!r} is out of range once "
                "converted to UTC (years 1 to 9999 in UTC)"
            ) from None
        raise InvalidInput(
            f"invalid request: query parameter {name}: {value!r} is not an RFC 3339 timestamp "
            "(e.g. 2026-01-31T12:00:00Z) or a date (2026-01-31)"
        ) from None
    assert parsed is not None
    return parsed


def check_date_order(start: datetime | None, end: datetime | None) -> None:
    """A 400 when the range is inverted."""
    if start is not None and end is not None and start > end:
        raise InvalidInput(
            "invalid request: start_date is after end_date; swap them (both are inclusive)"
        )


def dora_window(
    start_date: str | None, end_date: str | None, now: datetime
) -> tuple[datetime, datetime]:
    """The window of a DORA request: bare dates are whole days; 30 days up to now by default."""
    end = parse_query_time(end_date, "end_date", end_of_day=True) or now
    start = parse_query_time(start_date, "start_date") or end - DEFAULT_WINDOW
    check_date_order(start, end)
    return start, end
