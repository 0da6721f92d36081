"""Response models of the zone-event reads, for the OpenAPI document (events.md §9)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class AuditEvent(BaseModel):
    id: str
    zone_id: str
    event_type: str
    request_id: str | None
    decision: str | None
    policy_set_id: str | None
    policy_set_version_id: str | None
    manifest_sha: str | None
    evaluation_status: str | None
    determining_policies_json: Any
    diagnostics_json: Any
    metadata_json: Any
    occurred_at: str
    ingested_at: str


class AuditEventList(BaseModel):
    """JSON page; `fields=` projects each item, `format=csv` answers text/csv."""

    items: list[dict[str, Any]]
    next_cursor: str | None


class DeniedEvent(BaseModel):
    event_id: str
    event_type: str
    evaluation_status: str | None
    determining_policies: list[Any]
    diagnostics: list[Any]
    metadata: dict[str, Any]
    policy_input: dict[str, Any]


class Explanation(BaseModel):
    request_id: str
    zone_id: str
    final_decision: str
    denied: list[DeniedEvent]
    events: list[AuditEvent]


class AdminAuditRecord(BaseModel):
    id: str
    request_id: str | None
    actor_id: str | None
    actor_name: str | None
    actor_scope: str | None
    action: str
    method: str
    path: str
    entity_type: str | None
    entity_id: str | None
    status_code: int
    payload_json: Any
    occurred_at: str
    chain_seq: int | None
    signed: bool


class AdminAuditList(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class AuthorityRecord(BaseModel):
    authority_record_id: str
    authority_record_type: str
    subject_id: str | None
    parent_authority_record_id: str | None
    status: str
    authenticated_at: str
    created_at: str
    expires_at: str
    revoked_at: str | None
    revoked_reason: str | None
    zone_id: str


class AuthorityRecordList(BaseModel):
    items: list[AuthorityRecord]
    next_cursor: str | None


class Session(BaseModel):
    session_id: str
    application_id: str
    parent_session_id: str | None
    status: str
    lifecycle: str
    labels: list[str]
    depth: int
    child_count: int
    started_at: str
    last_active_at: str
    terminated_at: str | None
    termination_reason: str | None
    ttl_seconds: int | None


class SessionList(BaseModel):
    items: list[Session]
    next_cursor: str | None
