"""Wire models of the batch extension: ``POST /api/v1alpha1/events/batch`` (our server only).

A batch carries up to :data:`MAX_BATCH_EVENTS` items, written in one transaction; each
item has its own idempotency key and gets its own result, in order. An item is a
``POST /event`` body, or an event in upstream's shape (what ``GET /event/{id}`` answers
inside ``"event"``): one carrying ``metadata.createdAt`` is history, kept with its dates,
duration, changelog and (when free) its id. See docs/import.md for the rules.
"""

from __future__ import annotations

import enum

from pydantic import Field

from tracker_ci.models import (
    ChangelogEntry,
    CreateEventRequest,
    ErrorBody,
    Event,
    EventMetadata,
    WireModel,
)

__all__ = [
    "MAX_BATCH_EVENTS",
    "BatchEventItem",
    "BatchItemResult",
    "BatchOutcome",
    "BatchRequest",
    "BatchResponse",
]

#: The most items one batch may carry.
MAX_BATCH_EVENTS = 1000


class BatchEventItem(CreateEventRequest):
    """One item: a create body, plus its idempotency key and (history) metadata/changelog."""

    #: Like the ``Idempotency-Key`` header of ``POST /event``, for this item alone.
    idempotency_key: str = ""
    #: ``createdAt`` given: the item is history (its ``duration``, ``id`` and ``slackId``
    #: are kept too); otherwise the event is created now, exactly as ``POST /event`` does.
    metadata: EventMetadata | None = None
    #: History only: the changelog as it was (a live event gets its "created" entry).
    changelog: list[ChangelogEntry] = Field(default_factory=list)

    @property
    def is_history(self) -> bool:
        """True when the item carries its own ``metadata.createdAt``."""
        return self.metadata is not None and self.metadata.created_at is not None


class BatchRequest(WireModel):
    """Body of ``POST /events/batch``: 1 to :data:`MAX_BATCH_EVENTS` items."""

    events: list[BatchEventItem]


class BatchOutcome(str, enum.Enum):
    """What happened to one item."""

    created = "created"
    replayed = "replayed"
    refused = "refused"


class BatchItemResult(WireModel):
    """The result of one item: its event (created or replayed) or its refusal."""

    index: int
    outcome: BatchOutcome
    #: The HTTP status this item alone would have got (201 created; a replay answers the
    #: first result's; 400/403/409 refused).
    status: int
    idempotency_key: str = ""
    event: Event | None = None
    #: Soft freezes and broken glass, as ``POST /event`` answers them.
    warnings: list[str] = Field(default_factory=list)
    error: ErrorBody | None = None


class BatchResponse(WireModel):
    """Answer of ``POST /events/batch``: one result per item, in order, and the counts."""

    results: list[BatchItemResult] = Field(default_factory=list)
    created: int = 0
    replayed: int = 0
    refused: int = 0

    def refusals(self) -> list[BatchItemResult]:
        """The refused items' results."""
        return [r for r in self.results if r.outcome is BatchOutcome.refused]
