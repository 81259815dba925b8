"""Wire models of the Tracker REST API (v1alpha1): the single source of truth.

Both the client (``tracker_ci.client``) and the bundled server (``tracker_server``)
use these classes, so the two can never disagree about the wire format.

The encoding is upstream's grpc-gateway one (see the project's CONTRACT notes):

* field names are lowerCamelCase out, camelCase or snake_case in; unknown fields are
  ignored;
* enums are written by name and read by name or number;
* timestamps are RFC 3339 in UTC ending in ``Z``;
* a duration is a string of seconds with an ``s`` suffix (``"125.402113945s"``);
* 64-bit integers (stats counts, the unlock count) are JSON strings;
* every field is always present in a response.

Extensions of our own server (lock TTLs, tokens) are extra fields that an upstream
client ignores.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "API_PREFIX",
    "ENVIRONMENT_NAME",
    "ActiveFreeze",
    "ActiveFreezesResponse",
    "MAX_CHANGES",
    "ChangeKind",
    "DoraLevel",
    "DoraReport",
    "Percentiles",
    "ShippedChange",
    "CLOSED_STATUSES",
    "CLOSING_STATUSES",
    "DURATION_STATUSES",
    "FINISH_STATUSES",
    "LOCKING_TYPES",
    "OPENING_STATUSES",
    "OPEN_STATUSES",
    "STATUS_ALIASES",
    "ChangeType",
    "ChangelogEntry",
    "ChangelogListResponse",
    "ChangelogRequest",
    "CreateEventRequest",
    "CreateLockRequest",
    "DeleteEventResponse",
    "Environment",
    "ErrorBody",
    "Event",
    "EventAttributes",
    "EventLinks",
    "EventListResponse",
    "EventMetadata",
    "EventResponse",
    "EventType",
    "HealthResponse",
    "Lock",
    "LockListResponse",
    "LockResponse",
    "MonthlyStat",
    "MonthlyStatsResponse",
    "Priority",
    "ReleaseLockRequest",
    "RenewLockRequest",
    "SlackIdRequest",
    "StatsResponse",
    "Status",
    "TokenCreateRequest",
    "TokenCreatedResponse",
    "TokenInfo",
    "TokenListResponse",
    "TokenResponse",
    "UnlockResponse",
    "QUEUE_POLICIES",
    "QueueEntry",
    "QueueRequest",
    "QueueResponse",
    "LockStatusResponse",
    "QueuePolicy",
    "QueuePolicyListResponse",
    "EvictLockRequest",
    "FreezeType",
    "FreezeScope",
    "FreezeWindow",
    "FreezeWindowResponse",
    "FreezeWindowListResponse",
    "UpdateEventRequest",
    "UpdateLockRequest",
    "WEBHOOK_EVENTS",
    "WEBHOOK_KINDS",
    "Webhook",
    "WebhookCreateRequest",
    "WebhookDelivery",
    "WebhookDeliveryListResponse",
    "WebhookListResponse",
    "WebhookResponse",
    "format_duration",
    "format_timestamp",
    "parse_duration",
    "parse_finish_status",
    "utcnow",
]

API_PREFIX = "/api/v1alpha1"


# --------------------------------------------------------------------------- enums
class WireEnum(str, enum.Enum):  # noqa: UP042 (ignored by pyproject too)
    """An enum written by name; read by name or by its protobuf number."""

    @classmethod
    def numbers(cls) -> dict[int, Self]:
        return {i: member for i, member in enumerate(cls)}

    @property
    def number(self) -> int:
        """The protobuf number (-1 for a name outside the enum, see Environment)."""
        members = list(type(self))
        return members.index(self) if self in members else -1

    @classmethod
    def parse(cls, value: Any) -> Self:
        """Turn a name, a number or a numeric string into a member, or raise ValueError."""
        if isinstance(value, cls):
            return value
        if isinstance(value, bool):
            pass  # a JSON true/false is never an enum, though bool subclasses int
        elif isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            number = int(value)
            members = cls.numbers()
            if number in members:
                return members[number]
        elif isinstance(value, str):
            for member in cls:
                if member.value == value:
                    return member
            # Be forgiving about case ("Production", "p1") but keep the wire name.
            for member in cls:
                if member.value.lower() == value.lower():
                    return member
        names = ", ".join(m.value for m in cls if not m.value.endswith("_UNSPECIFIED"))
        raise ValueError(f"{value!r} is not a valid {cls.label()}; use one of: {names}")

    @classmethod
    def label(cls) -> str:
        """The enum's name for messages: ``EventType`` -> ``event type``."""
        return re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).lower()

    @classmethod
    def parse_wire(cls, value: Any) -> Self:
        """Like :meth:`parse`, but a JSON null or ``""`` is the unspecified member.

        Upstream's gateway reads both as "not set" (proto3's zero), and upstream clients
        send them for empty inputs.
        """
        if value is None or value == "":
            return next(iter(cls))
        return cls.parse(value)

    @classmethod
    def other_names(cls) -> str:
        """What else a user may type besides :meth:`choices` ("" when nothing else)."""
        return ""

    @classmethod
    def choices(cls) -> list[str]:
        """The names a user may type (the unspecified member left out)."""
        return [m.value for m in cls if not m.value.endswith("_UNSPECIFIED")]

    def __str__(self) -> str:
        return self.value


