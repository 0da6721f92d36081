"""Admin audit records and their per-zone hash chain (foundation §13)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, PrimaryKeyConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from caracal_api.models.base import NOW, Base


class AdminAuditEvent(Base):
    __tablename__ = "admin_audit_events"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="admin_audit_events_pkey"),
        Index(
            "admin_audit_events_actor_time",
            "actor_id",
            text("occurred_at DESC"),
            postgresql_where=text("actor_id IS NOT NULL"),
        ),
        Index("admin_audit_events_chain", "zone_id", text("chain_seq DESC")),
        Index("admin_audit_events_request", "request_id"),
        Index("admin_audit_events_zone_time", "zone_id", text("occurred_at DESC")),
        # Revision 0002.
        Index(
            "admin_audit_events_zone_keyset_idx",
            "zone_id",
            text("occurred_at DESC"),
            text("id DESC"),
        ),
        Index(
            "admin_audit_events_unchained_idx",
            "zone_id",
            "occurred_at",
            "id",
            postgresql_where=text("chain_seq IS NULL"),
        ),
        # NULLS NOT DISTINCT: the global chain (NULL zone_id) must be unique per position too.
        Index(
            "admin_audit_events_chain_seq_uidx",
            "zone_id",
            "chain_seq",
            unique=True,
            postgresql_nulls_not_distinct=True,
            postgresql_where=text("chain_seq IS NOT NULL"),
        ),
    )

    id: Mapped[str]
    request_id: Mapped[str]
    actor_id: Mapped[str | None]
    actor_name: Mapped[str | None]
    actor_scope: Mapped[str | None]
    action: Mapped[str]
    method: Mapped[str]
    path: Mapped[str]
    # No FK: audit rows outlive the zones they describe.
    zone_id: Mapped[str | None]
    entity_type: Mapped[str | None]
    entity_id: Mapped[str | None]
    status_code: Mapped[int]
    payload_json: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    occurred_at: Mapped[datetime] = mapped_column(server_default=NOW)
    content_sha256: Mapped[str | None]
    prev_content_sha256: Mapped[str | None]
    chain_hmac: Mapped[str | None]
    chain_seq: Mapped[int | None] = mapped_column(BigInteger)
