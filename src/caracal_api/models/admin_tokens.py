"""Admin API bearer tokens (foundation §6)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from caracal_api.models.base import NOW, Base, text_default


class AdminToken(Base):
    __tablename__ = "admin_tokens"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="admin_tokens_pkey"),
        # Zone deletion is maintenance-only; a zone's tokens go with it.
        ForeignKeyConstraint(
            ["zone_id"], ["zones.id"], name="admin_tokens_zone_id_fkey", ondelete="CASCADE"
        ),
        CheckConstraint("scope IN ('global', 'zone')", name="admin_tokens_scope_check"),
        CheckConstraint(
            "capability IN ('read', 'write', 'approve')", name="admin_tokens_capability_check"
        ),
        CheckConstraint(
            "(scope = 'global' AND zone_id IS NULL) OR (scope = 'zone' AND zone_id IS NOT NULL)",
            name="admin_token_scope_zone_pair",
        ),
        Index(
            "admin_tokens_token_sha256_active",
            "token_sha256",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
        Index(
            "admin_tokens_zone_active",
            "zone_id",
            postgresql_where=text("revoked_at IS NULL AND scope = 'zone'"),
        ),
    )

    id: Mapped[str]
    name: Mapped[str]
    token_sha256: Mapped[bytes]
    scope: Mapped[str]
    zone_id: Mapped[str | None]
    created_by: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    token_hash: Mapped[str | None]
    capability: Mapped[str] = mapped_column(server_default=text_default("write"))
