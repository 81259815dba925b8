"""API tokens (extension): create body, the token as listed, the answers."""

from typing import Annotated

from pydantic import Field

from tracker_ci.wire.base import (
    BUILT_ON_FIRST_USE,
    Flag,
    Text,
    TextList,
    Timestamp,
    WireModel,
    new_list,
)

__all__ = [
    "TokenCreateRequest",
    "TokenCreatedResponse",
    "TokenInfo",
    "TokenListResponse",
    "TokenResponse",
]


class TokenCreateRequest(WireModel):
    """Body of ``POST /tokens`` (extension)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    services: TextList = Field(default_factory=new_list)
    admin: Flag = False
    #: A token that may only read (dashboards, scripts).
    read_only: Flag = False


class TokenInfo(WireModel):
    """A token as listed: never its secret."""

    id: Text = ""
    name: Text = ""
    services: TextList = Field(default_factory=new_list)
    admin: Flag = False
    created_at: Timestamp | None = None
    last_used_at: Timestamp | None = None
    prefix: Text = ""
    read_only: Flag = False


class TokenCreatedResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    token: TokenInfo
    secret: str


class TokenResponse(WireModel):
    """Answer of ``DELETE /tokens/{id}`` (extension): the revoked token."""

    model_config = BUILT_ON_FIRST_USE

    token: TokenInfo | None = None


class TokenListResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    tokens: list[TokenInfo] = Field(default_factory=new_list)
    total_count: int = 0
