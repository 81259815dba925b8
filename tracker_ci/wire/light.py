"""The hot answers (and bodies) without pydantic: plain records, checked against the models.

A pipeline's short commands (``lock release``, the counts of releases and evictions...)
send one small body, read one small answer and exit. The first pydantic model a process
builds costs it ~50-60 ms of CPU on the development machine (pydantic's machinery, its
schema builder, its plugin lookup), more than everything else such a command adds to the
~120 ms of importing httpx, pydantic (lazily) and click; so these are read and written
here with ``json`` and the standard library.

The models in ``tracker_ci.wire`` stay the one definition of the wire format: ``RECORDS``
is a table of the same fields (attribute, camelCase name, kind, default) for the records
made here, and ``tests/client/test_light_answers.py`` derives that table from the pydantic
models and asserts it is equal, and decodes real answers of the bundled server both ways.
The scalar rules are shared, not copied: timestamps with :func:`parse_timestamp` (which
``wire.base`` uses too), durations and enums with ``wire.vocabulary``.

A record reads like its model (``lock.created_at``, ``event.attributes.status``,
``event.id``), writes the same JSON (``to_wire()``), and becomes the model on demand
(``model()``). Differences, all for values no Tracker sends: a timestamp must be an
RFC 3339 string (pydantic also reads a number as Unix time), and the decoder stops at
the first problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from tracker_ci.wire import vocabulary
from tracker_ci.wire.vocabulary import format_duration, format_timestamp, parse_duration

__all__ = [
    "RECORDS",
    "Record",
    "RecordError",
    "build",
    "decode",
    "parse_timestamp",
]


class RecordError(ValueError):
    """A value that does not fit its record (an answer, a body); ``where`` is the field's
    path."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(value: Any) -> Any:
    """RFC 3339 text (or a datetime) as an aware UTC datetime; None or "" as None.

    The one reading of a wire timestamp: ``wire.base.Timestamp`` validates with it too.
    """
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


