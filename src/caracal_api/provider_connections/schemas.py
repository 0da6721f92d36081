"""Provider-connection request and response models (objects.md §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel

from caracal_api.kit.ids import is_valid_id
from caracal_api.kit.schemas import Length, LenientBody
from caracal_api.kit.timefmt import parse_ts

SHARED_SUBJECT = "caracal:shared"


def _id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError("must match ^[A-Za-z0-9_.\\-:]{1,128}$")
    return value


def _timestamp(value: str) -> str:
    if parse_ts(value) is None:
        raise ValueError("must be an ISO-8601 UTC timestamp like 2026-01-01T00:00:00Z")
    return value


Subject = Annotated[str, Length(1, 256)]
ProviderId = Annotated[str, AfterValidator(_id)]
Token = Annotated[str, Length(1, 16384)]


class ConnectionImport(LenientBody):
    subject_id: Subject = SHARED_SUBJECT
    provider_id: ProviderId
    access_token: Token
    refresh_token: Token | None = None
    expires_at: Annotated[str, AfterValidator(_timestamp)] | None = None


class AuthorizeRequest(LenientBody):
    subject_id: Subject = SHARED_SUBJECT
    provider_id: ProviderId


class RevokeRequest(LenientBody):
    subject_id: Subject = SHARED_SUBJECT
    provider_id: ProviderId


class Connection(BaseModel):
    id: str
    zone_id: str
    subject_id: str
    provider_id: str
    status: str
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ConnectionListItem(Connection):
    refreshed_at: datetime | None
    renewable: bool


class ConnectionList(BaseModel):
    items: list[ConnectionListItem]
    next_cursor: str | None


class AuthorizeOut(BaseModel):
    authorization_url: str
    state: str
    expires_at: datetime


class RevokeOut(Connection):
    upstream_revocation: str
