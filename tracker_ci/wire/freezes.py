"""Freeze windows (extension): the window, its answers and the windows in force."""

from typing import TYPE_CHECKING

from pydantic import Field

from tracker_ci.wire.base import (
    BUILT_ON_FIRST_USE,
    Flag,
    Text,
    TextList,
    Timestamp,
    WireModel,
    new_list,
    wire_enum_field,
)
from tracker_ci.wire.vocabulary import WireEnum

__all__ = [
    "ActiveFreeze",
    "ActiveFreezesResponse",
    "FreezeScope",
    "FreezeType",
    "FreezeWindow",
    "FreezeWindowListResponse",
    "FreezeWindowResponse",
]


class FreezeType(WireEnum):
    FREEZE_TYPE_UNSPECIFIED = "FREEZE_TYPE_UNSPECIFIED"
    FREEZE_TYPE_HARD = "FREEZE_TYPE_HARD"
    FREEZE_TYPE_SOFT = "FREEZE_TYPE_SOFT"


class FreezeScope(WireEnum):
    FREEZE_SCOPE_UNSPECIFIED = "FREEZE_SCOPE_UNSPECIFIED"
    FREEZE_SCOPE_GLOBAL = "FREEZE_SCOPE_GLOBAL"
    FREEZE_SCOPE_ENVIRONMENT = "FREEZE_SCOPE_ENVIRONMENT"
    FREEZE_SCOPE_SERVICE = "FREEZE_SCOPE_SERVICE"
    FREEZE_SCOPE_DOMAIN = "FREEZE_SCOPE_DOMAIN"


if TYPE_CHECKING:
    FreezeTypeField = FreezeType
    FreezeScopeField = FreezeScope
else:
    FreezeTypeField = wire_enum_field(FreezeType)
    FreezeScopeField = wire_enum_field(FreezeScope)


class FreezeWindow(WireModel):
    """A freeze window in the wire shape of upstream's freeze branch; ``cronStart`` /
    ``cronEnd`` (5-field cron in ``timezone``) are our recurrence extension."""

    id: Text = ""
    title: Text = ""
    description: Text = ""
    type: FreezeTypeField = FreezeType.FREEZE_TYPE_UNSPECIFIED  # type: ignore[valid-type]
    scope_type: FreezeScopeField = FreezeScope.FREEZE_SCOPE_UNSPECIFIED  # type: ignore[valid-type]
    scope_ids: TextList = Field(default_factory=new_list)
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    timezone: Text = ""
    created_by: Text = ""
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    active: Flag = True
    cron_start: Text = ""
    cron_end: Text = ""


class FreezeWindowResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    freeze_window: FreezeWindow | None = None


class FreezeWindowListResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    freeze_windows: list[FreezeWindow] = Field(default_factory=new_list)
    total_count: int = 0


class ActiveFreeze(WireModel):
    """A window in force now, and when that stretch of it ends (None: until further notice)."""

    freeze_window: FreezeWindow
    until: Timestamp | None = None


class ActiveFreezesResponse(WireModel):
    """``GET /freeze-windows/active`` (extension): the windows in force now, in scope."""

    model_config = BUILT_ON_FIRST_USE

    freezes: list[ActiveFreeze] = Field(default_factory=new_list)
