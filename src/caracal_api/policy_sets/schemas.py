"""Request and response models of the policy-set routes (policies.md §5, PS1–PS10)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from caracal_api.kit.ids import is_valid_id
from caracal_api.kit.schemas import Length, LenientBody

MAX_MANIFEST = 256


def _id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError("must match ^[A-Za-z0-9_.\\-:]{1,128}$")
    return value


Identifier = Annotated[str, AfterValidator(_id)]


class PolicySetCreate(LenientBody):
    name: Annotated[str, Length(1, 200)]
    description: Annotated[str, Length(0, 2000)] | None = None  # optional, not nullable

    @field_validator("description", mode="before")
    @classmethod
    def _description_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be a string")
        return value


class ManifestEntry(LenientBody):
    policy_version_id: Identifier


class PolicySetVersionCreate(LenientBody):
    manifest: Annotated[list[ManifestEntry], Field(min_length=1, max_length=MAX_MANIFEST)]


class ActivateBody(LenientBody):
    version_id: Identifier


class SimulateBody(LenientBody):
    version_id: Identifier
    input: dict[str, Any] | None = None  # optional JSON object; an explicit null is refused

    @model_validator(mode="before")
    @classmethod
    def _input_not_null(cls, data: Any) -> Any:
        if isinstance(data, dict) and "input" in data and data["input"] is None:
            raise ValueError("input must be a JSON object")
        return data


class PolicySet(BaseModel):
    id: str
    zone_id: str
    name: str
    description: str | None
    created_by: str
    created_via_operator: bool
    updated_by: str | None
    updated_via_operator: bool
    created_at: str
    updated_at: str
    active_version_id: str | None


class PolicySetList(BaseModel):
    items: list[PolicySet]
    next_cursor: str | None


class PolicySetVersion(BaseModel):
    id: str
    policy_set_id: str
    version: int
    manifest_sha256: str
    schema_version: str
    created_by: str
    created_via_operator: bool
    created_at: str


class PolicySetVersionList(BaseModel):
    items: list[PolicySetVersion]
    next_cursor: str | None


class PolicySetVersionDetail(PolicySetVersion):
    manifest_json: list[dict[str, str]]
    policies: list[str]


class PolicySetVersionCreated(BaseModel):
    version_id: str
    id: str
    policy_set_id: str
    version: int
    manifest_sha256: str
    schema_version: str
    created_at: str


class Activated(BaseModel):
    activated: bool
    version_id: str
    outbox_id: str
    status_url: str


class OutboxState(BaseModel):
    id: str | None
    state: str
    attempts: int
    last_error: str | None
    dispatched_at: str | None


class ActivationStatus(BaseModel):
    zone_id: str
    policy_set_id: str
    version_id: str
    active: bool
    active_version_id: str | None
    manifest_sha256: str | None
    propagation_status: str
    outbox: OutboxState
    sts: dict[str, Any]


class SimulateResult(BaseModel):
    dry_run: bool
    would_activate: bool
    policy_set_id: str
    version_id: str
    schema_version: str
    input_schema_version: str
    manifest_sha256: str
    policies: list[str]
    warnings: list[str]
    explanation: dict[str, Any]
    result: dict[str, Any] | None