# Order matters: a member's position is its protobuf number.
class EventType(WireEnum):
    TYPE_UNSPECIFIED = "TYPE_UNSPECIFIED"
    deployment = "deployment"
    operation = "operation"
    drift = "drift"
    incident = "incident"
    rpa_usage = "rpa_usage"


class Priority(WireEnum):
    PRIORITY_UNSPECIFIED = "PRIORITY_UNSPECIFIED"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"
    P5 = "P5"


class Status(WireEnum):
    STATUS_UNSPECIFIED = "STATUS_UNSPECIFIED"
    start = "start"
    failure = "failure"
    success = "success"
    warning = "warning"
    error = "error"
    snapshot = "snapshot"
    user_update = "user_update"
    recommandation = "recommandation"  # upstream's spelling
    open = "open"
    close = "close"
    done = "done"
    in_progress = "in_progress"
    planned = "planned"
    waiting_approval = "waiting_approval"


class Environment(WireEnum):
    """Upstream's eight environments keep their names and numbers on the wire; our server
    also takes any other name matching :data:`ENVIRONMENT_NAME` (``staging``, ``eu-west-1``),
    stored and searched as given. Such a name parses to a member of its own, outside the
    enum's list (``custom`` is True, ``number`` is -1), so every ``.value`` keeps working."""

    ENVIRONMENT_UNSPECIFIED = "ENVIRONMENT_UNSPECIFIED"
    development = "development"
    integration = "integration"
    TNR = "TNR"
    UAT = "UAT"
    recette = "recette"
    preproduction = "preproduction"
    production = "production"
    mco = "mco"

    @classmethod
    def parse(cls, value: Any) -> Self:
        try:
            return super().parse(value)
        except ValueError:
            if isinstance(value, str) and ENVIRONMENT_NAME.fullmatch(value) and not value.isdigit():
                return cls._named(value)
            names = ", ".join(cls.choices())
            raise ValueError(
                f"{value!r} is not a valid environment: one of {names}, or (our server) a "
                "name of letters, digits, '.', '_' and '-', starting with a letter or digit, "
                "at most 32 characters"
            ) from None

    @classmethod
    def other_names(cls) -> str:
        return "on the bundled server, a name like staging or eu-west-1"

    @classmethod
    def _named(cls, name: str) -> Self:
        """The member of a name outside the eight (one per name, kept for identity)."""
        member = cls._value2member_map_.get(name)
        if member is None:
            member = str.__new__(cls, name)
            member._name_ = name
            member._value_ = name
            cls._value2member_map_[name] = member
        return member  # type: ignore[return-value]

    @property
    def custom(self) -> bool:
        """A name outside upstream's eight: only our server stores it."""
        return self.value not in type(self)._member_map_


