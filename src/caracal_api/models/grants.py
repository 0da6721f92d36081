"""Delegated grants: a subject's consent for an application on a resource (objects.md §5)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import Text

from caracal_api.models.base import FALSE, NOW, Base, text_default


class DelegatedGrant(Base):
    __tablename__ = "delegated_grants"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="delegated_grants_pkey"),
        ForeignKeyConstraint(["zone_id"], ["zones.id"], name="delegated_grants_zone_id_fkey"),
        ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="delegated_grants_application_id_fkey"
        ),
        # The composite FKs keep a grant inside one zone.
        ForeignKeyConstraint(
            ["zone_id", "application_id"],
            ["applications.zone_id", "applications.id"],
            name="delegated_grants_zone_application_fk",
        ),
        ForeignKeyConstraint(
            ["resource_id"], ["resources.id"], name="delegated_grants_resource_id_fkey"
        ),
        ForeignKeyConstraint(
            ["zone_id", "resource_id"],
            ["resources.zone_id", "resources.id"],
            name="delegated_grants_zone_resource_fk",
        ),
        CheckConstraint(
            "status IN ('active', 'revoked', 'expired')", name="delegated_grants_status_check"
        ),
        Index("delegated_grants_zone_id_user_id_idx", "zone_id", "user_id"),
        Index(
            "delegated_grants_zone_id_user_id_resource_id_status_idx",
            "zone_id",
            "user_id",
            "resource_id",
            "status",
        ),
        Index(
            "delegated_grants_zone_keyset_idx",
            "zone_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
    )

    id: Mapped[str]
    zone_id: Mapped[str]
    application_id: Mapped[str | None]
    user_id: Mapped[str]
    resource_id: Mapped[str]
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    status: Mapped[str] = mapped_column(server_default=text_default("active"))
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)
    created_by: Mapped[str | None]
    created_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)
    updated_by: Mapped[str | None]
    updated_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)
