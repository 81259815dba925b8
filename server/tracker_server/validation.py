"""Input rules upstream's protos declare but never enforce; ours are enforced (400)."""

from __future__ import annotations

import enum
import re
import types
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel

from tracker_ci.models import (
    LOCKING_TYPES,
    ChangelogEntry,
    Environment,
    EventAttributes,
    EventLinks,
    EventType,
    Priority,
    Status,
    WireEnum,
)
from tracker_server.domain import InvalidInput

MAX_TITLE = 500
MAX_MESSAGE = 20_000
MAX_NAME = 200  # service, owner, source, who, resource, slack id...
MAX_LINK = 2_000
MAX_LIST_ITEMS = 100
MAX_ENVIRONMENT = 100
#: The last moment a stored date (or a start plus a duration) may reach.
LATEST = datetime.max.replace(tzinfo=UTC)


def is_uuid(value: str) -> bool:
    """True when ``value`` is a UUID in its usual 36-character form."""
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def require_uuid(value: str, what: str) -> str:
    """``value`` (lower-cased) when it is a UUID; else a 400 naming ``what``."""
    if not is_uuid(value):
        raise InvalidInput(
            f"invalid request: {what} must be a UUID "
            f"(e.g. 3f2b8a4e-1c9d-4b7a-9e2f-5d6c7b8a9e0f), got {value!r}"
        )
    return value.lower()


def check_text(value: str, what: str, *, max_length: int, required: bool = False) -> None:
    """Length limits and no NUL characters (PostgreSQL text cannot hold them)."""
    if required and not value.strip():
        raise InvalidInput(f"invalid request: {what} is required and may not be empty")
    if len(value) > max_length:
        raise InvalidInput(
            f"invalid request: {what} is {len(value)} characters long; at most {max_length}"
        )
    if "\x00" in value:
        raise InvalidInput(f"invalid request: {what} may not contain NUL characters")


def check_list(values: list[str], what: str) -> None:
    """At most ``MAX_LIST_ITEMS`` short items."""
    if len(values) > MAX_LIST_ITEMS:
        raise InvalidInput(f"invalid request: {what} has {len(values)} items; at most 100")
    for index, value in enumerate(values):
        check_text(value, f"{what}[{index}]", max_length=MAX_NAME)


def check_event(title: str, attributes: EventAttributes, links: EventLinks, slack_id: str) -> None:
    """The rules of an event body (create and update)."""
    check_text(title, "title", max_length=MAX_TITLE, required=True)
    check_text(attributes.message, "attributes.message", max_length=MAX_MESSAGE)
    check_text(attributes.source, "attributes.source", max_length=MAX_NAME)
    check_text(
        attributes.service,
        "attributes.service",
        max_length=MAX_NAME,
        # A deployment lock is keyed by its service: it cannot be anonymous.
        required=attributes.type in LOCKING_TYPES,
    )
    check_text(attributes.owner, "attributes.owner", max_length=MAX_NAME)
    if attributes.related_id:
        require_uuid(attributes.related_id, "attributes.relatedId")
    check_list(attributes.stake_holders, "attributes.stakeHolders")
    check_list(attributes.notifications, "attributes.notifications")
    check_text(links.pull_request_link, "links.pullRequestLink", max_length=MAX_LINK)
    check_text(links.ticket, "links.ticket", max_length=MAX_LINK)
    check_urls(links, "links.")
    check_urls(attributes, "attributes.")
    check_text(slack_id, "slackId", max_length=MAX_NAME)
    if (
        attributes.start_date is not None
        and attributes.end_date is not None
        and attributes.end_date < attributes.start_date
    ):
        raise InvalidInput(
            "invalid request: attributes.endDate is before attributes.startDate; swap them"
        )


def check_changelog_entry(entry: ChangelogEntry) -> None:
    """The rules of a changelog entry."""
    check_text(entry.user, "entry.user", max_length=MAX_NAME)
    check_text(entry.field, "entry.field", max_length=MAX_NAME)
    check_text(entry.old_value, "entry.oldValue", max_length=MAX_MESSAGE)
    check_text(entry.new_value, "entry.newValue", max_length=MAX_MESSAGE)
    check_text(entry.comment, "entry.comment", max_length=MAX_MESSAGE)


