"""Application request and response models (objects.md §2)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from caracal_api.kit.schemas import Length, StrictBody, StrictPatchBody, Trim

AppName = Annotated[str, Trim, Length(1, 200)]


class ApplicationCreate(StrictBody):
    name: AppName
    registration_method: Literal["managed"]
    traits: list[str] = Field(default_factory=list)


class ApplicationUpdate(StrictPatchBody):
    """Every field optional, none nullable: an explicit null fails validation."""

    name: AppName | None = None
    client_secret: Annotated[str, Length(32, 1024)] | None = None  # not trimmed
    traits: list[str] | None = None


class DcrCreate(StrictBody):
    name: AppName
    expires_in: Annotated[int, Field(ge=1, le=3600)] = 3600


class Application(BaseModel):
    id: str
    zone_id: str
    name: str
    registration_method: str
    traits: list[str] | None = None  # absent for zone tokens
    expires_at: datetime | None
    archived_at: datetime | None
    created_by: str | None
    created_via_operator: bool
    updated_by: str | None
    updated_via_operator: bool
    created_at: datetime
    updated_at: datetime | None


class ApplicationList(BaseModel):
    items: list[Application]
    next_cursor: str | None


class IssuedApplication(BaseModel):
    id: str
    zone_id: str
    name: str
    registration_method: str
    expires_at: datetime | None
    created_by: str | None
    created_via_operator: bool
    updated_by: str | None
    updated_via_operator: bool
    created_at: datetime
    updated_at: datetime | None
    client_secret: str


class RevealedSecret(BaseModel):
    client_secret: str
