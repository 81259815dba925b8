"""Names no other test uses: the session's servers are shared by every test."""

from __future__ import annotations

import uuid

__all__ = ["unique"]


def unique(prefix: str = "svc") -> str:
    """``prefix-<10 hex digits>``, new at each call (``unique("api")`` -> ``api-3f9c...``)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
