"""``POST /events/batch`` (extension): up to 1,000 events in one transaction, each with its
own idempotency key and its own result.

Each item is read and checked on its own (a bad item is that item's 400, never the
batch's), with the rules of ``POST /event``: the same validation and message, the same
access rule per service, the same idempotency (a repeat answers the stored result, a key
reused with another body is refused). Live items go through ``operations.open_event``
with the request's journal, so locks, freezes, the environment-name check, approvals, the
journal and the webhook outbox behave as for single creates; an item that takes a lock
runs in a savepoint, so its refusal rolls back only itself. Plain items (nothing to read
or lock: ``_is_plain``) are made by ``store.batch.PlainEvents``, the same event, rows and
journal entry without the statements (tests/server/test_batch_plain.py). History items
(``metadata.createdAt`` given) are inserted as they were: see ``store/batch.py`` and
docs/import.md.
"""

from __future__ import annotations

import gc
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import Field, ValidationError
from sqlalchemy import Connection

from tracker_ci.models import (
    API_PREFIX,
    Event,
    EventMetadata,
    Status,
    WireModel,
    format_timestamp,
    takes_lock,
)
from tracker_ci.wire.batch import MAX_BATCH_EVENTS, BatchEventItem, BatchOutcome, BatchResponse
from tracker_server.auth import authorize
from tracker_server.deps import WriteDep, require_reader
from tracker_server.domain import DomainError, InvalidInput
from tracker_server.errors import ERROR_RESPONSES, describe_validation_errors, error_body, status_of
from tracker_server.journal import EventCreated
from tracker_server.operations import open_event
from tracker_server.routes.common import JSON
from tracker_server.store import batch as batch_store
from tracker_server.store import idempotency
from tracker_server.validation import (
    CHECKED_BY_CHECK_EVENT,
    LATEST,
    UPSTREAM_ENVIRONMENTS,
    check_changelog_entry,
    check_event,
    check_text,
    check_urls,
    is_uuid,
)
from tracker_server.writes import Write

router = APIRouter(prefix=API_PREFIX, tags=["events"], dependencies=[Depends(require_reader)])

#: A batch that wrote at least this many events refreshes the planner's statistics.
BULK_ROWS = 500
CREATED, REUSED_KEY = 201, "Idempotency-Key reused with a different request"


class RawBatchRequest(WireModel):
    """The batch as sent: its items are read one by one (see ``BatchEventItem``)."""

    events: Annotated[
        list[Any],
        Field(
            description=f"1 to {MAX_BATCH_EVENTS} items, each a BatchEventItem: a POST /event "
            "body plus idempotencyKey, and for history metadata (createdAt, duration, id, "
            "slackId) and changelog."
        ),
    ]


@dataclass
class _Item:
    """One item and, once decided, its result."""

    index: int
    key: str = ""
    body: BatchEventItem | None = None
    fingerprint: str = ""
    outcome: BatchOutcome | None = None
    status: int = 0
    #: ``{"event": ..., "warnings": [...]}`` (created or replayed), as stored with the key.
    answer: str = ""
    error: DomainError | None = None
    #: The earlier item with the same key, in this batch.
    first: _Item | None = None
    #: This batch claimed the key: answer it, or forget it when refused.
    claimed: bool = False

    def refuse(self, error: DomainError) -> None:
        self.outcome, self.status, self.error = BatchOutcome.refused, status_of(error)[0], error

    def answer_with(self, outcome: BatchOutcome, status: int, answer: str) -> None:
        self.outcome, self.status, self.answer = outcome, status, answer

    def result_json(self) -> str:
        """The item's ``BatchItemResult`` as JSON (assembled: the event is encoded once)."""
        assert self.outcome is not None
        head = (
            f'{{"index":{self.index},"outcome":"{self.outcome.value}","status":{self.status},'
            f'"idempotencyKey":{json.dumps(self.key)},'
        )
        if self.error is not None:
            error = json.dumps(error_body(status_of(self.error)[1], self.error.message))
            return f'{head}"event":null,"warnings":[],"error":{error}}}'
        return f'{head}{self.answer[1:-1]},"error":null}}'