#: Each record's fields: (attribute, wire name, kind, default). Kinds: ``text`` (a string,
#: null read as ""), ``int`` (a whole number, or its digits as a string), ``int64`` (the
#: same, written as a string), ``float?``, ``flag`` (true/false only, null as false),
#: ``bool``, ``timestamp?``, ``duration?``, ``texts`` (a list of strings, null as []),
#: ``enum:<vocabulary enum>``, ``choice:<a|b|c>`` (one of these strings),
#: ``record:<R>``, ``record?:<R>`` (or null), ``records:<R>`` (a list), ``records?<N>:<R>``
#: (a list, null as [], at most N). A default of ``None`` for a record or a list means a
#: fresh empty one.
RECORDS: dict[str, tuple[tuple[str, str, str, Any], ...]] = {
    "Lock": (
        ("id", "id", "text", ""),
        ("service", "service", "text", ""),
        ("who", "who", "text", ""),
        ("created_at", "createdAt", "timestamp?", None),
        ("environment", "environment", "text", ""),
        ("resource", "resource", "text", ""),
        ("event_id", "eventId", "text", ""),
        ("expires_at", "expiresAt", "timestamp?", None),
        ("fence", "fence", "int", 0),
        ("reason", "reason", "text", ""),
        ("job_url", "jobUrl", "text", ""),
    ),
    "LockResponse": (("lock", "lock", "record?:Lock", None),),
    "UnlockResponse": (
        ("message", "message", "text", ""),
        ("id", "id", "text", ""),
        ("count", "count", "int64", 0),
    ),
    "LockListResponse": (
        ("locks", "locks", "records:Lock", None),
        ("total_count", "totalCount", "int", 0),
    ),
    "QueueEntry": (
        ("ticket", "ticket", "text", ""),
        ("position", "position", "int", 0),
        ("who", "who", "text", ""),
        ("since", "since", "timestamp?", None),
        ("reason", "reason", "text", ""),
        ("job_url", "jobUrl", "text", ""),
        ("state", "state", "text", "waiting"),
        ("expected_wait_seconds", "expectedWaitSeconds", "float?", None),
    ),
    "QueueResponse": (
        ("ticket", "ticket", "record?:QueueEntry", None),
        ("lock", "lock", "record?:Lock", None),
        ("queue", "queue", "records:QueueEntry", None),
        ("frozen_by", "frozenBy", "text", ""),
        ("granted", "granted", "record?:Lock", None),
        ("event", "event", "record?:Event", None),
    ),
    "ShippedChange": (
        ("kind", "kind", "choice:pull_request|merge_request|commit", "commit"),
        ("id", "id", "text", ""),
        ("url", "url", "text", ""),
        ("title", "title", "text", ""),
        ("author", "author", "text", ""),
        ("committed_at", "committedAt", "timestamp?", None),
        ("merged_at", "mergedAt", "timestamp?", None),
    ),
    "EventAttributes": (
        ("message", "message", "text", ""),
        ("source", "source", "text", ""),
        ("type", "type", "enum:EventType", "TYPE_UNSPECIFIED"),
        ("priority", "priority", "enum:Priority", "PRIORITY_UNSPECIFIED"),
        ("related_id", "relatedId", "text", ""),
        ("service", "service", "text", ""),
        ("status", "status", "enum:Status", "STATUS_UNSPECIFIED"),
        ("environment", "environment", "enum:Environment", "ENVIRONMENT_UNSPECIFIED"),
        ("impact", "impact", "flag", False),
        ("start_date", "startDate", "timestamp?", None),
        ("end_date", "endDate", "timestamp?", None),
        ("owner", "owner", "text", ""),
        ("stake_holders", "stakeHolders", "texts", None),
        ("notification", "notification", "flag", False),
        ("notifications", "notifications", "texts", None),
        ("revision", "revision", "text", ""),
        ("changes", "changes", "records?100:ShippedChange", None),
    ),
    "EventLinks": (
        ("pull_request_link", "pullRequestLink", "text", ""),
        ("ticket", "ticket", "text", ""),
    ),
    "EventMetadata": (
        ("created_at", "createdAt", "timestamp?", None),
        ("duration", "duration", "duration?", None),
        ("id", "id", "text", ""),
        ("slack_id", "slackId", "text", ""),
    ),
    "ChangelogEntry": (
        ("timestamp", "timestamp", "timestamp?", None),
        ("user", "user", "text", ""),
        ("change_type", "changeType", "enum:ChangeType", "CHANGE_TYPE_UNSPECIFIED"),
        ("field", "field", "text", ""),
        ("old_value", "oldValue", "text", ""),
        ("new_value", "newValue", "text", ""),
        ("comment", "comment", "text", ""),
    ),
    "Event": (
        ("title", "title", "text", ""),
        ("attributes", "attributes", "record:EventAttributes", None),
        ("links", "links", "record:EventLinks", None),
        ("metadata", "metadata", "record:EventMetadata", None),
        ("changelog", "changelog", "records:ChangelogEntry", None),
    ),
    "EventResponse": (("event", "event", "record?:Event", None),),
    "EventListResponse": (
        ("events", "events", "records:Event", None),
        ("total_count", "totalCount", "int", 0),
        ("total_count_exact", "totalCountExact", "bool", True),
        ("next_cursor", "nextCursor", "text", ""),
    ),
    # A body: what ``tracker-ci lock release -s -e`` sends (``build`` writes it).
    "ReleaseLockRequest": (
        ("service", "service", "text", ""),
        ("environment", "environment", "text", ""),
        ("resource", "resource", "text", "deployment"),
        ("who", "who", "text", ""),
        ("id", "id", "text", ""),
        ("event_id", "eventId", "text", ""),
    ),
    "HealthResponse": (
        ("status", "status", "text", ""),
        ("database", "database", "text", ""),
        ("version", "version", "text", ""),
    ),
}


