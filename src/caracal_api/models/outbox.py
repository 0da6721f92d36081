"""Transactional outbox drained by the dispatcher into Redis streams (events.md §3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, PrimaryKeyConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from caracal_api.models.base import NOW, ZERO, Base


class EventOutbox(Base):
    __tablename__ = "event_outbox"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="event_outbox_pkey"),
        Index(
            "event_outbox_dispatch_ready",
            "available_at",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
        Index(
            "event_outbox_undispatched_age",
            "created_at",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
        # Revision 0002: newest invalidation of a policy set (activation status, retention).
        Index(
            "event_outbox_invalidate_set_idx",
            text("(payload_json ->> 'zone_id')"),
            text("(payload_json ->> 'policy_set_id')"),
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("stream_name = 'caracal.policy.invalidate'"),
        ),
    )

    id: Mapped[str]
    stream_name: Mapped[str]
    payload_json: Mapped[dict[str, Any]] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(server_default=ZERO)
    # 'infinity' marks a dead row; compare it in SQL, never load it into Python.
    available_at: Mapped[datetime] = mapped_column(server_default=NOW)
    locked_until: Mapped[datetime | None]
    locked_by: Mapped[str | None]
    last_error: Mapped[str | None]
    dispatched_at: Mapped[datetime | None]
    request_id: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
