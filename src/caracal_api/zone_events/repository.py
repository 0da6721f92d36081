"""SQL of the zone-event reads (events.md §9). Every filter value is a bound parameter."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit.pagination import Cursor

_AUDIT_COLUMNS: Final = (
    "id, zone_id, event_type, request_id, decision, policy_set_id, policy_set_version_id,"
    " manifest_sha, evaluation_status, determining_policies_json, diagnostics_json,"
    " metadata_json, occurred_at, ingested_at"
)
_ADMIN_AUDIT_COLUMNS: Final = (
    "id, request_id, actor_id, actor_name, actor_scope, action, method, path, entity_type,"
    " entity_id, status_code, payload_json, occurred_at, chain_seq, chain_hmac"
)
_AUTHORITY_COLUMNS: Final = (
    "id, zone_id, session_type, subject_id, parent_id, status, authenticated_at, created_at,"
    " expires_at, revoked_at, revoked_reason"
)
_SESSION_COLUMNS: Final = (
    "id, application_id, parent_id, status, lifecycle, labels, depth, child_count, started_at,"
    " last_active_at, terminated_at, termination_reason, ttl_seconds"
)


@dataclass
class Where:
    """AND-ed clauses with their bound parameters."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, clause: str, **params: Any) -> None:
        self.clauses.append(clause)
        self.params.update(params)

    def keyset(self, ts_column: str, cursor: Cursor | None) -> None:
        if cursor is not None:
            self.add(
                f"({ts_column}, id) < (:cursor_ts, :cursor_id)",
                cursor_ts=cursor.ts,
                cursor_id=cursor.id,
            )

    def sql(self) -> str:
        return " AND ".join(self.clauses)


async def _page(
    session: AsyncSession, table: str, columns: str, where: Where, ts_column: str, limit: int
) -> Sequence[Row[Any]]:
    statement = text(
        f"SELECT {columns} FROM {table} WHERE {where.sql()}"
        f" ORDER BY {ts_column} DESC, id DESC LIMIT :limit"
    )
    return (await session.execute(statement, {**where.params, "limit": limit})).all()


# --- E1 / E2 / E3 --------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    since: datetime | None = None
    until: datetime | None = None
    request_id: str | None = None
    decision: str | None = None
    event_types: tuple[str, ...] = ()
    application_id: str | None = None
    session_id: str | None = None
    authority_record_id: str | None = None
    label: str | None = None