def _answer(event: Event, warnings: list[str]) -> str:
    said = json.dumps(warnings) if warnings else "[]"
    return f'{{"event":{event.model_dump_json(by_alias=True)},"warnings":{said}}}'


@router.post("/events/batch", response_model=BatchResponse, responses=ERROR_RESPONSES)
def create_events_batch(body: RawBatchRequest, write: WriteDep) -> Response:
    """Create up to 1,000 events in one transaction; one result per item, in order
    (created, replayed or refused with its reason). Items carrying ``metadata.createdAt``
    are history: kept with their dates (admin only when auth is on)."""
    count = len(body.events)
    if not 1 <= count <= MAX_BATCH_EVENTS:
        raise InvalidInput(
            f"invalid request: a batch carries 1 to {MAX_BATCH_EVENTS} events, not {count}"
            + ("; split it" if count else "")
        )
    with _collector_paused():
        items = [_read_item(index, raw, write) for index, raw in enumerate(body.events)]
        with write.transaction() as conn:
            written = _Batch(conn, write, items).run()
        answer = _response(items)
    if written >= BULK_ROWS and write.upkeep is not None:
        # Many rows at once: refresh the planner's statistics now, in the background and
        # in the writers' queue (upkeep.py); the batch has committed whatever happens there.
        write.upkeep.refresh_soon()
    return answer


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a batch builds its items: their ~100,000
    objects (models, rows, answers) hold no cycles, and the collections they would set off
    walking the server's heap were a quarter of a 1,000-event batch's CPU. Back on after
    (by the batch that turned it off: concurrent batches leave it as they found it)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _response(items: list[_Item]) -> Response:
    counts = {outcome: 0 for outcome in BatchOutcome}
    for item in items:
        assert item.outcome is not None
        counts[item.outcome] += 1
    results = ",".join(item.result_json() for item in items)
    tail = ",".join(f'"{outcome.value}":{n}' for outcome, n in counts.items())
    return Response(f'{{"results":[{results}],{tail}}}', media_type=JSON)


# ------------------------------------------------------------------ reading items
def _read_item(index: int, raw: Any, write: Write) -> _Item:
    """The item, checked as ``POST /event`` checks its body; or its refusal."""
    item = _Item(index=index)
    if not isinstance(raw, dict):
        item.refuse(InvalidInput("invalid request: an item must be a JSON object (an event)"))
        return item
    if isinstance(raw.get("idempotencyKey"), str):
        item.key = raw["idempotencyKey"]
    try:
        body = BatchEventItem.model_validate(raw)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        item.refuse(InvalidInput(describe_validation_errors(errors)))
        return item
    try:
        check_event(body.title, body.attributes, body.links, body.slack_id)
        check_urls(body, checked=CHECKED_BY_CHECK_EVENT)  # jobUrl, history's metadata
        write.allow(body.attributes.service)
        if body.is_history:
            _check_history(body, write)
        if body.idempotency_key:
            idempotency.check_key(body.idempotency_key)
    except DomainError as error:
        item.refuse(error)
        return item
    item.body = body
    if body.idempotency_key:  # only a key's repeat is compared with what it was sent with
        item.fingerprint = idempotency.request_fingerprint(
            body.model_dump_json(exclude={"idempotency_key"})
        )
    return item


def _check_history(body: BatchEventItem, write: Write) -> None:
    """History keeps its dates: an admin's to write (with auth on), checked like a create."""
    authorize(write.principal, "import history (events carrying metadata.createdAt)", admin=True)
    metadata = body.metadata
    assert metadata is not None
    check_text(metadata.slack_id, "metadata.slackId", max_length=200)
    if metadata.duration is not None and metadata.duration.total_seconds() < 0:
        raise InvalidInput("invalid request: metadata.duration may not be negative")
    if metadata.duration is not None and metadata.created_at is not None:
        # Its end (createdAt + duration) is read by DORA and the pages: it must be a date.
        if metadata.duration > LATEST - metadata.created_at:
            raise InvalidInput(
                "invalid request: metadata.duration is too long: createdAt + duration "
                "is after the year 9999"
            )
    for entry in body.changelog:
        check_changelog_entry(entry)


