"""The wire models encode exactly what the contract says, in both directions."""

from __future__ import annotations

import importlib
import inspect
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tracker_ci import models
from tracker_ci.models import (
    CreateEventRequest,
    Environment,
    Event,
    EventType,
    Lock,
    MonthlyStatsResponse,
    Priority,
    StatsResponse,
    Status,
    UnlockResponse,
)

pytestmark = pytest.mark.unit


def test_enum_numbers_follow_the_contract() -> None:
    assert [m.value for m in EventType] == [
        "TYPE_UNSPECIFIED",
        "deployment",
        "operation",
        "drift",
        "incident",
        "rpa_usage",
    ]
    assert Status.waiting_approval.number == 14
    assert Status.recommandation.number == 8
    assert Environment.production.number == 7
    assert Environment.TNR.number == 3
    assert Priority.P5.number == 5
    assert models.ChangeType.unlocked.number == 9


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("production", Environment.production),
        (7, Environment.production),
        ("7", Environment.production),
        ("Production", Environment.production),
        ("uat", Environment.UAT),
    ],
)
def test_enums_read_by_name_or_number(raw: object, expected: Environment) -> None:
    attrs = models.EventAttributes.model_validate({"environment": raw})
    assert attrs.environment is expected
    assert attrs.to_wire()["environment"] == expected.value


@pytest.mark.parametrize("raw", ["prod env", 99, True, -1, "-P9", "x" * 33])
def test_unknown_enum_values_are_rejected_with_the_choices(raw: object) -> None:
    with pytest.raises(ValidationError) as info:
        models.EventAttributes.model_validate({"environment": raw})
    assert "production" in str(info.value)


def test_responses_are_camel_case_with_every_field_present() -> None:
    wire = Event().to_wire()
    assert set(wire) == {"title", "attributes", "links", "metadata", "changelog"}
    assert wire["attributes"]["relatedId"] == ""
    assert wire["attributes"]["stakeHolders"] == []
    assert wire["attributes"]["startDate"] is None
    assert wire["attributes"]["type"] == "TYPE_UNSPECIFIED"
    assert wire["links"] == {"pullRequestLink": "", "ticket": ""}
    assert wire["metadata"] == {"createdAt": None, "duration": None, "id": "", "slackId": ""}


def test_requests_accept_snake_and_camel_case_and_ignore_unknown_fields() -> None:
    snake = CreateEventRequest.model_validate(
        {
            "title": "t",
            "attributes": {"related_id": "x", "start_date": "2026-01-02T03:04:05Z"},
            "links": {"pull_request_link": "u"},
            "slack_id": "s",
            "bogus": 1,
        }
    )
    camel = CreateEventRequest.model_validate(
        {
            "title": "t",
            "attributes": {"relatedId": "x", "startDate": "2026-01-02T03:04:05Z"},
            "links": {"pullRequestLink": "u"},
            "slackId": "s",
        }
    )
    assert snake == camel
    assert snake.attributes.start_date == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_attributes_are_required_on_create_but_links_default() -> None:
    with pytest.raises(ValidationError):
        CreateEventRequest.model_validate({"title": "t"})
    assert CreateEventRequest.model_validate({"attributes": {}}).links.ticket == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-04T05:06:07Z", "2026-03-04T05:06:07Z"),
        ("2026-03-04T05:06:07.120Z", "2026-03-04T05:06:07.120000Z"),
        ("2026-03-04T05:06:07.123456789Z", "2026-03-04T05:06:07.123456Z"),
        ("2026-03-04T07:06:07+02:00", "2026-03-04T05:06:07Z"),
    ],
)
def test_timestamps_are_rfc3339_utc_with_z(raw: str, expected: str) -> None:
    lock = Lock.model_validate({"createdAt": raw})
    assert lock.to_wire()["createdAt"] == expected


def test_bad_timestamp_names_the_format() -> None:
    with pytest.raises(ValidationError) as info:
        Lock.model_validate({"createdAt": "yesterday"})
    assert "RFC 3339" in str(info.value)


def test_durations_are_seconds_with_an_s() -> None:
    meta = models.EventMetadata.model_validate({"duration": "125.402113945s"})
    assert meta.duration == timedelta(seconds=125.402114)
    assert meta.to_wire()["duration"] == "125.402114s"
    assert models.format_duration(timedelta(seconds=12)) == "12s"
    assert models.parse_duration("0.5s") == timedelta(milliseconds=500)


def test_64_bit_counts_are_strings_and_32_bit_ones_numbers() -> None:
    assert StatsResponse(total_count=5).to_wire()["totalCount"] == "5"
    assert UnlockResponse(count=1).to_wire()["count"] == "1"
    monthly = MonthlyStatsResponse.model_validate(
        {"stats": [{"year": 2026, "month": 1, "count": "3"}], "totalCount": "3"}
    )
    assert monthly.stats[0].count == 3
    assert monthly.to_wire()["stats"][0] == {"year": 2026, "month": 1, "count": "3", "service": ""}
    assert models.EventListResponse(total_count=2).to_wire()["totalCount"] == 2