#: Any environment name our server takes (upstream's eight are names of it too).
ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


class ChangeType(WireEnum):
    CHANGE_TYPE_UNSPECIFIED = "CHANGE_TYPE_UNSPECIFIED"
    created = "created"
    updated = "updated"
    status_changed = "status_changed"
    approved = "approved"
    rejected = "rejected"
    commented = "commented"
    linked = "linked"
    locked = "locked"
    unlocked = "unlocked"


# ------------------------------------------------------------ status vocabulary
# The one list of status words every surface accepts: the CLI's ``deploy finish``, the
# GitHub Action, the GitLab templates and the server all read these names.

#: What CI systems call a job's result, mapped to a Tracker status (GitHub's
#: ``job.status``, GitLab's ``CI_JOB_STATUS``); "success" is already both.
STATUS_ALIASES: dict[str, str] = {
    "failed": "failure",
    "cancelled": "failure",
    "canceled": "failure",
    "timedout": "failure",
}
#: The statuses a deployment may be finished with (``start`` or ``planned`` would leave an
#: event that still looks open).
FINISH_STATUSES: tuple[str, ...] = ("success", "failure", "warning", "error", "close", "done")
#: The statuses on which the server ends a deployment: it releases the automatic lock and
#: sets the duration; an event in one of them was closed before and is not closed again.
CLOSED_STATUSES: tuple[str, ...] = ("failure", "success", "done")
#: The statuses of a deployment that is still running (they take the automatic lock).
OPEN_STATUSES: tuple[str, ...] = ("start", "in_progress")


def parse_finish_status(word: str) -> Status:
    """The status a deployment is finished with: a FINISH_STATUSES name or a CI alias.

    Case-insensitive; anything else raises ValueError with a one-line message that lists
    the accepted words.
    """
    text = str(word).strip().lower()
    text = STATUS_ALIASES.get(text, text)
    if text not in FINISH_STATUSES:
        accepted = ", ".join([*FINISH_STATUSES, *STATUS_ALIASES])
        raise ValueError(
            f"{word!r} is not a valid status to finish a deployment with; use one of: {accepted}"
        )
    return Status(text)


#: Statuses that open a deployment (and take its automatic lock).
OPENING_STATUSES = frozenset(Status(name) for name in OPEN_STATUSES)
#: Statuses that close a deployment (and release its automatic lock).
CLOSING_STATUSES = frozenset(Status(name) for name in CLOSED_STATUSES)
#: Statuses on which the server computes the event's own duration.
DURATION_STATUSES = frozenset({Status.success, Status.failure})
#: Event types that take the automatic lock; the lock's resource is the type's name.
LOCKING_TYPES = frozenset({EventType.deployment, EventType.operation})


def _enum_field(cls: type[WireEnum], pattern: str = "") -> Any:
    names: dict[str, Any] = {"type": "string", "enum": [m.value for m in cls]}
    # Environment: any name of the pattern too (our server's extension).
    written = {"anyOf": [names, {"type": "string", "pattern": pattern}]} if pattern else names
    return Annotated[
        cls,
        BeforeValidator(cls.parse_wire),
        WithJsonSchema(
            {
                "anyOf": [
                    *written.get("anyOf", [written]),
                    {"type": "integer", "minimum": 0, "maximum": len(cls) - 1},
                ],
                "title": cls.__name__,
            },
            mode="validation",
        ),
        WithJsonSchema(written, mode="serialization"),
    ]


if TYPE_CHECKING:  # to a type checker, a field is its enum
    EventTypeField = EventType
    PriorityField = Priority
    StatusField = Status
    EnvironmentField = Environment
    ChangeTypeField = ChangeType
else:
    EventTypeField = _enum_field(EventType)
    PriorityField = _enum_field(Priority)
    StatusField = _enum_field(Status)
    EnvironmentField = _enum_field(Environment, f"^{ENVIRONMENT_NAME.pattern}$")
    ChangeTypeField = _enum_field(ChangeType)