# ------------------------------------------------------------------ the transaction
class _Batch:
    """The items' writes, in the request's one transaction."""

    def __init__(self, conn: Connection, write: Write, items: list[_Item]) -> None:
        self.conn, self.write, self.items = conn, write, items
        #: Plain events are inserted through it: one executemany per table, not per row.
        self.buffered = batch_store.BufferedInserts(conn)
        self.plain = batch_store.PlainEvents(write.now)
        self.scope = f"{batch_store.SCOPE} {write.principal.token_id}"

    def run(self) -> int:
        """Decide every item; the number of events written."""
        todo = self._claim_keys()
        written = self._write_history([i for i in todo if i.body and i.body.is_history])
        for item in todo:
            if item.body is not None and not item.body.is_history:
                written += self._create_live(item)
        self.buffered.flush()
        self._settle_keys()
        return written

    def _claim_keys(self) -> list[_Item]:
        """The items left to write: repeats of a stored answer are answered here."""
        first_of: dict[str, _Item] = {}
        for item in self.items:
            if item.body is None or not item.body.idempotency_key:
                continue
            item.first = first_of.setdefault(item.body.idempotency_key, item)
            if item.first is item:
                item.first = None
        fingerprints = {key: item.fingerprint for key, item in first_of.items()}
        claims = batch_store.claim_keys(
            self.conn, scope=self.scope, fingerprints=fingerprints, now=self.write.now
        )
        todo = []
        for item in self.items:
            if item.body is None or item.first is not None:
                continue
            key = item.body.idempotency_key
            if key in claims.reused:
                item.refuse(InvalidInput(REUSED_KEY))
            elif key in claims.stored:
                stored = claims.stored[key]
                item.answer_with(BatchOutcome.replayed, stored.status_code, stored.body)
            else:
                item.claimed = bool(key)
                todo.append(item)
        return todo

    def _write_history(self, items: list[_Item]) -> int:
        """Insert the history items at once; those already imported are replayed."""
        if not items:
            return 0
        present = batch_store.created_at_of(
            self.conn, ids=[_source_id(item) for item in items if _source_id(item)]
        )
        planned: dict[str, tuple[_Item, Event]] = {}
        history: list[Event] = []
        for item in items:
            event = _history_event(item, present, planned)
            if event is None:
                continue
            planned[event.id] = (item, event)
            history.append(event)
            item.answer_with(BatchOutcome.created, CREATED, _answer(event, []))
        batch_store.insert_history(self.conn, history=history)
        if history:
            self.write.journal.record(batch_store.imported(history))
        # The rest were imported before (same id and createdAt): answer those events.
        again = [item for item in items if item.outcome is None]
        stored = batch_store.read_events(self.conn, ids=[_source_id(item) for item in again])
        stored.update({event_id: event for event_id, (_, event) in planned.items()})
        for item in again:
            item.answer_with(BatchOutcome.replayed, 200, _answer(stored[_source_id(item)], []))
        return len(history)

    def _create_live(self, item: _Item) -> int:
        """Create the event as ``POST /event`` does; a refusal rolls back this item only."""
        body, write = item.body, self.write
        assert body is not None
        attributes = body.attributes
        locking = takes_lock(attributes.type, attributes.status)
        mark = len(write.journal.pending)
        try:
            if locking:
                self.buffered.flush()  # its savepoint must not hold the rows before it
                with self.conn.begin_nested():
                    event, warnings = open_event(self.conn, body, write)
            elif _is_plain(body, write):
                event, warnings = self._create_plain(body), []
            else:  # reads first (its relatedId, its environment's name) or asks approval
                event, warnings = open_event(cast(Connection, self.buffered), body, write)
        except DomainError as error:
            del write.journal.pending[mark:]  # what the savepoint undid is not journalled
            item.refuse(error)
            return 0
        item.answer_with(BatchOutcome.created, CREATED, _answer(event, warnings))
        return 1

    def _create_plain(self, body: BatchEventItem) -> Event:
        """What ``create_event`` does for a plain item (nothing to read, no lock): its rows
        joined to the buffer's, its journal entry; none of its statement building."""
        write = self.write
        event = self.plain.event(body)
        self.buffered.hold(batch_store.plain_rows(event))
        write.journal.record(EventCreated(event=event))
        return event

    def _settle_keys(self) -> None:
        """Answer the claimed keys, forget those of refused items; settle in-batch repeats."""
        answers, forgotten = [], []
        for item in self.items:
            if item.first is not None:
                _follow(item, item.first)
            if not item.claimed:
                continue
            assert item.body is not None
            if item.outcome is BatchOutcome.refused:
                forgotten.append(item.body.idempotency_key)
            else:
                answers.append((item.body.idempotency_key, item.status, item.answer))
        idempotency.remember_all(self.conn, scope=self.scope, answers=answers)
        batch_store.forget_keys(self.conn, scope=self.scope, keys=forgotten)


