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

The models live in ``tracker_ci.wire``, one module per resource (``wire.events``,
``wire.locks``, ``wire.queue``...), so that a process builds only the models it uses: a
``tracker-ci deploy start`` never builds the token, webhook or freeze models. This module
is their one public face: the vocabulary (enums, status words, timestamp and duration
encodings, no pydantic) is imported here at once, and each model is imported from its
resource module on first use (``from tracker_ci.models import Lock`` imports
``tracker_ci.wire.locks`` only). A class has one definition, shared by client and server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tracker_ci.wire.vocabulary import (
    API_PREFIX,
    CLOSED_STATUSES,
    CLOSING_STATUSES,
    DURATION_STATUSES,
    ENVIRONMENT_NAME,
    FINISH_STATUSES,
    LOCKING_TYPES,
    NO_SUCH_ROUTE,
    OPEN_STATUSES,
    OPENING_STATUSES,
    STATUS_ALIASES,
    ChangeType,
    Environment,
    EventType,
    Priority,
    Status,
    close_attributes,
    format_duration,
    format_timestamp,
    parse_duration,
    parse_finish_status,
    replacing_body,
    takes_lock,
    utcnow,
)
from tracker_ci.wire.vocabulary import (
    WireEnum as WireEnum,
)

if TYPE_CHECKING:  # what a type checker sees; at run time __getattr__ imports on first use
    from tracker_ci.wire.base import (
        ChangeTypeField as ChangeTypeField,
    )
    from tracker_ci.wire.base import (
        Duration as Duration,
    )
    from tracker_ci.wire.base import (
        EnvironmentField as EnvironmentField,
    )
    from tracker_ci.wire.base import (
        EventTypeField as EventTypeField,
    )
    from tracker_ci.wire.base import (
        Flag as Flag,
    )
    from tracker_ci.wire.base import (
        Int64 as Int64,
    )
    from tracker_ci.wire.base import (
        PriorityField as PriorityField,
    )
    from tracker_ci.wire.base import (
        StatusField as StatusField,
    )
    from tracker_ci.wire.base import (
        Text as Text,
    )
    from tracker_ci.wire.base import (
        TextList as TextList,
    )
    from tracker_ci.wire.base import (
        Timestamp as Timestamp,
    )
    from tracker_ci.wire.base import (
        WholeNumber as WholeNumber,
    )
    from tracker_ci.wire.base import (
        WireModel as WireModel,
    )
    from tracker_ci.wire.catalog import (
        DELIVERABLE_TYPES,
        Catalog,
        CatalogListResponse,
        CatalogResponse,
        CatalogType,
        CommunicationChannel,
        CommunicationType,
        ComplianceSummary,
        DashboardLink,
        DashboardType,
        DeleteCatalogResponse,
        DeliverableComplianceStats,
        DeliverableUsage,
        InfrastructureResource,
        InfrastructureType,
        Language,
        Platform,
        ProjectCompliance,
        Sla,
        SlaLevel,
        UpdateDependenciesRequest,
        UpdateVersionsRequest,
        UsedDeliverable,
        VersionComplianceResponse,
        VulnerabilitySource,
        VulnerabilitySummary,
    )
    from tracker_ci.wire.events import (
        MAX_CHANGES,
        ApprovalRequest,
        ChangeKind,
        ChangelogEntry,
        ChangelogListResponse,
        ChangelogRequest,
        CloseEventRequest,
        CreateEventRequest,
        DeleteEventResponse,
        Event,
        EventAttributes,
        EventLinks,
        EventListResponse,
        EventMetadata,
        EventResponse,
        ShippedChange,
        SlackIdRequest,
        UpdateEventRequest,
    )
    from tracker_ci.wire.freezes import (
        ActiveFreeze,
        ActiveFreezesResponse,
        FreezeScope,
        FreezeType,
        FreezeWindow,
        FreezeWindowListResponse,
        FreezeWindowResponse,
    )
    from tracker_ci.wire.insights import (
        DoraKey,
        DoraKeys,
        DoraLevel,
        DoraReport,
        Percentiles,
    )
    from tracker_ci.wire.locks import (
        CreateLockRequest,
        Lock,
        LockListResponse,
        LockResponse,
        ReleaseLockRequest,
        RenewLockRequest,
        UnlockResponse,
        UpdateLockRequest,
    )
    from tracker_ci.wire.ops import (
        ErrorBody,
        HealthResponse,
    )
    from tracker_ci.wire.queue import (
        QUEUE_POLICIES,
        EvictLockRequest,
        LockStatusResponse,
        QueueEntry,
        QueuePolicy,
        QueuePolicyListResponse,
        QueueRequest,
        QueueResponse,
    )
    from tracker_ci.wire.stats import (
        MonthlyStat,
        MonthlyStatsResponse,
        StatsResponse,
    )
    from tracker_ci.wire.tokens import (
        TokenCreatedResponse,
        TokenCreateRequest,
        TokenInfo,
        TokenListResponse,
        TokenResponse,
    )
    from tracker_ci.wire.webhooks import (
        SLACK_MENTION,
        WEBHOOK_EVENTS,
        WEBHOOK_KINDS,
        Webhook,
        WebhookCreateRequest,
        WebhookDelivery,
        WebhookDeliveryListResponse,
        WebhookListResponse,
        WebhookOptions,
        WebhookResponse,
        WebhookSecretRequest,
    )