def check_lock_key(service: str, environment: str, resource: str, who: str) -> None:
    """The rules of a lock's key and holder."""
    check_text(service, "service", max_length=MAX_NAME, required=True)
    check_text(environment, "environment", max_length=MAX_ENVIRONMENT, required=True)
    check_text(resource, "resource", max_length=MAX_NAME, required=True)
    check_text(who, "who", max_length=MAX_NAME)


def parse_enum(cls: type[WireEnum], value: str | None, what: str) -> Any:
    """A query parameter read as an enum name or number; 400 on anything else."""
    if value is None or value == "":
        return None
    try:
        return cls.parse(value)
    except ValueError as exc:
        raise InvalidInput(f"invalid request: query parameter {what}: {exc}") from None


ENUMS_BY_PARAMETER: dict[str, type[WireEnum]] = {
    "type": EventType,
    "priority": Priority,
    "status": Status,
    "environment": Environment,
}


# ---------------------------------------------------------------- URLs
#: Fields that hold a link a person follows or a receiver we call: http(s) or empty.
URL_FIELDS = frozenset({"pull_request_link", "job_url", "url"})
#: Fields that hold a ticket: free text ("JIRA-1") or a link; never another scheme's URL.
TICKET_FIELDS = frozenset({"ticket"})
WEB_SCHEMES = ("http", "https")
_TABS_AND_NEWLINES = re.compile(r"[\t\n\r]")
_LEADING_CONTROLS = re.compile(r"^[\x00-\x20]+")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):", re.IGNORECASE)
#: Schemes a browser runs or reads locally: never in a ticket, even without "//".
_ACTIVE_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "filesystem"})


def _scheme_of(value: str) -> str | None:
    """The scheme a browser would see: leading controls and spaces, and every tab or
    newline, are dropped first (``" java\\tscript:"`` is ``javascript``)."""
    cleaned = _LEADING_CONTROLS.sub("", _TABS_AND_NEWLINES.sub("", value))
    found = _SCHEME.match(cleaned)
    return found.group(1).lower() if found else None


def check_web_url(value: str, what: str) -> None:
    """An empty value, or an absolute http(s) URL with a host; else a 400 naming ``what``."""
    if not value:
        return
    try:
        parts = urlsplit(value.strip())
        usable = parts.scheme.lower() in WEB_SCHEMES and bool(parts.hostname)
    except ValueError:  # "http://[::1": a bracket left open
        usable = False
    if not usable or _scheme_of(value) not in WEB_SCHEMES:
        raise InvalidInput(
            f"invalid request: {what}: {value[:100]!r} is not an http(s) URL "
            "(http://... or https://...)"
        )


def check_ticket(value: str, what: str) -> None:
    """A ticket is free text or a link: refuse only a URL of another scheme than http(s)
    (``javascript:``, ``data:``, ``file://``...), which a page would turn into a link."""
    scheme = _scheme_of(value)
    if scheme is None or scheme in WEB_SCHEMES:
        return
    if scheme in _ACTIVE_SCHEMES or "://" in value:
        raise InvalidInput(
            f"invalid request: {what} is a {scheme}: URL; a ticket is an id (JIRA-1) "
            "or an http(s) URL"
        )


#: The fields of an event body whose URLs :func:`check_event` checked already.
CHECKED_BY_CHECK_EVENT = frozenset({"attributes", "links"})


