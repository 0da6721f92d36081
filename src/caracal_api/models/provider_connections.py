"""A subject's live connection (tokens) to a provider (objects.md §6)."""

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

from caracal_api.models.base import NOW, ZERO, Base, text_default


class ProviderConnection(Base):
    __tablename__ = "provider_connections"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="provider_connections_pkey"),
        ForeignKeyConstraint(
            ["zone_id", "provider_id"],
            ["providers.zone_id", "providers.id"],
            name="provider_connections_zone_provider_fk",
        ),
        CheckConstraint(
            "status IN ('active', 'revoked', 'expired')",
            name="provider_connections_status_check",
        ),
        Index(
            "provider_connections_active_subject_provider_uidx",
            "zone_id",
            "subject_id",
            "provider_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
        Index("provider_connections_zone_provider_status_idx", "zone_id", "provider_id", "status"),
        Index("provider_connections_zone_subject_status_idx", "zone_id", "subject_id", "status"),
    )

    id: Mapped[str]
    zone_id: Mapped[str]
    subject_id: Mapped[str]
    provider_id: Mapped[str]
    status: Mapped[str] = mapped_column(server_default=text_default("active"))
    # CSS1 envelopes; the STS rewrites them when it refreshes.
    access_token_ct: Mapped[bytes | None]
    refresh_token_ct: Mapped[bytes | None]
    expires_at: Mapped[datetime | None]
    refreshed_at: Mapped[datetime | None]
    refresh_token_version: Mapped[int] = mapped_column(server_default=ZERO)
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)