async def list_audit(
    session: AsyncSession, zone_id: str, f: AuditFilters, limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    where = Where()
    where.add("zone_id = :zone_id", zone_id=zone_id)
    if f.since is not None:
        where.add("occurred_at >= :since", since=f.since)
    if f.until is not None:
        where.add("occurred_at < :until", until=f.until)
    if f.request_id is not None:
        where.add("request_id = :request_id", request_id=f.request_id)
    if f.decision is not None:
        where.add("decision = :decision", decision=f.decision)
    if len(f.event_types) == 1:
        where.add("event_type = :event_type", event_type=f.event_types[0])
    elif f.event_types:
        where.add("event_type = ANY(CAST(:event_types AS text[]))", event_types=list(f.event_types))
    if f.application_id is not None:
        where.add(
            "metadata_json->>'application_id' = :application_id", application_id=f.application_id
        )
    if f.session_id is not None:
        # `?` first, so the partial expression index can serve the lookup.
        where.add(
            "metadata_json ? 'agent_session_id'"
            " AND metadata_json->>'agent_session_id' = :session_id",
            session_id=f.session_id,
        )
    if f.authority_record_id is not None:
        where.add(
            "metadata_json ? 'session_id' AND metadata_json->>'session_id' = :ar_id",
            ar_id=f.authority_record_id,
        )
    if f.label is not None:
        where.add(
            "metadata_json->'agent_labels' @> CAST(:label AS jsonb)", label=json.dumps([f.label])
        )
    where.keyset("occurred_at", cursor)
    return await _page(session, "audit_events", _AUDIT_COLUMNS, where, "occurred_at", limit)


_BY_REQUEST = text(
    f"SELECT {_AUDIT_COLUMNS} FROM audit_events WHERE zone_id = :zone_id"
    " AND request_id = :request_id ORDER BY occurred_at ASC, id ASC"
)


async def audit_by_request(
    session: AsyncSession, zone_id: str, request_id: str
) -> Sequence[Row[Any]]:
    params = {"zone_id": zone_id, "request_id": request_id}
    return (await session.execute(_BY_REQUEST, params)).all()


# --- E4 / E7 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminAuditFilters:
    since: datetime | None = None
    until: datetime | None = None
    actor_id: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    method: str | None = None
    outcome: str = "success"


async def list_admin_audit(
    session: AsyncSession,
    zone_id: str | None,
    f: AdminAuditFilters,
    limit: int,
    cursor: Cursor | None,
) -> Sequence[Row[Any]]:
    """One zone's chain, or the global chain (`zone_id IS NULL`) when `zone_id` is None."""
    where = Where()
    if zone_id is None:
        where.add("zone_id IS NULL")
    else:
        where.add("zone_id = :zone_id", zone_id=zone_id)
    if f.since is not None:
        where.add("occurred_at >= :since", since=f.since)
    if f.until is not None:
        where.add("occurred_at < :until", until=f.until)
    if f.actor_id is not None:
        where.add("actor_id = :actor_id", actor_id=f.actor_id)
    if f.entity_type is not None:
        where.add("entity_type = :entity_type", entity_type=f.entity_type)
    if f.entity_id is not None:
        where.add("entity_id = :entity_id", entity_id=f.entity_id)
    if f.method is not None:
        where.add("method = :method", method=f.method)
    if f.outcome == "success":
        where.add("status_code < 400")
    elif f.outcome == "failure":
        where.add("status_code >= 400")
    where.keyset("occurred_at", cursor)
    return await _page(
        session, "admin_audit_events", _ADMIN_AUDIT_COLUMNS, where, "occurred_at", limit
    )


# --- E5 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorityFilters:
    authority_record_id: str | None = None
    status: str | None = None
    subject_id: str | None = None


async def list_authority_records(
    session: AsyncSession, zone_id: str, f: AuthorityFilters, limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    where = Where()
    where.add("zone_id = :zone_id", zone_id=zone_id)
    if f.authority_record_id is not None:
        where.add("id = :ar_id", ar_id=f.authority_record_id)
    if f.status is not None:
        where.add("status = :status", status=f.status)
    if f.subject_id is not None:
        where.add("subject_id = :subject_id", subject_id=f.subject_id)
    where.keyset("created_at", cursor)
    return await _page(session, "authority_records", _AUTHORITY_COLUMNS, where, "created_at", limit)


# --- E6 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionFilters:
    status: str | None = None
    lifecycle: str | None = None
    application_id: str | None = None
    parent_session_id: str | None = None
    label: str | None = None


async def list_sessions(
    session: AsyncSession, zone_id: str, f: SessionFilters, limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    where = Where()
    where.add("zone_id = :zone_id", zone_id=zone_id)
    if f.status is not None:
        where.add("status = :status", status=f.status)
    if f.lifecycle is not None:
        where.add("lifecycle = :lifecycle", lifecycle=f.lifecycle)
    if f.application_id is not None:
        where.add("application_id = :application_id", application_id=f.application_id)
    if f.parent_session_id is not None:
        where.add("parent_id = :parent_id", parent_id=f.parent_session_id)
    if f.label is not None:
        where.add("labels @> ARRAY[CAST(:label AS text)]", label=f.label)
    where.keyset("started_at", cursor)
    return await _page(session, "sessions", _SESSION_COLUMNS, where, "started_at", limit)