def check_urls(body: BaseModel, prefix: str = "", checked: frozenset[str] = frozenset()) -> None:
    """THE URL rule of every request body: each field named in ``URL_FIELDS`` (at any
    depth, in lists too) is http(s) or empty, each ``TICKET_FIELDS`` is no other scheme's
    URL. The 400 names the field as sent (``attributes.changes[0].url``). ``checked``:
    fields of ``body`` already checked (not walked again)."""
    for name, alias, kind in _url_plan(type(body)):
        if name in checked:
            continue
        value = getattr(body, name)
        if isinstance(value, BaseModel):
            check_urls(value, f"{prefix}{alias}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    check_urls(item, f"{prefix}{alias}[{index}].")
        elif kind and value and isinstance(value, str):
            # Empty passes both rules; the field's name is spelled only for a refusal.
            (check_web_url if kind == _URL else check_ticket)(value, f"{prefix}{alias}")


_URL, _TICKET, _WALK = "url", "ticket", ""
#: Each model's fields as ``check_urls`` walks them: (name, name as sent, URL rule or "").
_URL_PLANS: dict[type[BaseModel], list[tuple[str, str, str]]] = {}
#: Field types that never hold a model (nor a URL field).
_LEAVES = frozenset({str, int, float, bool, bytes, type(None), datetime, date, timedelta})


def _url_plan(model: type[BaseModel]) -> list[tuple[str, str, str]]:
    """The fields of ``model`` that ``check_urls`` must look at, in order: those with a
    URL rule, and those whose type may hold a model. Read once per class (every request
    walks them)."""
    plan = _URL_PLANS.get(model)
    if plan is None:
        plan = _URL_PLANS[model] = [
            (name, field.alias or name, kind)
            for name, field in model.model_fields.items()
            for kind in [
                _URL if name in URL_FIELDS else _TICKET if name in TICKET_FIELDS else _WALK
            ]
            if kind or _may_hold_model(field.annotation)
        ]
    return plan


def _may_hold_model(annotation: Any) -> bool:
    """False for a type that is plain data (text, numbers, enums, dates, lists of them);
    True for anything else (a model, ``Any``, a mapping): ``check_urls`` looks into it."""
    if annotation in _LEAVES:
        return False
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return False
    origin = get_origin(annotation)
    if origin is Literal:
        return False
    if origin is Annotated:  # its validators keep its type
        return _may_hold_model(get_args(annotation)[0])
    if origin in (Union, types.UnionType, list, tuple, set, frozenset):
        return any(_may_hold_model(arg) for arg in get_args(annotation) if arg is not Ellipsis)
    return True


# ---------------------------------------------------------------- environment names
#: The header that says a write means to create a new environment name (``--new-environment``).
NEW_ENVIRONMENT_HEADER = "X-Tracker-New-Environment"
_DIGITS = re.compile(r"\d+")
#: Upstream's eight names: always accepted (upstream's clients must keep working).
UPSTREAM_ENVIRONMENTS = frozenset(e.value for e in Environment)


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment: a swap of two neighbours
    counts once): ``prodution`` -> ``production`` is 1, ``porduction`` is 1."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def looks_like_typo(name: str, known: str) -> bool:
    """Whether a new environment name is most likely a misspelling of a known one: the
    same name in another case, or a small edit (1 for names up to 5 characters, 2 above).
    Numbered siblings (``eu-west-1`` beside ``eu-west-2``) are not typos."""
    if name == known:
        return False
    if name.casefold() == known.casefold():
        return True
    if _DIGITS.sub("#", name) == _DIGITS.sub("#", known):
        return False
    allowed = 1 if min(len(name), len(known)) <= 5 else 2
    if abs(len(name) - len(known)) > allowed:
        return False
    return edit_distance(name.casefold(), known.casefold()) <= allowed


def check_environment_name(name: str, *, known: set[str], subject: str) -> None:
    """THE rule against misspelled environments: a custom name (not one of upstream's
    eight, which always pass) that ``subject`` never used and that is close to one it did
    is refused (400) with the name it most likely meant. ``known`` is what was used;
    ``subject`` says whose (``for service api``)."""
    if name in known or name in UPSTREAM_ENVIRONMENTS:
        return
    close = sorted(
        (edit_distance(name.casefold(), k.casefold()), k) for k in known if looks_like_typo(name, k)
    )
    if close:
        meant = close[0][1]
        raise InvalidInput(
            f"unknown environment {name!r} {subject}: did you mean {meant!r}? "
            "(pass --new-environment to create it)"
        )
