"""Zones: the tenancy unit every other aggregate hangs off."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, PrimaryKeyConstraint, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from caracal_api.models.base import FALSE, NOW, TRUE, Base


class Zone(Base):
    __tablename__ = "zones"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="zones_pkey"),
        # Unique over archived rows too: a slug is never reused.
        UniqueConstraint("slug", name="zones_slug_key"),
        Index("zones_active_idx", "id", postgresql_where=text("archived_at IS NULL")),
        Index(
            "zones_owner_account_id_idx",
            "owner_account_id",
            postgresql_where=text("owner_account_id IS NOT NULL"),
        ),
    )

    id: Mapped[str]
    name: Mapped[str]
    slug: Mapped[str]
    dcr_enabled: Mapped[bool] = mapped_column(server_default=FALSE)
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)
    archived_at: Mapped[datetime | None]
    owner_account_id: Mapped[str | None]
    operator_coauthor_badge: Mapped[bool] = mapped_column(server_default=TRUE)
    operator_governed: Mapped[bool] = mapped_column(server_default=FALSE)
    created_by: Mapped[str | None]
    created_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)
    updated_by: Mapped[str | None]
    updated_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)