# --------------------------------------------------------------------- scalars
def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``: no fraction when there is none, else 6 digits."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    spec = "microseconds" if value.microsecond else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _parse_timestamp(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        # Python keeps microseconds: cut nanoseconds ("...123456789Z") before parsing.
        value = _FRACTION.sub(r"\1", value.strip())
        if value.endswith(("z", "Z")):
            value = value[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an RFC 3339 timestamp (e.g. 2026-01-31T12:00:00Z)"
            ) from None
        value = parsed
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError(
                f"{value.isoformat()} is out of range once converted to UTC "
                "(years 1 to 9999 in UTC)"
            ) from None
    return value


Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def format_duration(value: timedelta) -> str:
    """Protobuf JSON duration: seconds with up to 9 fractional digits and an ``s``."""
    seconds = value.total_seconds()
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text}s"


def parse_duration(value: Any) -> timedelta | None:
    """Read ``"12.5s"`` (or a number of seconds) into a timedelta."""
    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("s"):
            text = text[:-1]
        try:
            return timedelta(seconds=float(text))
        except ValueError:
            pass
    raise ValueError(f'{value!r} is not a duration (e.g. "12.5s")')


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d{1,9})?s$"}),
]


def _parse_int64(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


Int64 = Annotated[
    int,
    BeforeValidator(_parse_int64),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+$"}, mode="serialization"),
]


def _none_to_empty(value: Any) -> Any:
    return "" if value is None else value


def _none_to_list(value: Any) -> Any:
    return [] if value is None else value


def _none_to_false(value: Any) -> Any:
    return False if value is None else value


def _valid_unicode(value: str) -> str:
    # JSON may escape half of a UTF-16 pair ("\ud800"): no database can store it.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"contains a lone surrogate ({value[exc.start]!a}) at character {exc.start}; "
            "send valid Unicode"
        ) from None
    return value


def _strict_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError(f"must be a boolean (true or false), not {value!r}")
    return value


def _not_bool(value: Any) -> Any:
    # JSON true is not the number 1.
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, not {str(value).lower()}")
    return value


Text = Annotated[str, BeforeValidator(_none_to_empty), AfterValidator(_valid_unicode)]
TextList = Annotated[
    list[Annotated[str, AfterValidator(_valid_unicode)]], BeforeValidator(_none_to_list)
]
Flag = Annotated[bool, BeforeValidator(_strict_bool), BeforeValidator(_none_to_false)]
#: A whole number on the wire (a JSON number or a string of digits, never true/false).
WholeNumber = Annotated[int, BeforeValidator(_not_bool)]


# ---------------------------------------------------------------------- models
class WireModel(BaseModel):
    """camelCase out, camelCase or snake_case in, unknown fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        use_enum_values=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict, camelCase, every field present."""
        return self.model_dump(mode="json", by_alias=True)


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
    stake_holders: TextList = Field(default_factory=list)
    notification: Flag = False
    notifications: TextList = Field(default_factory=list)
    #: Our extensions (sent only to our server): the deployed revision and what it shipped.
    revision: Text = ""
    changes: Annotated[
        list[ShippedChange], BeforeValidator(_none_to_list), Field(max_length=MAX_CHANGES)
    ] = Field(default_factory=list)


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
    changelog: list[ChangelogEntry] = Field(default_factory=list)

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


class ChangelogRequest(WireModel):
    """Body of ``POST /event/{id}/changelog``."""

    entry: ChangelogEntry


class SlackIdRequest(WireModel):
    """Body of ``POST /event/{id}/slack``."""

    slack_id: Text = ""


class EventResponse(WireModel):
    event: Event | None = None


class DeleteEventResponse(WireModel):
    id: Text = ""
    slack_id: Text = ""


