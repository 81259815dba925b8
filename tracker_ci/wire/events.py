"""Events: the event, its create/update bodies and the answers of get, list, search."""

import enum
from typing import Annotated

from pydantic import BeforeValidator, Field

from tracker_ci.wire.base import (
    BUILT_ON_FIRST_USE,
    ChangeTypeField,
    Duration,
    EnvironmentField,
    EventTypeField,
    Flag,
    PriorityField,
    StatusField,
    Text,
    TextList,
    Timestamp,
    WholeNumber,
    WireModel,
    new_list,
    none_to_list,
)
from tracker_ci.wire.vocabulary import ChangeType, Environment, EventType, Priority, Status

__all__ = [
    "MAX_CHANGES",
    "ApprovalRequest",
    "ChangeKind",
    "ChangelogEntry",
    "ChangelogListResponse",
    "ChangelogRequest",
    "CloseEventRequest",
    "CreateEventRequest",
    "DeleteEventResponse",
    "Event",
    "EventAttributes",
    "EventLinks",
    "EventListResponse",
    "EventMetadata",
    "EventResponse",
    "ShippedChange",
    "SlackIdRequest",
    "UpdateEventRequest",
]


class ChangeKind(str, enum.Enum):
    """What a shipped change is (extension ``attributes.changes[].kind``)."""

    pull_request = "pull_request"
    merge_request = "merge_request"
    commit = "commit"


class ShippedChange(WireModel):
    """One change a deployment shipped (our extension, read by DORA's lead time)."""

    kind: ChangeKind = ChangeKind.commit
    id: Text = ""
    url: Text = ""
    title: Text = ""
    author: Text = ""
    committed_at: Timestamp | None = None
    merged_at: Timestamp | None = None


#: At most this many changes are kept on one event (the lookup stops there too).
MAX_CHANGES = 100


class EventAttributes(WireModel):
    message: Text = ""
    source: Text = ""
    type: EventTypeField = EventType.TYPE_UNSPECIFIED  # type: ignore[valid-type]
    priority: PriorityField = Priority.PRIORITY_UNSPECIFIED  # type: ignore[valid-type]
    related_id: Text = ""
    service: Text = ""
    status: StatusField = Status.STATUS_UNSPECIFIED  # type: ignore[valid-type]
    environment: EnvironmentField = Environment.ENVIRONMENT_UNSPECIFIED  # type: ignore[valid-type]
    impact: Flag = False
    start_date: Timestamp | None = None
    end_date: Timestamp | None = None
    owner: Text = ""
    stake_holders: TextList = Field(default_factory=new_list)
    notification: Flag = False
    notifications: TextList = Field(default_factory=new_list)
    #: Our extensions (sent only to our server): the deployed revision and what it shipped.
    revision: Text = ""
    changes: Annotated[
        list[ShippedChange], BeforeValidator(none_to_list), Field(max_length=MAX_CHANGES)
    ] = Field(default_factory=new_list)


class EventLinks(WireModel):
    pull_request_link: Text = ""
    ticket: Text = ""


class EventMetadata(WireModel):
    created_at: Timestamp | None = None
    duration: Duration | None = None
    id: Text = ""
    slack_id: Text = ""


class ChangelogEntry(WireModel):
    timestamp: Timestamp | None = None
    user: Text = ""
    change_type: ChangeTypeField = ChangeType.CHANGE_TYPE_UNSPECIFIED  # type: ignore[valid-type]
    field: Text = ""
    old_value: Text = ""
    new_value: Text = ""
    comment: Text = ""


class Event(WireModel):
    title: Text = ""
    attributes: EventAttributes = Field(default_factory=EventAttributes)
    links: EventLinks = Field(default_factory=EventLinks)
    metadata: EventMetadata = Field(default_factory=EventMetadata)
    changelog: list[ChangelogEntry] = Field(default_factory=new_list)

    @property
    def id(self) -> str:
        return self.metadata.id


# ---------------------------------------------------------------- event bodies
class CreateEventRequest(WireModel):
    """Body of ``POST /event``. ``attributes`` is required; ``links`` defaults to empty."""

    title: Text = ""
    attributes: EventAttributes
    links: EventLinks = Field(default_factory=EventLinks)
    slack_id: Text = ""
    #: Our extension: TTL of the automatic deployment lock (0 = it never expires).
    lock_ttl_seconds: Annotated[WholeNumber, Field(ge=0, le=7 * 24 * 3600)] = 0
    #: Extensions: the automatic lock's reason and CI job; a reason to pass a hard freeze.
    lock_reason: Text = ""
    job_url: Text = ""
    break_glass: Text = ""
    queue_ticket: Text = ""


class UpdateEventRequest(WireModel):
    """Body of ``PUT /event``: a full replace of title, attributes and links."""

    id: Text = ""
    title: Text = ""
    attributes: EventAttributes
    links: EventLinks = Field(default_factory=EventLinks)
    slack_id: Text = ""


class CloseEventRequest(WireModel):
    """Body of ``POST /event/{id}/close`` (our server): the final status (a
    ``FINISH_STATUSES`` name) and a line to append to the event's message."""

    status: StatusField = Status.STATUS_UNSPECIFIED  # type: ignore[valid-type]
    message: Text = ""


class ChangelogRequest(WireModel):
    """Body of ``POST /event/{id}/changelog``."""

    entry: ChangelogEntry


class ApprovalRequest(WireModel):
    """Body of ``POST /event/{id}/approve`` and ``/reject`` (our server): why, optionally."""

    comment: Text = ""


class SlackIdRequest(WireModel):
    """Body of ``POST /event/{id}/slack``."""

    slack_id: Text = ""


class EventResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    event: Event | None = None


class DeleteEventResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    id: Text = ""
    slack_id: Text = ""


class EventListResponse(WireModel):
    """Answer of list, today and search; ``totalCount`` is a 32-bit number.

    Our extensions (performance issue): ``totalCountExact`` is false when ``totalCount`` is
    an estimate (a filter matching more events than the server counts exactly), and
    ``nextCursor`` is the keyset cursor of the next page ("" on the last one): pass it back
    as ``cursor`` to page without an offset.
    """

    model_config = BUILT_ON_FIRST_USE

    events: list[Event] = Field(default_factory=new_list)
    total_count: int = 0
    total_count_exact: bool = True
    next_cursor: Text = ""


class ChangelogListResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    changelog: list[ChangelogEntry] = Field(default_factory=new_list)
    total_count: int = 0
