"""``TrackerClient``: every endpoint of the Tracker REST API, for our server and upstream's.

The client hides the differences between the bundled server and the upstream Go Tracker
(see the project's CONTRACT notes):

* errors become ``tracker_ci.exceptions`` classes, upstream's HTTP 500 messages included;
* updates always return the record AFTER the change: upstream answers the record as it
  was before, so when an answer lacks the ``X-Tracker-Server`` header the client reads the
  record again;
* ``POST``/``PUT /event`` always carry ``attributes`` and ``links`` (upstream's handler
  crashes without them);
* transient failures are retried with exponential backoff; creates only when an
  idempotency key makes the repeat harmless.

Importing the client imports no pydantic: the methods that answer a model build it on
first use, and the short answers read as plain values (a release's count, health) are
decoded by ``tracker_ci.wire.light``, so ``tracker-ci lock release`` never loads pydantic.
The event and lock methods the lifecycle calls take ``light=True`` (and dict bodies) to
answer the same records: an uncontended ``deploy start`` / ``deploy finish`` loads no
pydantic either. Without it, library users get the wire models.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx

from tracker_ci import __version__, models
from tracker_ci.exceptions import (
    APIError,
    ConfigError,
    NotFound,
    TrackerError,
    UnexpectedResponse,
    error_from_response,
    error_from_transport,
    is_outage,
)
from tracker_ci.models import (
    API_PREFIX,
    Environment,
    EventType,
    Priority,
    Status,
    WireEnum,
    format_timestamp,
)
from tracker_ci.wire import light

if TYPE_CHECKING:
    from pydantic import BaseModel

    # For annotations only: at run time the client names models.X, whose resource
    # module (tracker_ci.wire.events, .locks...) is imported the first time it is used.
    from tracker_ci.models import (
        ActiveFreeze,
        Catalog,
        ChangelogEntry,
        ChangelogListResponse,
        CreateEventRequest,
        DoraReport,
        Event,
        EventListResponse,
        FreezeWindow,
        Lock,
        LockStatusResponse,
        MonthlyStatsResponse,
        QueuePolicy,
        QueueResponse,
        StatsResponse,
        TokenCreatedResponse,
        TokenInfo,
        UpdateEventRequest,
        VersionComplianceResponse,
        Webhook,
        WebhookCreateRequest,
        WebhookDelivery,
    )
    from tracker_ci.wire.batch import BatchResponse

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "NEW_ENVIRONMENT_HEADER",
    "REASON_HEADER",
    "SERVER_HEADER",
    "TrackerClient",
    "idempotency_key_for",
    "random_idempotency_key",
]

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
#: Longest single pause between two attempts, whatever the backoff grows to.
MAX_BACKOFF = 10.0
#: Our server sends this header on every answer; upstream never does.
SERVER_HEADER = "X-Tracker-Server"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Why an admin releases a lock another token took (break glass; the server audits it).
REASON_HEADER = "X-Tracker-Reason"
#: Says a write means to create a new environment name (our server refuses a name that
#: looks like a misspelling of one the service used, unless told it is new).
NEW_ENVIRONMENT_HEADER = "X-Tracker-New-Environment"
#: Answers that say "try again later": a busy or restarting server, a proxy, a rate limit.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

_Model = TypeVar("_Model", bound="BaseModel")
QueryValue = str | int | float | bool | date | datetime | WireEnum | None
DateLike = date | datetime | str


def random_idempotency_key() -> str:
    """A key for one write of one invocation outside CI: its retries repeat it."""
    return f"tracker-ci-{uuid.uuid4().hex}"


def idempotency_key_for(service: str, environment: str | Environment, action: str) -> str:
    """A key stable across retries of one CI job attempt; outside CI a random one.

    GitHub: repository + GITHUB_RUN_ID + GITHUB_RUN_ATTEMPT + GITHUB_JOB (+ GITHUB_ACTION,
    the step, so two steps of one job differ). GitLab: CI_JOB_ID (+ CI_PIPELINE_ID).
    A re-run of the job is a new attempt and so gets a new key. Outside CI the key is
    random per call: the retries of that one write send it again, nothing else does.
    """
    env = os.environ
    if env.get("GITHUB_RUN_ID"):
        parts = [
            "github",
            env.get("GITHUB_REPOSITORY", ""),
            env["GITHUB_RUN_ID"],
            env.get("GITHUB_RUN_ATTEMPT", "1"),
            env.get("GITHUB_JOB", ""),
            env.get("GITHUB_ACTION", ""),
        ]
    elif env.get("CI_JOB_ID"):
        parts = [
            "gitlab",
            env.get("CI_SERVER_HOST", ""),
            env.get("CI_PIPELINE_ID", ""),
            env["CI_JOB_ID"],
        ]
    else:
        return random_idempotency_key()
    parts += [service, str(environment), action]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"tracker-ci-{digest[:40]}"


def _query_value(value: QueryValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, WireEnum):
        return value.value
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _query(
    items: Iterable[tuple[str, QueryValue | Sequence[QueryValue]]],
) -> list[tuple[str, str | int | float | bool | None]]:
    """Query pairs: None left out, a sequence repeats its key (``types=a&types=b``)."""
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in items:
        if value is None:
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            pairs.extend((name, _query_value(item)) for item in value)
        else:
            pairs.append((name, _query_value(value)))  # type: ignore[arg-type]
    return pairs


def _segment(value: str) -> str:
    """An id as one URL path segment: a Slack id may hold ``?``, ``#``, ``%`` or spaces."""
    return quote(value, safe="")