__all__ = [
    "API_PREFIX",
    # the service catalog
    "DELIVERABLE_TYPES",
    "Catalog",
    "CatalogListResponse",
    "CatalogResponse",
    "CatalogType",
    "CommunicationChannel",
    "CommunicationType",
    "ComplianceSummary",
    "DashboardLink",
    "DashboardType",
    "DeleteCatalogResponse",
    "DeliverableComplianceStats",
    "DeliverableUsage",
    "InfrastructureResource",
    "InfrastructureType",
    "Language",
    "Platform",
    "ProjectCompliance",
    "Sla",
    "SlaLevel",
    "UpdateDependenciesRequest",
    "UpdateVersionsRequest",
    "UsedDeliverable",
    "VersionComplianceResponse",
    "VulnerabilitySource",
    "VulnerabilitySummary",
    "ENVIRONMENT_NAME",
    "ActiveFreeze",
    "ActiveFreezesResponse",
    "MAX_CHANGES",
    "ChangeKind",
    "DoraKey",
    "DoraKeys",
    "DoraLevel",
    "DoraReport",
    "Percentiles",
    "ShippedChange",
    "CLOSED_STATUSES",
    "CLOSING_STATUSES",
    "DURATION_STATUSES",
    "FINISH_STATUSES",
    "LOCKING_TYPES",
    "NO_SUCH_ROUTE",
    "OPENING_STATUSES",
    "OPEN_STATUSES",
    "STATUS_ALIASES",
    "takes_lock",
    "ApprovalRequest",
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
    "CloseEventRequest",
    "UpdateLockRequest",
    "SLACK_MENTION",
    "WEBHOOK_EVENTS",
    "WEBHOOK_KINDS",
    "Webhook",
    "WebhookCreateRequest",
    "WebhookDelivery",
    "WebhookDeliveryListResponse",
    "WebhookListResponse",
    "WebhookOptions",
    "WebhookResponse",
    "WebhookSecretRequest",
    "format_duration",
    "replacing_body",
    "close_attributes",
    "format_timestamp",
    "parse_duration",
    "parse_finish_status",
    "utcnow",
]