class EventListResponse(WireModel):
    """Answer of list, today and search; ``totalCount`` is a 32-bit number.

    Our extensions (performance issue): ``totalCountExact`` is false when ``totalCount`` is
    an estimate (a filter matching more events than the server counts exactly), and
    ``nextCursor`` is the keyset cursor of the next page ("" on the last one): pass it back
    as ``cursor`` to page without an offset.
    """

    events: list[Event] = Field(default_factory=list)
    total_count: int = 0
    total_count_exact: bool = True
    next_cursor: Text = ""


class ChangelogListResponse(WireModel):
    changelog: list[ChangelogEntry] = Field(default_factory=list)
    total_count: int = 0


class StatsResponse(WireModel):
    total_count: Int64 = 0
    start_date: Text = ""
    end_date: Text = ""


class MonthlyStat(WireModel):
    year: int = 0
    month: int = 0
    count: Int64 = 0
    service: Text = ""


class MonthlyStatsResponse(WireModel):
    stats: list[MonthlyStat] = Field(default_factory=list)
    total_count: Int64 = 0
    start_date: Text = ""
    end_date: Text = ""


# ----------------------------------------------------------------------- locks
class Lock(WireModel):
    """A deployment lock. ``expiresAt`` is our extension (null: never expires)."""

    id: Text = ""
    service: Text = ""
    who: Text = ""
    created_at: Timestamp | None = None
    environment: Text = ""
    resource: Text = ""
    event_id: Text = ""
    expires_at: Timestamp | None = None
    #: Our extensions (queue issue): the grant's fencing token (only grows per key), why
    #: it is held, and the CI job holding it.
    fence: int = 0
    reason: Text = ""
    job_url: Text = ""


class CreateLockRequest(WireModel):
    """Body of ``POST /lock``; ``ttlSeconds`` is our extension (0 or absent: no expiry)."""

    service: Text = ""
    who: Text = ""
    environment: Text = ""
    resource: Text = ""
    event_id: Text = ""
    ttl_seconds: Annotated[WholeNumber, Field(ge=0, le=7 * 24 * 3600)] = 0
    #: Extensions: why, the CI job, and a reason to pass a hard freeze.
    reason: Text = ""
    job_url: Text = ""
    break_glass: Text = ""
    #: The caller's queue ticket when its turn came (the waiter sends it).
    queue_ticket: Text = ""


class UpdateLockRequest(WireModel):
    """Body of ``PUT /lock/{id}``: empty fields keep their value."""

    service: Text = ""
    who: Text = ""
    environment: Text = ""
    resource: Text = ""
    event_id: Text = ""


class RenewLockRequest(WireModel):
    """Body of ``POST /lock/{id}/renew`` (extension): the new TTL from now."""

    ttl_seconds: Annotated[WholeNumber, Field(gt=0, le=7 * 24 * 3600)]


class ReleaseLockRequest(WireModel):
    """Body of ``POST /unlock`` (extension): release by key, naming the holder.

    ``who`` must match the holder; when ``id`` or ``eventId`` is given it must match
    too, so a job can never release a lock another job took after its own expired.
    """

    service: Text = ""
    environment: Text = ""
    resource: Text = "deployment"
    who: Text = ""
    id: Text = ""
    event_id: Text = ""


class LockResponse(WireModel):
    lock: Lock | None = None


class UnlockResponse(WireModel):
    message: Text = ""
    id: Text = ""
    count: Int64 = 0


class LockListResponse(WireModel):
    locks: list[Lock] = Field(default_factory=list)
    total_count: int = 0


# ------------------------------------------------------- lock queue and freeze windows
#: How waiters of one environment (optionally one service) are served.
QUEUE_POLICIES: tuple[str, ...] = ("fifo", "newest")


class QueueEntry(WireModel):
    """One waiter in a lock's queue (extension); ``position`` is 1-based."""

    ticket: Text = ""
    position: int = 0
    who: Text = ""
    since: Timestamp | None = None
    reason: Text = ""
    job_url: Text = ""
    state: Text = "waiting"
    expected_wait_seconds: float | None = None


