"""The wire vocabulary: enums, status words and the scalar encodings (standard library only).

Importing this module builds no pydantic model, so a CLI option can check an
environment or a status without loading pydantic; the models use the same classes.
See ``tracker_ci.models`` for the encoding rules.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Self

__all__ = [
    "API_PREFIX",
    "CLOSED_STATUSES",
    "CLOSING_STATUSES",
    "DURATION_STATUSES",
    "ENVIRONMENT_NAME",
    "FINISH_STATUSES",
    "LOCKING_TYPES",
    "NO_SUCH_ROUTE",
    "OPENING_STATUSES",
    "OPEN_STATUSES",
    "STATUS_ALIASES",
    "ChangeType",
    "Environment",
    "EventType",
    "Priority",
    "Status",
    "WireEnum",
    "close_attributes",
    "format_duration",
    "format_timestamp",
    "parse_duration",
    "parse_finish_status",
    "replacing_body",
    "takes_lock",
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
#: How our server's 404 for a path it does not serve begins (an older server without a
#: route the client tries: ``POST /event/{id}/close``), unlike a record's 404.
NO_SUCH_ROUTE = "no such route"


def close_attributes(
    attributes: dict[str, Any], status: str, message: str | None, end_date: str
) -> dict[str, Any]:
    """An event's wire attributes closed with ``status``: ``message`` appended to its
    message on a line of its own, and its end date ``end_date`` unless it has one. The one
    rule of closing, for ``deploy finish``'s ``PUT /event`` and the server's
    ``POST /event/{id}/close``."""
    closed = {**attributes, "status": status}
    if message:
        old = closed.get("message") or ""
        closed["message"] = f"{old}\n{message}" if old else message
    if closed.get("endDate") is None:
        closed["endDate"] = end_date
    return closed


def replacing_body(
    wire: Mapping[str, Any], attributes: dict[str, Any], event_id: str = ""
) -> dict[str, Any]:
    """The ``PUT /event`` body (``UpdateEventRequest`` as ``to_wire()`` writes it) that
    replaces an event, given in its wire form, with ``attributes``: its title, links and
    Slack id kept; its id unless ``event_id`` is given. For ``deploy finish``'s ``PUT`` and
    the server's ``POST /event/{id}/close`` alike."""
    metadata = wire["metadata"]
    return {
        "id": event_id or metadata["id"],
        "title": wire["title"],
        "attributes": attributes,
        "links": wire["links"],
        "slackId": metadata["slackId"],
    }


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


def takes_lock(event_type: Any, status: Any) -> bool:
    """Whether creating an event of this type and status takes the automatic lock (the
    one rule, CONTRACT.md: a deployment or operation opened with start or in_progress)."""
    return event_type in LOCKING_TYPES and status in OPENING_STATUSES


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
    seconds: Any = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text[:-1] if text.endswith("s") else text)
        except ValueError:
            pass
    if seconds is not None:
        try:
            return timedelta(seconds=seconds)
        except OverflowError:  # beyond timedelta's 999,999,999 days, or infinite
            raise ValueError(f"{value!r} is out of range (at most 999999999 days)") from None
        except ValueError:  # NaN
            pass
    raise ValueError(f'{value!r} is not a duration (e.g. "12.5s")')
