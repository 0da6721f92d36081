"""Grant request and response models (objects.md §5)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from caracal_api.kit.ids import is_valid_id
from caracal_api.kit.schemas import Length, LenientBody

SCOPE_RE = re.compile(r"^[a-z0-9:_./-]{1,200}$")


def is_grant_scope(value: str) -> bool:
    return SCOPE_RE.fullmatch(value) is not None


def _scope(value: str) -> str:
    if not is_grant_scope(value):
        raise ValueError("must match ^[a-z0-9:_./-]+$ (1..200 characters)")
    return value


def _id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError("must match ^[A-Za-z0-9_.\\-:]{1,128}$")
    return value


GrantScope = Annotated[str, AfterValidator(_scope)]
Id = Annotated[str, AfterValidator(_id)]


class GrantCreate(LenientBody):
    application_id: Id
    user_id: Annotated[str, Length(1, 256)]
    resource_id: Id
    scopes: Annotated[list[GrantScope], Field(min_length=1, max_length=64)]


class GrantCreated(BaseModel):
    id: str
    zone_id: str
    application_id: str | None
    user_id: str
    resource_id: str
    scopes: list[str]
    status: str
    created_by: str | None
    created_via_operator: bool
    created_at: datetime


class Grant(GrantCreated):
    updated_by: str | None
    updated_via_operator: bool


class GrantListItem(Grant):
    provider_id: str | None
    application_name: str | None
    resource_name: str | None
    provider_name: str | None
    provider_kind: str | None


class GrantList(BaseModel):
    items: list[GrantListItem]
    next_cursor: str | None