class QueueRequest(WireModel):
    """Body of ``POST /lock/queue`` (extension): join (no ticket) or heartbeat and wait
    up to ``waitSeconds`` for the turn (a long poll)."""

    service: Text = ""
    environment: Text = ""
    resource: Text = ""
    who: Text = ""
    reason: Text = ""
    job_url: Text = ""
    ticket: Text = ""
    wait_seconds: Annotated[float, Field(ge=0, le=60)] = 0
    #: A waiter that will break glass is not held back by a hard freeze.
    break_glass: Text = ""


class QueueResponse(WireModel):
    """The caller's ticket (``state`` waiting or granted), the holder and the queue."""

    ticket: QueueEntry | None = None
    lock: Lock | None = None
    queue: list[QueueEntry] = Field(default_factory=list)
    frozen_by: Text = ""


class LockStatusResponse(WireModel):
    """``GET /locks/status`` (extension): the holder and who waits, in order."""

    locked: Flag = False
    lock: Lock | None = None
    queue: list[QueueEntry] = Field(default_factory=list)
    policy: Text = "fifo"


class EvictLockRequest(WireModel):
    """Body of ``POST /lock/{id}/evict`` (extension): who evicts a dead holder, and why."""

    by: Text = ""
    why: Text = ""


class QueuePolicy(WireModel):
    """A queue policy for an environment (all services when ``service`` is empty)."""

    environment: Text = ""
    service: Text = ""
    policy: Text = "fifo"


class QueuePolicyListResponse(WireModel):
    policies: list[QueuePolicy] = Field(default_factory=list)
    total_count: int = 0


class FreezeType(WireEnum):
    FREEZE_TYPE_UNSPECIFIED = "FREEZE_TYPE_UNSPECIFIED"
    FREEZE_TYPE_HARD = "FREEZE_TYPE_HARD"
    FREEZE_TYPE_SOFT = "FREEZE_TYPE_SOFT"


class FreezeScope(WireEnum):
    FREEZE_SCOPE_UNSPECIFIED = "FREEZE_SCOPE_UNSPECIFIED"
    FREEZE_SCOPE_GLOBAL = "FREEZE_SCOPE_GLOBAL"
    FREEZE_SCOPE_ENVIRONMENT = "FREEZE_SCOPE_ENVIRONMENT"
    FREEZE_SCOPE_SERVICE = "FREEZE_SCOPE_SERVICE"
    FREEZE_SCOPE_DOMAIN = "FREEZE_SCOPE_DOMAIN"


if TYPE_CHECKING:
    FreezeTypeField = FreezeType
    FreezeScopeField = FreezeScope
else:
    FreezeTypeField = _enum_field(FreezeType)
    FreezeScopeField = _enum_field(FreezeScope)


class FreezeWindow(WireModel):
    """A freeze window in the wire shape of upstream's freeze branch; ``cronStart`` /
    ``cronEnd`` (5-field cron in ``timezone``) are our recurrence extension."""

    id: Text = ""
    title: Text = ""
    description: Text = ""
    type: FreezeTypeField = FreezeType.FREEZE_TYPE_UNSPECIFIED  # type: ignore[valid-type]
    scope_type: FreezeScopeField = FreezeScope.FREEZE_SCOPE_UNSPECIFIED  # type: ignore[valid-type]
    scope_ids: TextList = Field(default_factory=list)
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    timezone: Text = ""
    created_by: Text = ""
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    active: Flag = True
    cron_start: Text = ""
    cron_end: Text = ""


class FreezeWindowResponse(WireModel):
    freeze_window: FreezeWindow | None = None


class FreezeWindowListResponse(WireModel):
    freeze_windows: list[FreezeWindow] = Field(default_factory=list)
    total_count: int = 0


class ActiveFreeze(WireModel):
    """A window in force now, and when that stretch of it ends (None: until further notice)."""

    freeze_window: FreezeWindow
    until: Timestamp | None = None