#: The modules under tracker_ci.wire that define models, by name.
WIRE_MODULES = [
    "base",
    "events",
    "stats",
    "locks",
    "queue",
    "freezes",
    "tokens",
    "webhooks",
    "ops",
    "insights",
]


def test_all_is_complete() -> None:
    """Each public class and function of the wire modules is in its module's ``__all__``
    and in ``models.__all__``, and ``tracker_ci.models`` gives the very object its module
    defines (one definition of each)."""
    # Helpers of the wire modules themselves, not part of the models' face:
    helpers = {"BUILT_ON_FIRST_USE", "new_list", "none_to_list", "wire_enum_field"}
    for module_name in ["vocabulary", *WIRE_MODULES]:
        module = importlib.import_module(f"tracker_ci.wire.{module_name}")
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and value.__module__ == module.__name__
        }
        assert public <= set(module.__all__), f"add to {module.__name__}.__all__"
        missing = public - set(models.__all__) - helpers - {"WireEnum", "WireModel"}
        assert not missing, f"add to models.__all__: {sorted(missing)}"
        for name in set(module.__all__) - helpers:
            assert getattr(models, name) is getattr(module, name), name
    # And the other way: every name offered resolves, so ``from tracker_ci.models import *``
    # works, and is listed once.
    assert len(models.__all__) == len(set(models.__all__)), "a name is listed twice"
    assert [name for name in models.__all__ if not hasattr(models, name)] == []


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nonexistent'"):
        _ = models.Nonexistent  # type: ignore[attr-defined]


def test_answers_are_built_on_first_use_their_parts_at_import() -> None:
    """The models others are made of are built at import; an answer gets its validator
    when first used, and works the same."""
    from tracker_ci.wire import events

    assert events.Event.__pydantic_complete__
    assert events.EventAttributes.__pydantic_complete__
    assert events.EventListResponse.model_config.get("defer_build") is True
    # Request bodies are built at import: FastAPI makes their adapters with the routes.
    assert events.CreateEventRequest.__pydantic_complete__
    answer = events.EventListResponse.model_validate(
        {"events": [{"title": "t", "attributes": {"environment": "eu-west-1"}}], "totalCount": 1}
    )
    assert answer.events[0].attributes.environment.value == "eu-west-1"
    assert events.EventListResponse.__pydantic_complete__
    assert answer.to_wire()["totalCountExact"] is True


@pytest.mark.parametrize("raw", [None, ""])
def test_null_or_empty_enum_in_a_body_is_unspecified_as_upstream_reads_it(raw: object) -> None:
    attrs = models.EventAttributes.model_validate({"priority": raw, "status": raw})
    assert attrs.priority is Priority.PRIORITY_UNSPECIFIED
    assert attrs.status is Status.STATUS_UNSPECIFIED


def test_enum_errors_name_the_enum_in_words() -> None:
    with pytest.raises(ValidationError) as info:
        models.EventAttributes.model_validate({"type": "deploy"})
    assert "'deploy' is not a valid event type; use one of: deployment," in str(info.value)


# ------------------------------------------------------------------ status vocabulary
@pytest.mark.parametrize("word", [*models.FINISH_STATUSES, "SUCCESS", " Close ", "Done"])
def test_every_finish_status_is_accepted_in_any_case(word: str) -> None:
    assert models.parse_finish_status(word) is Status(word.strip().lower())


@pytest.mark.parametrize("word", ["failed", "cancelled", "canceled", "CANCELLED", "Failed"])
def test_ci_job_results_mean_failure(word: str) -> None:
    assert models.parse_finish_status(word) is Status.failure


@pytest.mark.parametrize("word", ["start", "in_progress", "open", "planned", "skipped", "", "1"])
def test_other_words_are_refused_with_the_accepted_ones(word: str) -> None:
    with pytest.raises(ValueError) as info:
        models.parse_finish_status(word)

    message = str(info.value)
    assert "\n" not in message
    assert message.endswith(
        "use one of: success, failure, warning, error, close, done, "
        "failed, cancelled, canceled, timedout"
    )


def test_the_status_tables_are_statuses_and_agree() -> None:
    names = set(Status.choices())
    assert set(models.FINISH_STATUSES) <= names
    assert set(models.OPEN_STATUSES) <= names
    assert set(models.CLOSED_STATUSES) <= set(models.FINISH_STATUSES)
    assert not set(models.OPEN_STATUSES) & set(models.FINISH_STATUSES)
    assert set(models.STATUS_ALIASES.values()) <= set(models.FINISH_STATUSES)
    assert models.STATUS_ALIASES == {
        "failed": "failure",
        "cancelled": "failure",
        "canceled": "failure",
        "timedout": "failure",
    }
    # The server's sets are the same words.
    assert {s.value for s in models.OPENING_STATUSES} == set(models.OPEN_STATUSES)
    assert {s.value for s in models.CLOSING_STATUSES} == set(models.CLOSED_STATUSES)
