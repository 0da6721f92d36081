"""Resource request and response models (objects.md §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, Field

from caracal_api.kit.ids import is_valid_id
from caracal_api.kit.schemas import Length, LenientBody, LenientPatchBody
from caracal_api.resources.identifiers import is_valid_upstream_url


def _upstream(value: str) -> str:
    if not is_valid_upstream_url(value):
        raise ValueError("must be an absolute http(s) URL with a host (at most 2048 characters)")
    return value


def _id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError("must match ^[A-Za-z0-9_.\\-:]{1,128}$")
    return value


Name = Annotated[str, Length(1, 200)]
Identifier = Annotated[str, Length(1, 512)]
UpstreamUrl = Annotated[str, AfterValidator(_upstream)]
ProviderId = Annotated[str, AfterValidator(_id)]
Scopes = Annotated[list[Annotated[str, Length(1, 200)]], Field(min_length=1, max_length=64)]
Enforcement = Literal["enforced", "transport_uniform"]


class Operation(LenientBody):
    method: Annotated[str, Length(1, 16)]
    path: Annotated[str, Length(1, 512)]
    scope: Annotated[str, Length(1, 200)]


Operations = Annotated[list[Operation], Field(max_length=256)]


class ResourceCreate(LenientBody):
    # Non-nullable optional fields: the type refuses null, the default marks "absent".
    name: Name = None  # type: ignore[assignment]
    identifier: Identifier = None  # type: ignore[assignment]
    upstream_url: UpstreamUrl | None = None
    scopes: Scopes
    credential_provider_id: ProviderId | None = None
    operations: Operations = Field(default_factory=list)
    operation_enforcement: Enforcement = "enforced"


class ResourceUpdate(LenientPatchBody):
    nullable: ClassVar[frozenset[str]] = frozenset({"upstream_url", "credential_provider_id"})

    name: Name | None = None
    identifier: Identifier | None = None
    upstream_url: UpstreamUrl | None = None
    scopes: Scopes | None = None
    credential_provider_id: ProviderId | None = None
    operations: Operations | None = None
    operation_enforcement: Enforcement | None = None


class OperationOut(BaseModel):
    method: str
    path: str
    scope: str


class Resource(BaseModel):
    id: str
    zone_id: str
    name: str
    identifier: str
    upstream_url: str | None
    scopes: list[str]
    credential_provider_id: str
    operations: list[OperationOut]
    operation_enforcement: str
    created_by: str | None
    created_via_operator: bool
    updated_by: str | None
    updated_via_operator: bool
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class ResourceList(BaseModel):
    items: list[Resource]
    next_cursor: str | None


def operations_of(value: Any) -> list[dict[str, str]]:
    return [dict(op) for op in value or []]
