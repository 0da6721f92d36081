"""Provider request and response models (objects.md §3)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from caracal_api.kit.schemas import Length, LenientBody, LenientPatchBody, Trim

Kind = Literal[
    "none",
    "caracal_mandate",
    "oauth2_authorization_code",
    "oauth2_client_credentials",
    "api_key",
    "bearer_token",
    "http_basic",
]


# Empty or blank counts as absent: the service reads "" as "not given". The identifier's
# own rules (§3.2) answer `invalid_provider_identifier`, so only the type is checked here.
OptionalName = Annotated[str, Trim, Length(0, 200)]
OptionalIdentifier = Annotated[str, Trim]


class ProviderCreate(LenientBody):
    name: OptionalName = None  # type: ignore[assignment]
    identifier: OptionalIdentifier = None  # type: ignore[assignment]
    kind: Kind
    config_json: dict[str, Any] = Field(default_factory=dict)
    check: bool = False


class ProviderUpdate(LenientPatchBody):
    name: OptionalName | None = None
    identifier: OptionalIdentifier | None = None
    kind: Kind | None = None
    config_json: dict[str, Any] | None = None


class DiscoveryRequest(LenientBody):
    issuer: Annotated[str, Trim, Length(1, 512)]


class Provider(BaseModel):
    id: str
    zone_id: str
    name: str
    identifier: str
    kind: str
    config_json: dict[str, Any]
    secret_config_keys: list[str]
    connectivity_failed_at: datetime | None
    created_by: str | None
    created_via_operator: bool
    updated_by: str | None
    updated_via_operator: bool
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class ProviderList(BaseModel):
    items: list[Provider]
    next_cursor: str | None


class CheckOut(BaseModel):
    status: Literal["ok", "auth_failed", "unreachable", "endpoint_error", "config_error"]
    detail: str
    checked_at: datetime


class DiscoveryOut(BaseModel):
    issuer: str
    token_endpoint: str
    authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    scopes_supported: list[str] | None = None
    token_endpoint_auth_methods_supported: list[str] | None = None