class Record:
    """A decoded answer: the model's attributes, its JSON, and the model on demand."""

    __slots__ = ()
    #: Its name in ``RECORDS`` (the wire model's name) and its fields (underscored: a
    #: record's fields are in its slots, and may be named ``name``).
    _record_name: ClassVar[str] = ""
    _record_fields: ClassVar[tuple[tuple[str, str, str, Any], ...]] = ()

    if TYPE_CHECKING:  # the attributes are the table's: any name to a type checker

        def __getattr__(self, name: str) -> Any: ...

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict, camelCase, every field present: the model's ``to_wire()``."""
        return {
            wire: str(value) if kind == "int64" else _write(value)
            for attribute, wire, kind, _default in self._record_fields
            for value in (getattr(self, attribute),)
        }

    def model(self) -> Any:
        """The wire model of the same name, validated from this record's JSON (pydantic)."""
        from tracker_ci import models

        return getattr(models, self._record_name).model_validate(self.to_wire())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, a) == getattr(other, a) for a, _, _, _ in self._record_fields)

    def __repr__(self) -> str:
        shown = ", ".join(f"{a}={getattr(self, a)!r}" for a, _, _, _ in self._record_fields)
        return f"{self._record_name}({shown})"


def _write(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_wire()
    if isinstance(value, list):
        return [_write(item) for item in value]
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, vocabulary.WireEnum):
        return value.value
    if hasattr(value, "total_seconds"):
        return format_duration(value)
    return value


# ------------------------------------------------------------------ the readers
Reader = Callable[[Any, str], Any]


