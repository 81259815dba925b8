"""The pydantic side of the wire format: the annotated field types and ``WireModel``.

Every wire model derives from :class:`WireModel`; the field types here carry the
encoding rules of ``tracker_ci.models`` (timestamps, durations, 64-bit strings, enums by
name or number, strict booleans, valid Unicode).
"""

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from tracker_ci.wire.light import parse_timestamp
from tracker_ci.wire.vocabulary import (
    ENVIRONMENT_NAME,
    ChangeType,
    Environment,
    EventType,
    Priority,
    Status,
    WireEnum,
    format_duration,
    format_timestamp,
    parse_duration,
)

__all__ = [
    "BUILT_ON_FIRST_USE",
    "ChangeTypeField",
    "Duration",
    "EnvironmentField",
    "EventTypeField",
    "Flag",
    "Int64",
    "PriorityField",
    "StatusField",
    "Text",
    "TextList",
    "Timestamp",
    "WholeNumber",
    "WireModel",
    "new_list",
    "none_to_list",
    "wire_enum_field",
]


def wire_enum_field(cls: type[WireEnum], pattern: str = "") -> Any:
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
    EventTypeField = wire_enum_field(EventType)
    PriorityField = wire_enum_field(Priority)
    StatusField = wire_enum_field(Status)
    EnvironmentField = wire_enum_field(Environment, f"^{ENVIRONMENT_NAME.pattern}$")
    ChangeTypeField = wire_enum_field(ChangeType)


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d{1,9})?s$"}),
]


def _int64_text(value: int) -> str:
    return str(value)


def _parse_int64(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


Int64 = Annotated[
    int,
    BeforeValidator(_parse_int64),
    PlainSerializer(_int64_text, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+$"}, mode="serialization"),
]


def new_list() -> list[Any]:
    """A fresh empty list: the ``default_factory`` of the list fields.

    Not ``list`` itself, nor ``str`` as a serializer: pydantic reads the signature of
    each, and a builtin's is parsed from its text signature with the tokenizer, whose
    regular expressions the first such parse compiles (milliseconds per process).
    """
    return []


def _none_to_empty(value: Any) -> Any:
    return "" if value is None else value


def none_to_list(value: Any) -> Any:
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
    list[Annotated[str, AfterValidator(_valid_unicode)]], BeforeValidator(none_to_list)
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


#: The ``model_config`` of an answer: its validator is built the first time it is used,
#: not at import. The models other models are made of (``Event``, ``Lock``, ``TokenInfo``...)
#: are built at import, once, and reused by every body and answer that holds them, so a
#: process builds just the answers it reads (``deploy start`` two of the nine of events
#: and locks). Request bodies are built at import: the server's FastAPI builds their
#: adapters when its routes are made (a deferred one would be built on the first request,
#: outside FastAPI's own handling of pydantic's warnings).
BUILT_ON_FIRST_USE = ConfigDict(defer_build=True)
