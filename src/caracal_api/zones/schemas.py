from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, field_validator

from caracal_api.kit.schemas import Length, StrictBody, StrictPatchBody, Trim

ZoneName = Annotated[str, Trim, Length(1, 120)]


def _slug(value: str) -> str:
    if not 1 <= len(value) <= 300:
        raise ValueError("must be 1..300 characters")
    if not all(ch in "abcdefghijklmnopqrstuvwxyz0123456789-" for ch in value):
        raise ValueError("must match ^[a-z0-9-]+$")
    return value


Slug = Annotated[str, AfterValidator(_slug)]


class ZoneCreate(StrictBody):
    name: ZoneName
    slug: Slug | None = None  # optional, but not nullable (§4.4)
    dcr_enabled: bool = False

    @field_validator("slug", mode="before")
    @classmethod
    def _slug_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null")
        return value


class ZoneUpdate(StrictPatchBody):
    """Every field optional, none nullable: an explicit null fails validation."""

    name: ZoneName | None = None
    slug: Slug | None = None
    dcr_enabled: bool | None = None
    dcr_shutdown: Literal["keep_live", "revoke_live"] | None = None
    operator_coauthor_badge: bool | None = None
    operator_governed: bool | None = None


class Zone(BaseModel):
    id: str
    name: str
    slug: str
    dcr_enabled: bool
    operator_coauthor_badge: bool
    operator_governed: bool
    created_by: str | None
    created_via_operator: bool
    updated_by: str | None
    updated_via_operator: bool
    created_at: str
    updated_at: str


class ZoneList(BaseModel):
    items: list[Zone]
    next_cursor: str | None


class DcrStatus(BaseModel):
    id: str
    dcr_enabled: bool
    live_dcr_applications: int
