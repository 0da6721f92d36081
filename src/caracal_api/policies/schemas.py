"""Request and response models of the policy routes (policies.md §4, PO1–PO6)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from caracal_api.kit.schemas import Length, LenientBody

PolicyName = Annotated[str, Length(1, 200)]
Description = Annotated[str, Length(0, 2000)]
Content = Annotated[str, Field(min_length=1)]


class PolicyValidate(LenientBody):
    content: Content


class PolicyCreate(LenientBody):
    name: PolicyName
    description: Description | None = None  # optional, not nullable
    content: Content

    @field_validator("description", mode="before")
    @classmethod
    def _description_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be a string")
        return value


class PolicyVersionCreate(LenientBody):
    content: Content


class OutputContract(BaseModel):
    package: str
    rule: str
    decision: list[str]
    evaluation_status: list[str]


class Preview(BaseModel):
    package: str
    rules: list[str]
    default_result: bool
    decisions: list[str]
    inputs_referenced: list[str]
    data_referenced: list[str]


class ValidateResult(BaseModel):
    valid: bool
    schema_version: str
    input_schema_version: str
    output_contract: OutputContract
    preview: Preview


class Policy(BaseModel):
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


class PolicyVersion(BaseModel):
    id: str
    policy_id: str
    version: int
    content: str
    content_sha256: str
    schema_version: str
    created_by: str
    created_via_operator: bool
    created_at: str
    archived_at: str | None


class PolicyDetail(Policy):
    versions: list[PolicyVersion]


class PolicyList(BaseModel):
    items: list[Policy]
    next_cursor: str | None


class VersionSummary(BaseModel):
    id: str
    policy_id: str
    version: int
    content_sha256: str
    schema_version: str
    created_at: str


class PolicyCreated(BaseModel):
    id: str
    version_id: str
    zone_id: str
    name: str
    description: str | None
    version: VersionSummary


class PolicyVersionCreated(BaseModel):
    version_id: str
    id: str
    policy_id: str
    version: int
    content_sha256: str
    schema_version: str
    created_at: str
