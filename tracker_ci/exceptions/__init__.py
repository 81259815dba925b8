"""Errors raised by the tracker-ci client, one tree for both kinds of Tracker server.

```
TrackerError                       base; .message
├── ServerUnreachable              connection refused, DNS, timeout, dropped connection
├── ConfigError                    a bad config file or option value
├── NotApproved                    --require-approval: rejected, or not approved in time (exit 10)
└── APIError                       .status_code, .code (gRPC), .message, .details
    ├── InvalidRequest             400 / code 3
    │   └── PayloadTooLarge        413 / code 8
    ├── AuthenticationFailed       401 / code 16
    ├── PermissionDenied           403 / code 7
    ├── NotFound                   404 / code 5, or upstream's 500 "not found" / "no event found"
    ├── LockHeld                   409 / code 6, or upstream's 500 "already locked";
    │   │                          .service .environment .resource .holder .lock_id .event_id
    │   └── LockWaitTimeout        the lock was still held when ``--wait`` ran out; .waited
    ├── FreezeRefused              400 / code 9 "Blocked by hard freeze: ..."; .window_title
    │                              .until .ends_at
    ├── Superseded                 409 / code 10 "... superseded by ..."; .superseded_by
    ├── LockLost                   the lease is gone (410, or code 10 "lease"/"lock lost");
    │                              .service .environment .resource .lock_id
    ├── ServerError                5xx
    │   └── NotATracker            an error answer that is not JSON: another service or a
    │                              proxy answers at TRACKER_URL (exit 4)
    └── UnexpectedResponse         a 2xx answer that is not the JSON we expect
```

Every class carries its CLI exit code (``exit_code``, meanings in ``tracker_ci.exit_codes``)
and whether the open fail policy lets a deploy go on untracked through it (``outage``):
``exit_code_for`` and ``is_outage`` read them.

Two modules, one import path: ``tracker_ci.exceptions.tree`` holds the classes (and
``GrpcCode``, the codes of the wire's error body, which the bundled server answers with too);
``tracker_ci.exceptions.rules`` holds ``ERROR_RULES``, the ordered rows (HTTP status, gRPC
code, message pattern) -> class that ``error_from_response`` applies to a server's answer, and
``error_from_transport`` for a request that got none. A new refusal is one row there (and its
exit code in ``tracker_ci.exit_codes``). Import every name from here.
"""

from __future__ import annotations

from tracker_ci.exceptions.rules import (
    ERROR_RULES,
    ErrorRule,
    error_class_for,
    error_from_response,
    error_from_transport,
    is_lock_conflict,
)
from tracker_ci.exceptions.tree import (
    APIError,
    AuthenticationFailed,
    ConfigError,
    FreezeRefused,
    GrpcCode,
    InvalidRequest,
    LockHeld,
    LockLost,
    LockWaitTimeout,
    NotApproved,
    NotATracker,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServerError,
    ServerUnreachable,
    Superseded,
    TrackerError,
    UnexpectedResponse,
    exit_code_for,
    is_outage,
)

__all__ = [
    "ERROR_RULES",
    "APIError",
    "AuthenticationFailed",
    "ConfigError",
    "ErrorRule",
    "FreezeRefused",
    "GrpcCode",
    "InvalidRequest",
    "LockHeld",
    "LockLost",
    "LockWaitTimeout",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "NotATracker",
    "NotApproved",
    "ServerError",
    "ServerUnreachable",
    "Superseded",
    "TrackerError",
    "UnexpectedResponse",
    "error_class_for",
    "error_from_response",
    "error_from_transport",
    "exit_code_for",
    "is_lock_conflict",
    "is_outage",
]
