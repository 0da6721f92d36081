from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel

from caracal_api.kit.ids import is_valid_id
from caracal_api.kit.schemas import Length, StrictBody


def _id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError("must match ^[A-Za-z0-9_.\\-:]{1,128}$")
    return value


class AdminTokenCreate(StrictBody):
    name: Annotated[str, Length(1, 120)]
    scope: Literal["global", "zone"]
    zone_id: Annotated[str, AfterValidator(_id)] | None = None
    capability: Literal["read", "write", "approve"] = "write"


class AdminToken(BaseModel):
    id: str
    name: str
    scope: str
    capability: str
    zone_id: str | None
    created_by: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class AdminTokenCreated(BaseModel):
    id: str
    name: str
    scope: str
    capability: str
    zone_id: str | None
    created_by: str
    created_at: str
    token: str


class AdminTokenList(BaseModel):
    items: list[AdminToken]
    next_cursor: str | None
