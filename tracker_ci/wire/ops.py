"""Health and the one error body."""

from typing import Any

from pydantic import Field

from tracker_ci.wire.base import BUILT_ON_FIRST_USE, Text, WireModel, new_list

__all__ = [
    "ErrorBody",
    "HealthResponse",
]


class HealthResponse(WireModel):
    """Answer of ``GET /health`` (extension): the server and its database are up."""

    model_config = BUILT_ON_FIRST_USE

    status: Text = ""
    database: Text = ""
    version: Text = ""


# ---------------------------------------------------------------------- errors
class ErrorBody(WireModel):
    """The one error body: ``{"code": <gRPC code>, "message": "...", "details": []}``."""

    model_config = BUILT_ON_FIRST_USE

    code: int
    message: str
    details: list[Any] = Field(default_factory=new_list)
