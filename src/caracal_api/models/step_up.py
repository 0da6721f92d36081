"""Human-approval step-up challenges (events.md §8); the STS inserts and consumes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from caracal_api.models.base import EMPTY_JSONB_OBJECT, NOW, Base, text_default


class StepUpChallenge(Base):
    __tablename__ = "step_up_challenges"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="step_up_challenges_pkey"),
        ForeignKeyConstraint(
            ["zone_id"], ["zones.id"], name="step_up_challenges_zone_id_fkey", ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name="step_up_challenges_application_id_fkey",
            ondelete="CASCADE",
        ),
        CheckConstraint(
            "challenge_type = 'human_approval'", name="step_up_challenges_challenge_type_check"
        ),
        CheckConstraint(
            "approver_class IN ('operator', 'subject', 'any')",
            name="step_up_challenges_approver_class_check",
        ),
        CheckConstraint(
            "privacy_mode IN ('identified', 'pseudonymous', 'anonymous')",
            name="step_up_challenges_privacy_mode_check",
        ),
        Index(
            "step_up_challenges_application_idx",
            "application_id",
            postgresql_where=text("application_id IS NOT NULL"),
        ),
        Index(
            "step_up_challenges_approver",
            "approver_subject_id",
            postgresql_where=text("approver_subject_id IS NOT NULL"),
        ),
        # A challenge can be consumed once.
        Index(
            "step_up_challenges_consume_uniq",
            "id",
            unique=True,
            postgresql_where=text("consumed_at IS NOT NULL"),
        ),
        Index("step_up_challenges_expires_idx", "expires_at"),
        # One live challenge per binding; NULL parts of the binding still collide.
        Index(
            "step_up_challenges_live_binding_uniq",
            "zone_id",
            "principal_id",
            "session_id",
            "resource_set_hash",
            unique=True,
            postgresql_nulls_not_distinct=True,
            postgresql_where=text("consumed_at IS NULL"),
        ),
        Index("step_up_challenges_session_id_idx", "session_id"),
        Index(
            "step_up_challenges_zone_keyset_idx",
            "zone_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
        Index(
            "step_up_challenges_zone_principal",
            "zone_id",
            "principal_id",
            postgresql_where=text("consumed_at IS NULL"),
        ),
        # Revision 0002: prior_approved / prior_rejected counts per listed challenge.
        Index(
            "step_up_challenges_zone_binding_idx",
            "zone_id",
            "resource_set_hash",
            postgresql_where=text("resource_set_hash IS NOT NULL"),
        ),
    )

    id: Mapped[str]
    zone_id: Mapped[str]
    session_id: Mapped[str | None]
    challenge_type: Mapped[str]
    metadata_json: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=EMPTY_JSONB_OBJECT)
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    expires_at: Mapped[datetime]
    satisfied_at: Mapped[datetime | None]
    principal_id: Mapped[str | None]
    resource_set_hash: Mapped[bytes | None]
    consumed_at: Mapped[datetime | None]
    approver_subject_id: Mapped[str | None]
    application_id: Mapped[str | None]
    tier: Mapped[str | None]
    approver_class: Mapped[str] = mapped_column(server_default=text_default("operator"))
    privacy_mode: Mapped[str] = mapped_column(server_default=text_default("identified"))
    rejected_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None]
    # Never returned by the API.
    approver_session_id: Mapped[str | None]