def _enum_or_none(cls: type[WireEnum], value: Any) -> WireEnum | None:
    return None if value is None else cls.parse(value)


def _enums(cls: type[WireEnum], values: Iterable[Any]) -> list[WireEnum]:
    return [cls.parse(value) for value in values]


class TrackerClient:
    """A synchronous client of the Tracker REST API (v1alpha1) and our server's extensions."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: bool = True,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        if retries < 0:
            raise ConfigError(f"retries must be 0 or more, not {retries}")
        if timeout <= 0:
            raise ConfigError(f"the timeout must be more than 0 seconds, not {timeout:g}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._jitter = jitter
        headers = {"User-Agent": f"tracker-ci/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        self.last_attempts = 0
        #: Told each warning the server sends back (a soft freeze, broken glass).
        self.on_warning = on_warning
        #: True once an answer carried ``X-Tracker-Server`` (our server), False once one
        #: did not (upstream), None before the first answer.
        self.server_is_bundled: bool | None = None

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> TrackerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TrackerClient(base_url={self.base_url!r})"

    # ----------------------------------------------------------------- transport
    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: list[tuple[str, str | int | float | bool | None]] | None = None,
        idempotent: bool = True,
        idempotency_key: str | None = None,
        reason: str = "",
        new_environment: bool = False,
    ) -> httpx.Response:
        """Send one request, retrying what is safe to retry; raise the mapped error."""
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else {}
        if reason:
            headers[REASON_HEADER] = reason
        if new_environment:
            headers[NEW_ENVIRONMENT_HEADER] = "1"
        # Upstream ignores the key: a repeat there would write twice.
        repeatable = idempotent or bool(idempotency_key and self.server_is_bundled is not False)
        attempt = 0
        while True:
            attempt += 1
            #: How many times the last request was sent (a release retried after a lost
            #: answer may find its own work done).
            self.last_attempts = attempt
            retries_left = attempt <= self.retries
            try:
                response = self._http.request(
                    method, path, json=json, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                # A failed connect never reached the server: always safe to repeat. Other
                # failures may have reached it, so only repeatable requests go again.
                never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if retries_left and (repeatable or never_sent):
                    self._pause(attempt, None)
                    continue
                raise error_from_transport(
                    exc,
                    method=method,
                    url=str(self._http.build_request(method, path).url),
                    timeout=self.timeout,
                    attempts=attempt,
                ) from exc
            self.server_is_bundled = SERVER_HEADER.lower() in response.headers
            if response.is_success:
                return response
            error = error_from_response(response)
            if retries_left and repeatable and self._is_transient(response, error):
                self._pause(attempt, response)
                continue
            raise error

    @staticmethod
    def _is_transient(response: httpx.Response, error: APIError) -> bool:
        if response.status_code in RETRY_STATUSES:
            return True
        # Upstream answers every failure as 500: a refusal (a lock conflict, a missing
        # record, a refused search) is final, a server error may be a passing hiccup.
        return response.status_code == 500 and is_outage(error)

    def _pause(self, attempt: int, response: httpx.Response | None) -> None:
        # Full jitter: 50 jobs told "busy" at once must not come back at once.
        delay = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
        if self._jitter:
            delay *= random.uniform(0.5, 1.0)
        retry_after = response.headers.get("Retry-After", "") if response is not None else ""
        if retry_after.isdigit():
            delay = min(max(delay, float(retry_after)), MAX_BACKOFF)
        if delay > 0:
            self._sleep(delay)

    @staticmethod
    def _parse(response: httpx.Response, model: type[_Model]) -> _Model:
        from pydantic import ValidationError  # loaded with the model already

        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            problems = f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}"
            raise TrackerClient._not_expected(response, problems) from None

    @staticmethod
    def _record(response: httpx.Response, name: str) -> Any:
        """A hot answer as the plain record of the wire model ``name`` (no pydantic: see
        ``tracker_ci.wire.light``), for what a pipeline's short commands read."""
        try:
            return light.decode(name, response.content)
        except light.RecordError as exc:
            raise TrackerClient._not_expected(response, f"first problem: {exc}") from None

    def _count(self, response: httpx.Response) -> int:
        """The ``count`` of an UnlockResponse (releases, evictions, deletions)."""
        return int(self._record(response, "UnlockResponse").count)

    @staticmethod
    def _not_expected(response: httpx.Response, problems: str) -> UnexpectedResponse:
        request = response.request
        snippet = " ".join(response.text.split())[:200]
        return UnexpectedResponse(
            f"Tracker at {request.url.scheme}://{request.url.netloc.decode()} answered "
            f"{request.method} {request.url.path} with HTTP {response.status_code} but not "
            f"the expected JSON ({problems}): {snippet}",
            status_code=response.status_code,
        )

    def _event(self, response: httpx.Response, light: bool = False) -> Event:
        if light:  # the plain record (tracker_ci.wire.light): no pydantic
            record = self._record(response, "EventResponse").event
            if record is None:
                raise self._missing(response, "event")
            return record  # type: ignore[no-any-return]
        event = self._parse(response, models.EventResponse).event
        if event is None:
            raise self._missing(response, "event")
        return event

    def _lock(self, response: httpx.Response) -> Lock:
        lock = self._parse(response, models.LockResponse).lock
        if lock is None:
            raise self._missing(response, "lock")
        return lock

    @staticmethod
    def _missing(response: httpx.Response, name: str) -> UnexpectedResponse:
        request = response.request
        return UnexpectedResponse(
            f"Tracker answered {request.method} {request.url.path} without the {name!r} "
            "it should contain",
            status_code=response.status_code,
        )

    def _answers_after_change(self) -> bool:
        """Our server answers the updated record; upstream the record before the change
        (``server_is_bundled``, the one reading of the header, made by ``_request``)."""
        return self.server_is_bundled is True

    # ---------------------------------------------------------------------- events
    def create_event(
        self,
        request: CreateEventRequest | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        lock_ttl_seconds: int = 0,
        queue_ticket: str = "",
        new_environment: bool = False,
        light: bool = False,
    ) -> Event:
        """Create an event (a deployment event also takes the lock); raises LockHeld.

        ``request``: the model, or its body as ``to_wire()`` writes it (a camelCase dict);
        ``queue_ticket``: the lock queue's ticket whose turn this claims (our server);
        ``new_environment``: its environment is a new name, not a misspelling (our server);
        ``light``: answer the event's plain record (``tracker_ci.wire.light``), no model."""
        body = _event_body(request)  # every field, so attributes and links are always there
        self.check_environment(body["attributes"].get("environment"))
        if lock_ttl_seconds:
            body["lockTtlSeconds"] = lock_ttl_seconds
        if queue_ticket:
            body["queueTicket"] = queue_ticket
        _drop_empty(body, _EVENT_EXTENSIONS)
        self._attribute_extensions(body)
        response = self._request(
            "POST",
            f"{API_PREFIX}/event",
            json=body,
            idempotent=False,
            idempotency_key=idempotency_key or random_idempotency_key(),
            new_environment=new_environment,
        )
        self._tell_warnings(response)
        return self._event(response, light)

    def get_event(self, event_id: str, *, light: bool = False) -> Event:
        """The event with this id (a UUID) or this Slack id (``light``: its plain record)."""
        path = f"{API_PREFIX}/event/{_segment(event_id)}"
        return self._event(self._request("GET", path), light)

    def close_event(
        self,
        event_id: str,
        status: str,
        message: str = "",
        *,
        idempotency_key: str | None = None,
        light: bool = False,
    ) -> Event:
        """Close an event in one request (our server, ``POST /event/{id}/close``):
        ``status``, ``message`` appended to its message, its end date now unless it has
        one; the event after. Repeated after a lost answer only with ``idempotency_key``
        (then the repeat answers the first close). An older server of ours answers
        NotFound starting with ``NO_SUCH_ROUTE``; upstream has no such route."""
        body: dict[str, Any] = {"status": status}
        if message:
            body["message"] = message
        response = self._request(
            "POST",
            f"{API_PREFIX}/event/{_segment(event_id)}/close",
            json=body,
            idempotent=False,
            idempotency_key=idempotency_key,
        )
        return self._event(response, light)

    def update_event(
        self, request: UpdateEventRequest | Mapping[str, Any], *, light: bool = False
    ) -> Event:
        """Replace an event's title, attributes and links; the event after the change.
        ``request`` and ``light`` as for ``create_event``."""
        body = _event_body(request)
        self.check_environment(body["attributes"].get("environment"))
        self._attribute_extensions(body)
        response = self._request("PUT", f"{API_PREFIX}/event", json=body)
        if self._answers_after_change():
            return self._event(response, light)
        return self.get_event(body.get("id") or self._event(response, light).id, light=light)

    def _attribute_extensions(self, body: dict[str, Any]) -> None:
        """``attributes.revision`` / ``.changes`` go to our server only, and only when set."""
        attributes = body.get("attributes") or {}
        for name in _ATTRIBUTE_EXTENSIONS:
            if not attributes.get(name) or self.server_is_bundled is False:
                attributes.pop(name, None)

    def delete_event(self, event_id: str) -> None:
        """Delete an event (upstream answers 501: not implemented)."""
        self._request("DELETE", f"{API_PREFIX}/event/{_segment(event_id)}")

    def list_events(self, *, page: int = 1, per_page: int = 50) -> EventListResponse:
        """One page of all events (newest first on our server; unordered upstream)."""
        params = _query([("per_page", per_page), ("page", page)])
        response = self._request("GET", f"{API_PREFIX}/events/list", params=params)
        return self._parse(response, models.EventListResponse)

    def today_events(self, *, page: int = 1, per_page: int = 50) -> EventListResponse:
        """One page of the events whose start date is today (UTC)."""
        params = _query([("per_page", per_page), ("page", page)])
        response = self._request("GET", f"{API_PREFIX}/events/today", params=params)
        return self._parse(response, models.EventListResponse)

    def search_events(
        self,
        *,
        source: str | None = None,
        type: EventType | str | None = None,
        priority: Priority | str | None = None,
        status: Status | str | None = None,
        service: str | None = None,
        environment: Environment | str | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        impact: bool | None = None,
        slack_id: str | None = None,
        per_page: int | None = 50,
        page: int | None = None,
        light: bool = False,
    ) -> EventListResponse:
        """Events matching every given filter exactly (at least one filter is needed), one
        page of ``per_page`` (our server; upstream answers every match). ``per_page=None``
        and no ``page``: every match, as upstream (our server: up to 10,000, then
        ``nextCursor``). ``light``: the answer's plain record (``tracker_ci.wire.light``)."""
        params = _query(
            [
                ("source", source),
                ("type", _enum_or_none(EventType, type)),
                ("priority", _enum_or_none(Priority, priority)),
                ("status", _enum_or_none(Status, status)),
                ("service", service),
                ("environment", _enum_or_none(Environment, environment)),
                ("start_date", start_date),
                ("end_date", end_date),
                ("impact", impact),
                ("slack_id", slack_id),
                ("per_page", per_page),
                ("page", page),
            ]
        )
        response = self._request("GET", f"{API_PREFIX}/events/search", params=params)
        if light:
            return self._record(response, "EventListResponse")  # type: ignore[no-any-return]
        return self._parse(response, models.EventListResponse)

    def add_changelog_entry(self, event_id: str, entry: ChangelogEntry) -> Event:
        """Append an entry to an event's changelog; the event after the change."""
        body = models.ChangelogRequest(entry=entry).to_wire()
        # Not idempotent: a repeat after a lost answer would write the entry twice.
        response = self._request(
            "POST",
            f"{API_PREFIX}/event/{_segment(event_id)}/changelog",
            json=body,
            idempotent=False,
        )
        if self._answers_after_change():
            return self._event(response)
        return self.get_event(event_id)

    def get_changelog(
        self, event_id: str, *, page: int = 1, per_page: int = 50
    ) -> ChangelogListResponse:
        """One page of an event's changelog."""
        params = _query([("per_page", per_page), ("page", page)])
        response = self._request(
            "GET", f"{API_PREFIX}/event/{_segment(event_id)}/changelog", params=params
        )
        return self._parse(response, models.ChangelogListResponse)

    def set_slack_id(self, event_id: str, slack_id: str) -> Event:
        """Attach a Slack message id to an event; the event after the change."""
        body = models.SlackIdRequest(slack_id=slack_id).to_wire()
        response = self._request(
            "POST", f"{API_PREFIX}/event/{_segment(event_id)}/slack", json=body
        )
        if self._answers_after_change():
            return self._event(response)
        return self.get_event(event_id)

    def decide_approval(self, event_id: str, *, approved: bool, comment: str = "") -> Event:
        """Approve or reject a deployment waiting for approval (our server's
        ``POST /event/{id}/approve`` or ``/reject``); the event after the change."""
        action = "approve" if approved else "reject"
        body = models.ApprovalRequest(comment=comment).to_wire()
        response = self._request(
            "POST", f"{API_PREFIX}/event/{_segment(event_id)}/{action}", json=body
        )
        return self._event(response)

    def _stats_params(
        self,
        *,
        start_date: DateLike,
        end_date: DateLike,
        environments: Iterable[Environment | str],
        priorities: Iterable[Priority | str],
        types: Iterable[EventType | str],
        statuses: Iterable[Status | str],
        impact: bool | None,
        source: str | None,
        service: str | None,
    ) -> list[tuple[str, QueryValue | Sequence[QueryValue]]]:
        return [
            ("start_date", start_date),
            ("end_date", end_date),
            ("environments", _enums(Environment, environments)),
            ("priorities", _enums(Priority, priorities)),
            ("types", _enums(EventType, types)),
            ("statuses", _enums(Status, statuses)),
            ("impact", impact),
            ("source", source),
            ("service", service),
        ]

    def stats(
        self,
        *,
        start_date: DateLike,
        end_date: DateLike,
        environments: Iterable[Environment | str] = (),
        priorities: Iterable[Priority | str] = (),
        types: Iterable[EventType | str] = (),
        statuses: Iterable[Status | str] = (),
        impact: bool | None = None,
        source: str | None = None,
        service: str | None = None,
    ) -> StatsResponse:
        """How many events were created between two dates, with optional filters."""
        params = _query(
            self._stats_params(
                start_date=start_date,
                end_date=end_date,
                environments=environments,
                priorities=priorities,
                types=types,
                statuses=statuses,
                impact=impact,
                source=source,
                service=service,
            )
        )
        response = self._request("GET", f"{API_PREFIX}/events/stats", params=params)
        return self._parse(response, models.StatsResponse)

    def monthly_stats(
        self,
        *,
        start_date: DateLike,
        end_date: DateLike,
        environments: Iterable[Environment | str] = (),
        priorities: Iterable[Priority | str] = (),
        types: Iterable[EventType | str] = (),
        statuses: Iterable[Status | str] = (),
        impact: bool | None = None,
        source: str | None = None,
        service: str | None = None,
        group_by_service: bool = False,
    ) -> MonthlyStatsResponse:
        """Event counts per UTC month (and per service when asked) between two dates."""
        items = self._stats_params(
            start_date=start_date,
            end_date=end_date,
            environments=environments,
            priorities=priorities,
            types=types,
            statuses=statuses,
            impact=impact,
            source=source,
            service=service,
        )
        if group_by_service:
            items.append(("group_by_service", True))
        response = self._request("GET", f"{API_PREFIX}/events/stats/monthly", params=_query(items))
        return self._parse(response, models.MonthlyStatsResponse)

    # ----------------------------------------------------------------------- locks
    def acquire_lock(
        self,
        *,
        service: str,
        environment: Environment | str,
        resource: str = "deployment",
        who: str = "",
        event_id: str = "",
        ttl_seconds: int = 0,
        idempotency_key: str | None = None,
        reason: str = "",
        job_url: str = "",
        break_glass: str = "",
        queue_ticket: str = "",
        new_environment: bool = False,
    ) -> Lock:
        """Take the lock on (service, environment, resource); raises LockHeld if taken.

        ``queue_ticket``: the lock queue's ticket whose turn this claims (our server);
        ``new_environment``: the environment is a new name, not a misspelling (our server)."""
        self.check_environment(environment)
        body = models.CreateLockRequest(
            service=service,
            environment=str(environment),
            resource=resource,
            who=who,
            event_id=event_id,
            ttl_seconds=ttl_seconds,
            reason=reason,
            job_url=job_url,
            break_glass=break_glass,
            queue_ticket=queue_ticket,
        ).to_wire()
        # An upstream server has none of these fields: send them only when set.
        _drop_empty(body, ("ttlSeconds", *_LOCK_EXTENSIONS))
        response = self._request(
            "POST",
            f"{API_PREFIX}/lock",
            json=body,
            idempotent=False,
            idempotency_key=idempotency_key or random_idempotency_key(),
            new_environment=new_environment,
        )
        self._tell_warnings(response)
        return self._lock(response)

    # ------------------------------------------------------------ queue (extension)
    def wait_in_queue(
        self,
        *,
        service: str,
        environment: Environment | str,
        resource: str = "deployment",
        who: str = "",
        reason: str = "",
        job_url: str = "",
        ticket: str = "",
        wait_seconds: float = 0.0,
        break_glass: str = "",
        new_environment: bool = False,
        grant: bool = False,
        ttl_seconds: int = 0,
        event_id: str = "",
        open_event: CreateEventRequest | Mapping[str, Any] | None = None,
    ) -> QueueResponse:
        """Join the lock's queue (no ticket) or keep ``ticket`` alive, waiting up to
        ``wait_seconds`` for its turn (a long poll). With ``grant`` the server takes the
        lock (``ttl_seconds``, ``event_id``) when the turn comes and answers it as
        ``granted``; asking again with the ticket claims it. ``open_event`` (a
        ``create_event`` body for this key, its lock's TTL in ``lockTtlSeconds``) asks
        the grant to open that event with the lock, answered as ``event`` beside
        ``granted``; a server without it answers the turn only (then create the event
        naming the ticket). Raises Superseded, NotFound (dropped), and what taking the
        lock (or creating the event) raises."""
        body = models.QueueRequest(
            service=service,
            environment=str(environment),
            resource=resource,
            who=who,
            reason=reason,
            job_url=job_url,
            ticket=ticket,
            wait_seconds=wait_seconds,
            break_glass=break_glass,
            grant=grant,
            ttl_seconds=ttl_seconds,
            event_id=event_id,
        ).to_wire()
        _drop_empty(body, ("grant", "ttlSeconds", "eventId"))  # the body older servers know
        if open_event is not None:  # sent as create_event sends it
            opening = _event_body(open_event)
            _drop_empty(opening, _EVENT_EXTENSIONS)
            self._attribute_extensions(opening)
            body["openEvent"] = opening
        response = self._request(
            "POST",
            f"{API_PREFIX}/lock/queue",
            json=body,
            idempotent=bool(ticket),
            new_environment=new_environment,
        )
        if grant or open_event is not None:
            self._tell_warnings(response)
        return self._parse(response, models.QueueResponse)

    def evict_lock(self, lock_id: str, *, by: str, why: str) -> int:
        """Evict a dead holder's lock (its CI job ended; extension); how many were removed."""
        body = models.EvictLockRequest(by=by, why=why).to_wire()
        path = f"{API_PREFIX}/lock/{_segment(lock_id)}/evict"
        return self._count(self._request("POST", path, json=body))

    def leave_queue(self, ticket: str) -> int:
        """Leave a lock's queue; 0 when the ticket was already gone."""
        response = self._request("DELETE", f"{API_PREFIX}/lock/queue/{_segment(ticket)}")
        return self._count(response)

    def lock_status(
        self, *, service: str, environment: Environment | str, resource: str = "deployment"
    ) -> LockStatusResponse:
        """The holder of (service, environment, resource) and its queue (extension)."""
        params = _query(
            [("service", service), ("environment", str(environment)), ("resource", resource)]
        )
        response = self._request("GET", f"{API_PREFIX}/locks/status", params=params)
        return self._parse(response, models.LockStatusResponse)

    def set_queue_policy(
        self, *, environment: Environment | str, policy: str, service: str = ""
    ) -> QueuePolicy:
        """Set the queue policy (fifo, newest) of an environment or one service in it."""
        body = models.QueuePolicy(environment=str(environment), service=service, policy=policy)
        response = self._request("PUT", f"{API_PREFIX}/locks/policy", json=body.to_wire())
        return self._parse(response, models.QueuePolicy)

    def list_queue_policies(self) -> list[QueuePolicy]:
        """Every queue policy set (keys without one are fifo)."""
        response = self._request("GET", f"{API_PREFIX}/locks/policies")
        return self._parse(response, models.QueuePolicyListResponse).policies

    # ---------------------------------------------------- freeze windows (extension)
    def create_freeze_window(
        self, window: FreezeWindow, *, new_environment: bool = False
    ) -> FreezeWindow:
        """Create a freeze window; InvalidRequest for a bad schedule or time zone (or, our
        server, an environment name like a misspelled one: ``new_environment`` says new)."""
        response = self._request(
            "POST",
            f"{API_PREFIX}/freeze-window",
            json=window.to_wire(),
            idempotent=False,
            new_environment=new_environment,
        )
        return self._freeze_window(response)

    def get_freeze_window(self, window_id: str) -> FreezeWindow:
        """The freeze window with this id."""
        path = f"{API_PREFIX}/freeze-window/{_segment(window_id)}"
        return self._freeze_window(self._request("GET", path))

    def list_freeze_windows(self) -> list[FreezeWindow]:
        """Every freeze window, newest first."""
        response = self._request(
            "GET", f"{API_PREFIX}/freeze-windows/list", params=[("per_page", 1000)]
        )
        return self._parse(response, models.FreezeWindowListResponse).freeze_windows

    def active_freezes(
        self, *, service: str | None = None, environment: Environment | str | None = None
    ) -> list[ActiveFreeze]:
        """The freeze windows in force now, in the scope of (service, environment) when given
        (bundled server only)."""
        params = _query(
            [
                ("service", service or None),
                ("environment", str(environment) if environment else None),
            ]
        )
        response = self._request("GET", f"{API_PREFIX}/freeze-windows/active", params=params)
        return self._parse(response, models.ActiveFreezesResponse).freezes

    def delete_freeze_window(self, window_id: str) -> int:
        """Delete a freeze window; how many were deleted."""
        path = f"{API_PREFIX}/freeze-window/{_segment(window_id)}"
        return self._count(self._request("DELETE", path))

    def _freeze_window(self, response: httpx.Response) -> FreezeWindow:
        window = self._parse(response, models.FreezeWindowResponse).freeze_window
        if window is None:
            raise self._missing(response, "freezeWindow")
        return window

    # ---------------------------------------------------------- the service catalog
    def put_catalog(self, entry: Catalog) -> Catalog:
        """Create or replace a service's catalog entry (by name); the entry as stored.
        Its versions are kept: :meth:`set_catalog_versions` sets them."""
        response = self._request("PUT", f"{API_PREFIX}/catalog", json=entry.to_wire())
        return self._catalog(response)

    def get_catalog(self, name: str) -> Catalog:
        """A service's catalog entry; NotFound when it has none."""
        response = self._request("GET", f"{API_PREFIX}/catalog", params=[("name", name)])
        return self._catalog(response)

    def delete_catalog(self, name: str) -> None:
        """Delete a service's catalog entry; NotFound when it has none."""
        self._request("DELETE", f"{API_PREFIX}/catalog", params=[("name", name)])

    def list_catalogs(self) -> list[Catalog]:
        """Every catalog entry (by name on our server)."""
        response = self._request("GET", f"{API_PREFIX}/catalogs/list")
        return self._parse(response, models.CatalogListResponse).catalogs

    def catalog_compliance(self, *, types: Iterable[Any] = ()) -> VersionComplianceResponse:
        """Each project's deliverables against their reference versions (``types``:
        deliverable types to check, default package, chart, container, module)."""
        wanted = [models.CatalogType.parse(value) for value in types]
        response = self._request(
            "GET", f"{API_PREFIX}/catalog/version-compliance", params=_query([("types", wanted)])
        )
        return self._parse(response, models.VersionComplianceResponse)

    def set_catalog_versions(
        self,
        name: str,
        *,
        available: Sequence[str] = (),
        latest: str = "",
        reference: str = "",
    ) -> Catalog:
        """Set a deliverable's available, latest and reference versions; the entry after."""
        body = {
            "name": name,
            "available_versions": list(available),
            "latest_version": latest,
            "reference_version": reference,
        }
        path = f"{API_PREFIX}/catalog/{_segment(name)}/versions"
        return self._catalog(self._request("PUT", path, json=body))

    def set_catalog_dependencies(
        self,
        name: str,
        *,
        dependencies_in: Sequence[str] = (),
        dependencies_out: Sequence[str] = (),
    ) -> Catalog:
        """Set what a service depends on (in) and what depends on it (out); the entry after."""
        body = {
            "name": name,
            "dependencies_in": list(dependencies_in),
            "dependencies_out": list(dependencies_out),
        }
        path = f"{API_PREFIX}/catalog/{_segment(name)}/dependencies"
        return self._catalog(self._request("PUT", path, json=body))

    def _catalog(self, response: httpx.Response) -> Catalog:
        entry = self._parse(response, models.CatalogResponse).catalog
        if entry is None:
            raise self._missing(response, "catalog")
        return entry

    def _tell_warnings(self, response: httpx.Response) -> None:
        """Pass the server's ``warnings`` (a soft freeze, broken glass) to ``on_warning``."""
        if self.on_warning is None or '"warnings"' not in response.text:
            return
        try:
            warnings = response.json().get("warnings") or []
        except ValueError:
            return
        for warning in warnings:
            self.on_warning(str(warning))

    def get_lock(self, lock_id: str) -> Lock:
        """The lock with this id."""
        return self._lock(self._request("GET", f"{API_PREFIX}/lock/{_segment(lock_id)}"))

    def update_lock(self, lock_id: str, **fields: str) -> Lock:
        """Change a lock's fields (empty ones keep their value); the lock after the change."""
        unknown = sorted(set(fields) - set(models.UpdateLockRequest.model_fields))
        if unknown:
            allowed = ", ".join(models.UpdateLockRequest.model_fields)
            raise TypeError(f"update_lock() got unknown fields {unknown}; use: {allowed}")
        body = models.UpdateLockRequest(**fields).to_wire()
        response = self._request("PUT", f"{API_PREFIX}/lock/{_segment(lock_id)}", json=body)
        if self._answers_after_change():
            return self._lock(response)
        return self.get_lock(lock_id)

    def release_lock(self, lock_id: str, *, reason: str = "") -> int:
        """Release a lock by id (upstream's ``GET /unlock/{id}``); how many were deleted.
        ``reason``: an admin releasing a lock another token took says why (audited)."""
        try:
            response = self._request(
                "GET", f"{API_PREFIX}/unlock/{_segment(lock_id)}", reason=reason
            )
        except NotFound:
            # Our server answers a lock that is gone with count "0"; upstream with a 500
            # "no event found in tracker for id ...": the same fact, so the same answer.
            return 1 if self.last_attempts > 1 else 0
        count = self._count(response)
        # Sent again after a lost answer and found gone: the first try released it.
        return 1 if not count and self.last_attempts > 1 else count

    def release_lock_by_key(
        self,
        *,
        service: str,
        environment: Environment | str,
        resource: str = "deployment",
        who: str,
        lock_id: str = "",
        event_id: str = "",
        reason: str = "",
    ) -> int:
        """Release the lock on (service, environment, resource) that this job took, named by
        its ``lock_id`` or ``event_id`` and ``who`` (extension)."""
        body = light.build(  # the wire model's body, written without pydantic
            "ReleaseLockRequest",
            service=service,
            environment=str(environment),
            resource=resource,
            who=who,
            id=lock_id,
            event_id=event_id,
        ).to_wire()
        try:
            response = self._request("POST", f"{API_PREFIX}/unlock", json=body, reason=reason)
        except NotFound:
            if self.last_attempts > 1:
                # Sent again after a lost answer: the first try released it.
                return 1
            raise
        return self._count(response)

    def renew_lock(self, lock_id: str, ttl_seconds: int) -> Lock:
        """Push a lock's expiry to ``ttl_seconds`` from now (extension); NotFound if gone."""
        body = models.RenewLockRequest(ttl_seconds=ttl_seconds).to_wire()
        response = self._request("POST", f"{API_PREFIX}/lock/{_segment(lock_id)}/renew", json=body)
        return self._lock(response)

    def list_locks(self, *, light: bool = False) -> list[Lock]:
        """Every lock currently held (``light``: as plain records, ``wire.light``)."""
        response = self._request("GET", f"{API_PREFIX}/locks/list")
        if light:
            return self._record(response, "LockListResponse").locks  # type: ignore[no-any-return]
        return self._parse(response, models.LockListResponse).locks

    def find_lock(
        self, *, service: str, environment: Environment | str, resource: str = "deployment"
    ) -> Lock | None:
        """The lock on (service, environment, resource), or None (upstream has no lookup)."""
        wanted = (service, str(environment), resource)
        for lock in self.list_locks():
            if (lock.service, lock.environment, lock.resource) == wanted:
                return lock
        return None

    def locks_for_event(self, event_id: str, *, light: bool = False) -> list[Lock]:
        """The locks taken for this event (normally none or one)."""
        locks = self.list_locks(light=light)
        return [lock for lock in locks if event_id and lock.event_id == event_id]

    # ---------------------------------------------------------------------- tokens
    def create_token(
        self,
        *,
        name: str,
        services: Sequence[str] = (),
        admin: bool = False,
        read_only: bool = False,
    ) -> TokenCreatedResponse:
        """Create an API token (extension, admin only); its secret is shown only here."""
        body = models.TokenCreateRequest(
            name=name, services=list(services), admin=admin, read_only=read_only
        ).to_wire()
        response = self._request("POST", f"{API_PREFIX}/tokens", json=body, idempotent=False)
        return self._parse(response, models.TokenCreatedResponse)

    def list_tokens(self) -> list[TokenInfo]:
        """Every API token, without secrets (extension, admin only)."""
        response = self._request("GET", f"{API_PREFIX}/tokens")
        return self._parse(response, models.TokenListResponse).tokens

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke an API token (extension, admin only); the revoked token."""
        response = self._request("DELETE", f"{API_PREFIX}/tokens/{_segment(token_id)}")
        # The contract is {"token": TokenInfo}; accept a bare TokenInfo as well.
        wrapped = self._parse(response, models.TokenResponse).token
        if wrapped is not None:
            return wrapped
        bare = self._parse(response, models.TokenInfo)
        if not bare.id:
            raise self._missing(response, "token")
        return bare

    # ---------------------------------------------------------------------- insights
    def dora(
        self,
        *,
        service: str,
        environment: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> DoraReport:
        """DORA's four keys of a service and environment over a window (bundled server)."""
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("service", service),
            ("environment", environment),
        ]
        if start is not None:
            params.append(("start_date", format_timestamp(start)))
        if end is not None:
            params.append(("end_date", format_timestamp(end)))
        response = self._request("GET", f"{API_PREFIX}/insights/dora", params=params)
        return self._parse(response, models.DoraReport)

    # ---------------------------------------------------------------------- webhooks
    def create_webhook(self, request: WebhookCreateRequest) -> Webhook:
        """Subscribe a URL to notifications (extension, admin only)."""
        response = self._request(
            "POST", f"{API_PREFIX}/webhooks", json=request.to_wire(), idempotent=False
        )
        return self._parse(response, models.WebhookResponse).webhook

    def list_webhooks(self) -> list[Webhook]:
        """Every webhook, never a secret (extension, admin only)."""
        response = self._request("GET", f"{API_PREFIX}/webhooks")
        return self._parse(response, models.WebhookListResponse).webhooks

    def delete_webhook(self, webhook_id: str) -> Webhook:
        """Remove a webhook and its deliveries (extension, admin only)."""
        response = self._request("DELETE", f"{API_PREFIX}/webhooks/{_segment(webhook_id)}")
        return self._parse(response, models.WebhookResponse).webhook

    def rotate_webhook_secret(
        self, webhook_id: str, secret: str, *, previous_valid_seconds: int = 86400
    ) -> Webhook:
        """Replace a webhook's secret; the replaced one still signs for
        ``previous_valid_seconds`` (extension, admin only; a repeat changes nothing)."""
        body = models.WebhookSecretRequest(
            secret=secret, previous_valid_seconds=previous_valid_seconds
        )
        response = self._request(
            "POST", f"{API_PREFIX}/webhooks/{_segment(webhook_id)}/secret", json=body.to_wire()
        )
        return self._parse(response, models.WebhookResponse).webhook

    def test_webhook(self, webhook_id: str) -> WebhookDelivery:
        """Queue a ``webhook.test`` delivery to this webhook; the queued delivery."""
        response = self._request(
            "POST", f"{API_PREFIX}/webhooks/{_segment(webhook_id)}/test", idempotent=False
        )
        found = self._parse(response, models.WebhookDeliveryListResponse).deliveries
        if not found:
            raise self._missing(response, "delivery")
        return found[0]

    def webhook_deliveries(
        self, webhook_id: str | None = None, *, limit: int = 50
    ) -> list[WebhookDelivery]:
        """The newest deliveries (of one webhook, or of all): state, answer, next retry."""
        path = (
            f"{API_PREFIX}/webhooks/{_segment(webhook_id)}/deliveries"
            if webhook_id
            else f"{API_PREFIX}/webhooks/deliveries"
        )
        response = self._request("GET", path, params=[("limit", limit)])
        return self._parse(response, models.WebhookDeliveryListResponse).deliveries

    # ---------------------------------------------------------------------- health
    def check_environment(self, environment: Environment | str | None) -> None:
        """Refuse, before sending it, an environment name an upstream server cannot take.

        Upstream's Tracker knows its eight environments only; our server takes any name.
        When the kind of server is not known yet, one ``GET /health`` tells (ours answers it
        with its header).
        """
        if environment is None or environment == "":
            return
        try:
            env = Environment.parse(environment)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not env.custom:
            return
        if self.server_is_bundled is None:
            with contextlib.suppress(TrackerError):
                self.health()
        if self.server_is_bundled is False:  # unreachable: the request itself says so
            raise ConfigError(
                f"environment {env.value!r} is not one an upstream Tracker at {self.base_url} "
                f"can store: use one of {', '.join(Environment.choices())} (any name needs "
                "tracker-ci's bundled server)"
            )

    def health(self) -> dict[str, Any]:
        """The server's ``GET /health`` answer (extension): status, database, version."""
        response = self._request("GET", "/health")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, Mapping):
            raise self._missing(response, "health status")
        self._record(response, "HealthResponse")  # its fields are what they should be
        return dict(body)

    # --------------------------------------------------- batches and copies (extension)
    def create_events_batch(self, items: Sequence[BaseModel | Mapping[str, Any]]) -> BatchResponse:
        """``POST /events/batch`` (our server): up to 1,000 events in one transaction, one
        result per item (created, replayed or refused). Repeated after a lost answer only
        when every item carries its ``idempotencyKey`` (a repeat then replays)."""
        from pydantic import BaseModel

        from tracker_ci.wire.batch import BatchResponse

        events = [
            item.model_dump(mode="json", by_alias=True) if isinstance(item, BaseModel) else item
            for item in items
        ]
        keyed = all(event.get("idempotencyKey") for event in events)
        try:
            response = self._request(
                "POST", f"{API_PREFIX}/events/batch", json={"events": events}, idempotent=keyed
            )
        except APIError as exc:
            if exc.status_code in (404, 405, 501):
                raise ConfigError(
                    f"Tracker at {self.base_url} has no batch endpoint (POST "
                    f"{API_PREFIX}/events/batch answered {exc.status_code}): importing "
                    "needs tracker-ci's bundled server as the target"
                ) from None
            raise
        return self._parse(response, BatchResponse)

    def list_events_page(
        self, *, cursor: str = "", page: int = 1, per_page: int = 1000
    ) -> EventListResponse:
        """One page of every event, for a copy: after ``cursor`` (our keyset extension,
        the previous answer's ``nextCursor``) when given, else page ``page``. Upstream
        ignores both and answers every event at once."""
        pairs: list[tuple[str, QueryValue | Sequence[QueryValue]]] = [("per_page", per_page)]
        pairs.append(("cursor", cursor) if cursor else ("page", page))
        response = self._request("GET", f"{API_PREFIX}/events/list", params=_query(pairs))
        return self._parse(response, models.EventListResponse)


# Our extensions of the create bodies: sent only when set, so upstream sees its own body.
_EVENT_EXTENSIONS = ("lockReason", "jobUrl", "breakGlass", "queueTicket")
_LOCK_EXTENSIONS = ("reason", "jobUrl", "breakGlass", "queueTicket")
#: What a deployment shipped (extensions inside ``attributes``).
_ATTRIBUTE_EXTENSIONS = ("revision", "changes")


def _event_body(request: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """An event request's body: the model's ``to_wire()``, or a copy of the body given as
    a dict (its attributes copied too: the extensions are dropped from them)."""
    if isinstance(request, Mapping):
        return {**request, "attributes": dict(request.get("attributes") or {})}
    return request.to_wire()  # type: ignore[attr-defined,no-any-return]


def _drop_empty(body: dict[str, Any], names: Sequence[str]) -> None:
    for name in names:
        if not body.get(name):
            body.pop(name, None)
