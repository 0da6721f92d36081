"""Zone audit events (partitioned by month) and the ingest worker's tamper alerts (events.md §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, PrimaryKeyConstraint, Sequence, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from caracal_api.models.base import NOW, Base


class AuditEvent(Base):
    """The partitioned parent; only the migration and the ingest upkeep create partitions."""

    __tablename__ = "audit_events"
    __table_args__ = (
        # The partition key must be part of every unique index on a partitioned table.
        PrimaryKeyConstraint("id", "occurred_at", name="audit_events_pkey"),
        Index(
            "audit_events_agent_labels_idx",
            text("(metadata_json -> 'agent_labels')"),
            postgresql_using="gin",
        ),
        Index(
            "audit_events_agent_session_idx",
            text("(metadata_json ->> 'agent_session_id')"),
            postgresql_where=text("metadata_json ? 'agent_session_id'"),
        ),
        Index(
            "audit_events_session_idx",
            text("(metadata_json ->> 'session_id')"),
            postgresql_where=text("metadata_json ? 'session_id'"),
        ),
        Index(
            "audit_events_request_id_idx",
            "request_id",
            postgresql_where=text("request_id IS NOT NULL"),
        ),
        Index("audit_events_zone_chain", "zone_id", text("chain_seq DESC")),
        Index("audit_events_zone_id_occurred_at_idx", "zone_id", text("occurred_at DESC")),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )

    id: Mapped[str]
    # No FK: audit history outlives zones, and FKs from partitioned tables cost every insert.
    zone_id: Mapped[str]
    event_type: Mapped[str]
    request_id: Mapped[str | None]
    decision: Mapped[str | None]
    policy_set_id: Mapped[str | None]
    policy_set_version_id: Mapped[str | None]
    manifest_sha: Mapped[str | None]
    evaluation_status: Mapped[str | None]
    determining_policies_json: Mapped[Any | None] = mapped_column(JSONB)
    diagnostics_json: Mapped[Any | None] = mapped_column(JSONB)
    metadata_json: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    occurred_at: Mapped[datetime]
    ingested_at: Mapped[datetime] = mapped_column(server_default=NOW)
    content_sha256: Mapped[str | None]
    prev_content_sha256: Mapped[str | None]
    chain_hmac: Mapped[str | None]
    chain_seq: Mapped[int | None] = mapped_column(BigInteger)
    ingest_signature: Mapped[str | None]


class AuditIngestAlert(Base):
    __tablename__ = "audit_ingest_alerts"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="audit_ingest_alerts_pkey"),
        Index("audit_ingest_alerts_zone_time", "zone_id", text("observed_at DESC")),
    )

    # The column default is nextval() of this sequence, which the column owns (bigserial
    # semantics); naming the sequence here makes Core inserts draw from the same one.
    id: Mapped[int] = mapped_column(BigInteger, Sequence("audit_ingest_alerts_id_seq"))
    event_id: Mapped[str]
    zone_id: Mapped[str]
    # e.g. 'content_mismatch_on_replay'
    kind: Mapped[str]
    detail: Mapped[str | None]
    observed_at: Mapped[datetime] = mapped_column(server_default=NOW)