class ActiveFreezesResponse(WireModel):
    """``GET /freeze-windows/active`` (extension): the windows in force now, in scope."""

    freezes: list[ActiveFreeze] = Field(default_factory=list)


# ---------------------------------------------------------------------- tokens
class TokenCreateRequest(WireModel):
    """Body of ``POST /tokens`` (extension)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    services: TextList = Field(default_factory=list)
    admin: Flag = False
    #: A token that may only read (dashboards, scripts).
    read_only: Flag = False


class TokenInfo(WireModel):
    """A token as listed: never its secret."""

    id: Text = ""
    name: Text = ""
    services: TextList = Field(default_factory=list)
    admin: Flag = False
    created_at: Timestamp | None = None
    last_used_at: Timestamp | None = None
    prefix: Text = ""
    read_only: Flag = False


class TokenCreatedResponse(WireModel):
    token: TokenInfo
    secret: str


class TokenResponse(WireModel):
    """Answer of ``DELETE /tokens/{id}`` (extension): the revoked token."""

    token: TokenInfo | None = None


class TokenListResponse(WireModel):
    tokens: list[TokenInfo] = Field(default_factory=list)
    total_count: int = 0


# ---------------------------------------------------------------------- webhooks
#: The notifications a webhook can subscribe to (``*`` patterns allowed: ``lock.*``).
WEBHOOK_EVENTS: tuple[str, ...] = (
    "deployment.started",
    "deployment.finished",
    "lock.acquired",
    "lock.released",
    "lock.expired",
    "lock.evicted",
    "queue.joined",
    "queue.superseded",
    "freeze.started",
    "freeze.ended",
    "freeze.broken",
    "alert.fired",
)
#: Where a webhook delivers: its URL's receiver speaks one of these.
WEBHOOK_KINDS: tuple[str, ...] = ("generic", "slack", "github-deployments", "grafana", "influx")


class WebhookCreateRequest(WireModel):
    """Body of ``POST /webhooks`` (extension). ``secret``: the HMAC key (generic) or the
    receiver's token (GitHub, Grafana, InfluxDB); it is never shown back."""

    url: Text = ""
    events: TextList = Field(default_factory=list)
    kind: Text = "generic"
    service: Text = ""
    environment: Text = ""
    secret: Text = ""


class Webhook(WireModel):
    """A subscription as listed: never its secret, only whether it has one."""

    id: Text = ""
    url: Text = ""
    kind: Text = ""
    events: TextList = Field(default_factory=list)
    service: Text = ""
    environment: Text = ""
    has_secret: Flag = False
    created_at: Timestamp | None = None
    failing: int = 0


class WebhookResponse(WireModel):
    webhook: Webhook


class WebhookListResponse(WireModel):
    webhooks: list[Webhook] = Field(default_factory=list)
    total_count: int = 0


class WebhookDelivery(WireModel):
    """One notification to one webhook: its id is the same on every attempt."""

    id: Text = ""
    webhook_id: Text = ""
    type: Text = ""
    state: Text = ""
    attempts: int = 0
    created_at: Timestamp | None = None
    last_attempt_at: Timestamp | None = None
    response_code: int | None = None
    error: Text = ""
    next_attempt_at: Timestamp | None = None
    #: The notification as the generic sink sends it (less its ``sentAt``).
    body: dict[str, Any] | None = None


class WebhookDeliveryListResponse(WireModel):
    deliveries: list[WebhookDelivery] = Field(default_factory=list)
    total_count: int = 0


# ---------------------------------------------------------------------- health
class HealthResponse(WireModel):
    """Answer of ``GET /health`` (extension): the server and its database are up."""

    status: Text = ""
    database: Text = ""
    version: Text = ""


# ---------------------------------------------------------------------- errors
class ErrorBody(WireModel):
    """The one error body: ``{"code": <gRPC code>, "message": "...", "details": []}``."""

    code: int
    message: str
    details: list[Any] = Field(default_factory=list)


# ------------------------------------------------------------------ insights
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
