"""The server's refusals, as domain errors: what went wrong, never how HTTP says it.

Stores, validation and the access rule raise these; ``errors.py`` alone turns them into an
HTTP status, a gRPC code and the one error body (its ``ERROR_STATUSES`` table). A new
refusal is a class here and one row there.

```
DomainError                  base; .message
├── InvalidInput             the request is wrong; the message says what to fix
├── Unauthenticated          no token, or an unknown or revoked one
├── Forbidden                the token may not do this
├── NotFound                 no such record
│   ├── EventNotFound
│   ├── LockNotFound
│   └── TokenNotFound
├── LockConflict             the key is held by a live lock; .holder
├── FreezeBlocked            a hard freeze window covers it (400, code 9)
├── QueueSuperseded          a newer waiter took its place (409, code 10)
├── BodyTooLarge             the body is larger than max_body_bytes
├── DatabaseUnavailable      the database does not answer
└── InternalError            a failure that is nobody's input
```
"""

from __future__ import annotations

from tracker_ci.models import Lock


class DomainError(Exception):
    """A refusal of the server; ``message`` is what the client reads."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """The request is wrong; the message says what to fix."""


class Unauthenticated(DomainError):
    """No token, or an unknown or revoked one."""


class Forbidden(DomainError):
    """The token may not do this."""


class NotFound(DomainError):
    """No such record (or no such route)."""


class EventNotFound(NotFound):
    """No event with this id (or Slack id)."""


class LockNotFound(NotFound):
    """No live lock with this id or key: released, expired or never taken."""


class TokenNotFound(NotFound):
    """No API token with this id."""


def held_message(holder: Lock) -> str:
    """Upstream's conflict message; it names the holder so a client can say who."""
    return (
        f"service {holder.service} is already locked for {holder.resource} in "
        f"{holder.environment} by {holder.who} (lock_id: {holder.id}, event_id: {holder.event_id})"
    )


class LockConflict(DomainError):
    """The key is held by a live lock, ``holder``; the message names it unless given."""

    def __init__(self, holder: Lock, message: str | None = None) -> None:
        super().__init__(message if message is not None else held_message(holder))
        self.holder = holder


class FreezeBlocked(DomainError):
    """A hard freeze window covers what the caller wants to open (break glass to pass)."""


class QueueSuperseded(DomainError):
    """A newer waiter took this waiter's place (the ``newest`` policy)."""


class BodyTooLarge(DomainError):
    """The request body is larger than ``max_body_bytes``."""


class DatabaseUnavailable(DomainError):
    """The database does not answer."""


class InternalError(DomainError):
    """A failure that is nobody's input (a bug, or a race lost too many times)."""
