"""Authority records (STS), agent sessions and delegation edges (coordinator).

caracal-api reads these and applies revocation/termination updates; the other services
insert them, so the shapes here must match theirs exactly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import Text

from caracal_api.models.base import (
    EMPTY_JSONB_OBJECT,
    EMPTY_TEXT_ARRAY,
    NOW,
    ZERO,
    Base,
    text_default,
)


class AuthorityRecord(Base):
    __tablename__ = "authority_records"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="authority_records_pkey"),
        UniqueConstraint("zone_id", "id", name="authority_records_zone_id_id_unique"),
        ForeignKeyConstraint(["zone_id"], ["zones.id"], name="authority_records_zone_id_fkey"),
        ForeignKeyConstraint(
            ["parent_id"], ["authority_records.id"], name="authority_records_parent_id_fkey"
        ),
        CheckConstraint(
            "session_type IN ('user', 'application')",
            name="authority_records_session_type_check",
        ),
        CheckConstraint(
            "status IN ('active', 'revoked', 'expired')", name="authority_records_status_check"
        ),
        Index(
            "authority_records_expires_at_idx",
            "expires_at",
            postgresql_where=text("status = 'active'"),
        ),
        Index(
            "authority_records_zone_active_idx",
            "zone_id",
            "expires_at",
            postgresql_where=text("status = 'active'"),
        ),
        Index(
            "authority_records_zone_created_idx",
            "zone_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
        Index("authority_records_zone_id_subject_id_status_idx", "zone_id", "subject_id", "status"),
        Index("authority_records_zone_subject_idx", "zone_id", "subject_id"),
    )

    id: Mapped[str]
    zone_id: Mapped[str]
    session_type: Mapped[str]
    subject_id: Mapped[str | None]
    parent_id: Mapped[str | None]
    status: Mapped[str] = mapped_column(server_default=text_default("active"))
    expires_at: Mapped[datetime]
    authenticated_at: Mapped[datetime]
    claims_json: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None]


class AgentSession(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="sessions_pkey"),
        UniqueConstraint("zone_id", "id", name="sessions_zone_id_id_unique"),
        ForeignKeyConstraint(
            ["zone_id", "application_id"],
            ["applications.zone_id", "applications.id"],
            name="sessions_zone_application_fk",
        ),
        ForeignKeyConstraint(["parent_id"], ["sessions.id"], name="sessions_parent_id_fkey"),
        ForeignKeyConstraint(
            ["zone_id", "parent_id"],
            ["sessions.zone_id", "sessions.id"],
            name="sessions_zone_parent_fk",
        ),
        ForeignKeyConstraint(
            ["zone_id", "subject_authority_record_id"],
            ["authority_records.zone_id", "authority_records.id"],
            name="sessions_zone_authority_record_fk",
        ),
        CheckConstraint(
            "status IN ('active', 'suspended', 'terminated', 'expired')",
            name="sessions_status_check",
        ),
        CheckConstraint("lifecycle IN ('task', 'service')", name="sessions_lifecycle_check"),
        CheckConstraint("lease_generation >= 0", name="sessions_lease_generation_check"),
        CheckConstraint(
            "(status IN ('terminated', 'expired') AND terminated_at IS NOT NULL)"
            " OR (status IN ('active', 'suspended') AND terminated_at IS NULL)",
            name="sessions_terminal_fields_check",
        ),
        CheckConstraint(
            "(lifecycle = 'task' AND ttl_seconds IS NOT NULL AND ttl_seconds > 0"
            " AND last_heartbeat_at IS NULL AND heartbeat_deadline_at IS NULL)"
            " OR (lifecycle = 'service' AND ttl_seconds IS NULL"
            " AND last_heartbeat_at IS NOT NULL AND heartbeat_deadline_at IS NOT NULL)",
            name="sessions_lifecycle_fields_check",
        ),
        Index(
            "sessions_last_active_at_idx",
            "last_active_at",
            postgresql_where=text("status = 'active'"),
        ),
        Index(
            "sessions_terminal_retention_idx",
            "terminated_at",
            "id",
            postgresql_where=text("status IN ('terminated', 'expired')"),
        ),
        Index(
            "sessions_service_heartbeat_deadline_idx",
            "heartbeat_deadline_at",
            postgresql_where=text("status = 'active' AND lifecycle = 'service'"),
        ),
        Index("sessions_subject_authority_record_id_idx", "subject_authority_record_id"),
        Index("sessions_zone_id_parent_id_status_idx", "zone_id", "parent_id", "status"),
        # Revision 0002: keyset paging of a zone's sessions.
        Index(
            "sessions_zone_started_keyset_idx",
            "zone_id",
            text("started_at DESC"),
            text("id DESC"),
        ),
    )

    id: Mapped[str]
    zone_id: Mapped[str]
    application_id: Mapped[str]
    parent_id: Mapped[str | None]
    subject_authority_record_id: Mapped[str]
    status: Mapped[str] = mapped_column(server_default=text_default("active"))
    depth: Mapped[int] = mapped_column(server_default=ZERO)
    labels: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=EMPTY_TEXT_ARRAY)
    max_children: Mapped[int] = mapped_column(server_default=text("10"))
    child_count: Mapped[int] = mapped_column(server_default=ZERO)
    started_at: Mapped[datetime] = mapped_column(server_default=NOW)
    last_active_at: Mapped[datetime] = mapped_column(server_default=NOW)
    terminated_at: Mapped[datetime | None]
    # NULL for service sessions (sessions_lifecycle_fields_check).
    ttl_seconds: Mapped[int | None] = mapped_column(server_default=text("3600"))
    metadata_json: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)
    lifecycle: Mapped[str] = mapped_column(server_default=text_default("task"))
    last_heartbeat_at: Mapped[datetime | None]
    heartbeat_deadline_at: Mapped[datetime | None]
    termination_reason: Mapped[str | None]
    lease_generation: Mapped[int] = mapped_column(BigInteger, server_default=ZERO)


class DelegationEdge(Base):
    __tablename__ = "delegation_edges"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="delegation_edges_pkey"),
        UniqueConstraint("zone_id", "id", name="delegation_edges_zone_id_id_unique"),
        ForeignKeyConstraint(
            ["source_session_id"],
            ["sessions.id"],
            name="delegation_edges_source_session_id_fkey",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["zone_id", "source_session_id"],
            ["sessions.zone_id", "sessions.id"],
            name="delegation_edges_zone_source_fk",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["target_session_id"],
            ["sessions.id"],
            name="delegation_edges_target_session_id_fkey",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["zone_id", "target_session_id"],
            ["sessions.zone_id", "sessions.id"],
            name="delegation_edges_zone_target_fk",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["zone_id", "issuer_application_id"],
            ["applications.zone_id", "applications.id"],
            name="delegation_edges_zone_issuer_application_fk",
        ),
        ForeignKeyConstraint(
            ["zone_id", "receiver_application_id"],
            ["applications.zone_id", "applications.id"],
            name="delegation_edges_zone_receiver_application_fk",
        ),
        ForeignKeyConstraint(
            ["resource_id"], ["resources.id"], name="delegation_edges_resource_id_fkey"
        ),
        ForeignKeyConstraint(
            ["zone_id", "resource_id"],
            ["resources.zone_id", "resources.id"],
            name="delegation_edges_zone_resource_fk",
        ),
        # Only parent_edge_id is cleared: zone_id is part of the key and NOT NULL.
        ForeignKeyConstraint(
            ["zone_id", "parent_edge_id"],
            ["delegation_edges.zone_id", "delegation_edges.id"],
            name="delegation_edges_zone_parent_fk",
            ondelete="SET NULL (parent_edge_id)",
        ),
        CheckConstraint(
            "status IN ('active', 'revoked', 'expired')", name="delegation_edges_status_check"
        ),
        CheckConstraint("source_session_id <> target_session_id", name="delegation_edges_check"),
        CheckConstraint(
            "(status = 'revoked' AND revoked_at IS NOT NULL)"
            " OR (status IN ('active', 'expired') AND revoked_at IS NULL)",
            name="delegation_edges_revocation_fields_check",
        ),
        Index(
            "delegation_edges_expires_at_idx",
            "expires_at",
            postgresql_where=text("status = 'active'"),
        ),
        Index(
            "delegation_edges_zone_id_parent_edge_id_idx",
            "zone_id",
            "parent_edge_id",
            postgresql_where=text("parent_edge_id IS NOT NULL"),
        ),
        Index(
            "delegation_edges_zone_id_resource_id_status_idx",
            "zone_id",
            "resource_id",
            "status",
            postgresql_where=text("resource_id IS NOT NULL"),
        ),
        Index(
            "delegation_edges_zone_id_source_session_id_status_idx",
            "zone_id",
            "source_session_id",
            "status",
        ),
        Index(
            "delegation_edges_zone_id_target_session_id_status_idx",
            "zone_id",
            "target_session_id",
            "status",
        ),
    )

    id: Mapped[str]
    zone_id: Mapped[str]
    source_session_id: Mapped[str]
    target_session_id: Mapped[str]
    issuer_application_id: Mapped[str]
    receiver_application_id: Mapped[str]
    resource_id: Mapped[str | None]
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=EMPTY_TEXT_ARRAY)
    constraints_json: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=EMPTY_JSONB_OBJECT
    )
    status: Mapped[str] = mapped_column(server_default=text_default("active"))
    expires_at: Mapped[datetime]
    edge_version: Mapped[int] = mapped_column(server_default=ZERO)
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)
    parent_edge_id: Mapped[str | None]