#: Where each model (and pydantic-side type) is defined: its module under tracker_ci.wire.
_HOMES: dict[str, str] = {
    "ChangeTypeField": "base",
    "Duration": "base",
    "EnvironmentField": "base",
    "EventTypeField": "base",
    "Flag": "base",
    "Int64": "base",
    "PriorityField": "base",
    "StatusField": "base",
    "Text": "base",
    "TextList": "base",
    "Timestamp": "base",
    "WholeNumber": "base",
    "WireModel": "base",
    "DELIVERABLE_TYPES": "catalog",
    "Catalog": "catalog",
    "CatalogListResponse": "catalog",
    "CatalogResponse": "catalog",
    "CatalogType": "catalog",
    "CommunicationChannel": "catalog",
    "CommunicationType": "catalog",
    "ComplianceSummary": "catalog",
    "DashboardLink": "catalog",
    "DashboardType": "catalog",
    "DeleteCatalogResponse": "catalog",
    "DeliverableComplianceStats": "catalog",
    "DeliverableUsage": "catalog",
    "InfrastructureResource": "catalog",
    "InfrastructureType": "catalog",
    "Language": "catalog",
    "Platform": "catalog",
    "ProjectCompliance": "catalog",
    "Sla": "catalog",
    "SlaLevel": "catalog",
    "UpdateDependenciesRequest": "catalog",
    "UpdateVersionsRequest": "catalog",
    "UsedDeliverable": "catalog",
    "VersionComplianceResponse": "catalog",
    "VulnerabilitySource": "catalog",
    "VulnerabilitySummary": "catalog",
    "MAX_CHANGES": "events",
    "ApprovalRequest": "events",
    "ChangeKind": "events",
    "ChangelogEntry": "events",
    "ChangelogListResponse": "events",
    "ChangelogRequest": "events",
    "CloseEventRequest": "events",
    "CreateEventRequest": "events",
    "DeleteEventResponse": "events",
    "Event": "events",
    "EventAttributes": "events",
    "EventLinks": "events",
    "EventListResponse": "events",
    "EventMetadata": "events",
    "EventResponse": "events",
    "ShippedChange": "events",
    "SlackIdRequest": "events",
    "UpdateEventRequest": "events",
    "MonthlyStat": "stats",
    "MonthlyStatsResponse": "stats",
    "StatsResponse": "stats",
    "CreateLockRequest": "locks",
    "Lock": "locks",
    "LockListResponse": "locks",
    "LockResponse": "locks",
    "ReleaseLockRequest": "locks",
    "RenewLockRequest": "locks",
    "UnlockResponse": "locks",
    "UpdateLockRequest": "locks",
    "QUEUE_POLICIES": "queue",
    "EvictLockRequest": "queue",
    "LockStatusResponse": "queue",
    "QueueEntry": "queue",
    "QueuePolicy": "queue",
    "QueuePolicyListResponse": "queue",
    "QueueRequest": "queue",
    "QueueResponse": "queue",
    "ActiveFreeze": "freezes",
    "ActiveFreezesResponse": "freezes",
    "FreezeScope": "freezes",
    "FreezeType": "freezes",
    "FreezeWindow": "freezes",
    "FreezeWindowListResponse": "freezes",
    "FreezeWindowResponse": "freezes",
    "TokenCreateRequest": "tokens",
    "TokenCreatedResponse": "tokens",
    "TokenInfo": "tokens",
    "TokenListResponse": "tokens",
    "TokenResponse": "tokens",
    "SLACK_MENTION": "webhooks",
    "WEBHOOK_EVENTS": "webhooks",
    "WEBHOOK_KINDS": "webhooks",
    "Webhook": "webhooks",
    "WebhookCreateRequest": "webhooks",
    "WebhookDelivery": "webhooks",
    "WebhookDeliveryListResponse": "webhooks",
    "WebhookListResponse": "webhooks",
    "WebhookOptions": "webhooks",
    "WebhookSecretRequest": "webhooks",
    "WebhookResponse": "webhooks",
    "ErrorBody": "ops",
    "HealthResponse": "ops",
    "DoraKey": "insights",
    "DoraKeys": "insights",
    "DoraLevel": "insights",
    "DoraReport": "insights",
    "Percentiles": "insights",
}


def __getattr__(name: str) -> Any:
    """Import a wire model's resource module the first time one of its names is used."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tracker_ci.wire.{home}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