def _is_plain(body: BatchEventItem, write: Write) -> bool:
    """An item that only inserts its rows: no lock (the caller checked), no relatedId to
    read, no approval to record, an environment name that needs no look at the others
    (one of upstream's, or declared new: ``operations.check_environment``)."""
    attributes = body.attributes
    return (
        not attributes.related_id
        and not (attributes.status is Status.waiting_approval and write.principal.token_id)
        and (write.new_environment or attributes.environment.value in UPSTREAM_ENVIRONMENTS)
    )


def _follow(item: _Item, first: _Item) -> None:
    """An item repeating an earlier item's key in the same batch."""
    if item.fingerprint != first.fingerprint:
        item.refuse(InvalidInput(REUSED_KEY))
    elif first.error is not None:
        item.refuse(first.error)
    else:
        item.answer_with(BatchOutcome.replayed, first.status, first.answer)


#: Names the ids derived for history events that came without a UUID.
_HISTORY_IDS = uuid.UUID("5d1f3e0a-7c2b-4b8e-9a61-2f4c8d9e0b17")


def _source_id(item: _Item) -> str:
    """The id a history item keeps: the UUID it came with, else one derived from what it
    is (its given id, createdAt, title, service), so importing it again finds it."""
    assert item.body is not None and item.body.metadata is not None
    metadata, given = item.body.metadata, item.body.metadata.id
    if is_uuid(given):
        return given.lower()
    created = format_timestamp(metadata.created_at) if metadata.created_at else ""
    what = "|".join((given, created, item.body.title, item.body.attributes.service))
    return str(uuid.uuid5(_HISTORY_IDS, what))


def _history_event(
    item: _Item, present: dict[str, Any], planned: dict[str, tuple[_Item, Event]]
) -> Event | None:
    """The event to insert for a history item; None when that very event (same id and
    createdAt) was imported before or earlier in this batch."""
    body = item.body
    assert body is not None and body.metadata is not None
    metadata = body.metadata
    event_id = _source_id(item)
    imported_at = present.get(event_id) or (
        planned[event_id][1].metadata.created_at if event_id in planned else None
    )
    if imported_at == metadata.created_at:
        return None
    if imported_at is not None:
        event_id = str(uuid.uuid4())  # another event's id: a new one
    return Event(
        title=body.title,
        attributes=body.attributes,
        links=body.links,
        metadata=EventMetadata(
            created_at=metadata.created_at,
            duration=metadata.duration,
            id=event_id,
            slack_id=body.slack_id or metadata.slack_id,
        ),
        changelog=body.changelog,
    )