def _fail(where: str, problem: str) -> RecordError:
    return RecordError(where, problem)


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(where, f"must be a string, not {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(where, "contains a lone surrogate") from None
    return value


def _int(value: Any, where: str) -> int:
    # pydantic's lax int: true/false, whole floats and digits (spaces around) are read.
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    raise _fail(where, f"must be a whole number, not {value!r}")


def _float_or_none(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise _fail(where, f"must be a number or null, not {value!r}")


def _flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _fail(where, f"must be a boolean (true or false), not {value!r}")
    return value


_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise _fail(where, f"must be a boolean, not {value!r}")


def _timestamp(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(where, f"must be an RFC 3339 timestamp or null, not {value!r}")
    try:
        parsed = parse_timestamp(value)
    except ValueError as exc:
        raise _fail(where, str(exc)) from None
    if parsed is None:
        raise _fail(where, f"must be an RFC 3339 timestamp or null, not {value!r}")
    return parsed  # type: ignore[no-any-return]


def _duration(value: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        parsed = parse_duration(value)
    except ValueError as exc:
        raise _fail(where, str(exc)) from None
    if parsed is None:
        raise _fail(where, f"must be a duration or null, not {value!r}")
    return parsed


def _texts(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, f"must be a list, not {value!r}")
    return [_text_item(item, f"{where}.{index}") for index, item in enumerate(value)]


def _text_item(value: Any, where: str) -> str:
    if value is None:  # a null inside the list is no text
        raise _fail(where, "must be a string, not None")
    return _text(value, where)


def _enum(name: str) -> Reader:
    cls = getattr(vocabulary, name)

    def read(value: Any, where: str) -> Any:
        try:
            return cls.parse_wire(value)
        except ValueError as exc:
            raise _fail(where, str(exc)) from None

    return read


def _choice(names: str) -> Reader:
    allowed = tuple(names.split("|"))

    def read(value: Any, where: str) -> str:
        if value not in allowed:
            raise _fail(where, f"must be one of {', '.join(allowed)}, not {value!r}")
        return str(value)

    return read


def _nested(name: str, *, optional: bool) -> Reader:
    def read(value: Any, where: str) -> Any:
        if value is None and optional:
            return None
        return _record(name, value, where)

    return read


def _many(name: str, *, null_is_empty: bool, most: int | None) -> Reader:
    def read(value: Any, where: str) -> list[Any]:
        if value is None and null_is_empty:
            return []
        if not isinstance(value, list):
            raise _fail(where, f"must be a list, not {value!r}")
        if most is not None and len(value) > most:
            raise _fail(where, f"holds {len(value)} items, at most {most}")
        return [_record(name, item, f"{where}.{index}") for index, item in enumerate(value)]

    return read


_SCALARS: dict[str, Reader] = {
    "text": _text,
    "int": _int,
    "int64": _int,
    "float?": _float_or_none,
    "flag": _flag,
    "bool": _bool,
    "timestamp?": _timestamp,
    "duration?": _duration,
    "texts": _texts,
}


def _reader(kind: str) -> Reader:
    if kind in _SCALARS:
        return _SCALARS[kind]
    shape, _, target = kind.partition(":")
    if shape == "enum":
        return _enum(target)
    if shape == "choice":
        return _choice(target)
    if shape in ("record", "record?"):
        return _nested(target, optional=shape == "record?")
    if shape.startswith("records"):
        most = shape.removeprefix("records").removeprefix("?")
        return _many(target, null_is_empty="?" in shape, most=int(most) if most else None)
    raise ValueError(f"unknown kind {kind!r}")


def _default(kind: str, default: Any) -> Callable[[], Any]:
    """A maker of the field's default: a fresh record or list, else the value itself."""
    shape, _, target = kind.partition(":")
    if default is None and shape == "record":
        return lambda: _empty(target)
    if default is None and (shape.startswith("records") or kind == "texts"):
        return list
    if shape == "enum":
        member = getattr(vocabulary, target)(default)
        return lambda: member
    return lambda: default


_CLASSES: dict[str, type[Record]] = {}
_PLANS: dict[str, tuple[tuple[str, str, Reader, Callable[[], Any]], ...]] = {}


def _event_id(event: Any) -> str:
    return str(event.metadata.id)


#: What a record has besides its fields (as its model does): ``Event.id``.
_EXTRAS: dict[str, dict[str, Any]] = {"Event": {"id": property(_event_id)}}

for _name, _fields in RECORDS.items():
    _CLASSES[_name] = type(
        _name,
        (Record,),
        {
            "__slots__": tuple(field[0] for field in _fields),
            "_record_name": _name,
            "_record_fields": _fields,
            "__module__": __name__,
            **_EXTRAS.get(_name, {}),
        },
    )
    _PLANS[_name] = tuple(
        (attribute, wire, _reader(kind), _default(kind, default))
        for attribute, wire, kind, default in _fields
    )


def _empty(name: str) -> Record:
    record = object.__new__(_CLASSES[name])
    for attribute, _wire, _read, make in _PLANS[name]:
        object.__setattr__(record, attribute, make())
    return record


def _record(name: str, data: Any, where: str) -> Record:
    if not isinstance(data, Mapping):
        raise _fail(where, f"must be an object, not {data!r}"[:200])
    record = object.__new__(_CLASSES[name])
    for attribute, wire, read, make in _PLANS[name]:
        # The camelCase name first, then the snake_case one, as the models read them.
        if wire in data:
            value = read(data[wire], f"{where}.{wire}" if where else wire)
        elif attribute in data:
            value = read(data[attribute], f"{where}.{attribute}" if where else attribute)
        else:
            value = make()
        object.__setattr__(record, attribute, value)
    return record


def build(name: str, **values: Any) -> Any:
    """The record of the wire model ``name`` from attribute values, as the model would be
    made from them (a body written without pydantic); RecordError for a value it refuses."""
    unknown = sorted(set(values) - {field[0] for field in RECORDS[name]})
    if unknown:
        raise TypeError(f"{name} has no fields {unknown}")
    return _record(name, values, "")


def decode(name: str, content: bytes | str) -> Any:
    """The JSON answer ``content`` as the record of the wire model ``name``; RecordError
    when it is not JSON or does not fit."""
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise RecordError("", f"not JSON ({exc})") from None
    return _record(name, data, "")
