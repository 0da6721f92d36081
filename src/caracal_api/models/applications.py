"""Applications: managed and DCR-registered clients of a zone (objects.md §2)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import Text

from caracal_api.models.base import EMPTY_TEXT_ARRAY, FALSE, NOW, Base, text_default


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="applications_pkey"),
        # Target of the zone-consistent composite FKs of grants, sessions and edges.
        UniqueConstraint("zone_id", "id", name="applications_zone_id_id_unique"),
        ForeignKeyConstraint(["zone_id"], ["zones.id"], name="applications_zone_id_fkey"),
        CheckConstraint(
            "registration_method IN ('managed', 'dcr')",
            name="applications_registration_method_check",
        ),
        CheckConstraint("credential_type = 'token'", name="applications_credential_type_check"),
        CheckConstraint(
            "registration_method <> 'dcr' OR expires_at IS NOT NULL",
            name="applications_dcr_expires_at_required",
        ),
        Index(
            "applications_zone_id_expires_at_idx",
            "zone_id",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
        ),
        Index("applications_zone_id_idx", "zone_id"),
        Index(
            "applications_zone_keyset_idx",
            "zone_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("archived_at IS NULL"),
        ),
        # Revision 0002: makes `application_name_taken` race-free; DCR clients may share names.
        Index(
            "applications_zone_managed_name_active_uidx",
            "zone_id",
            text("lower(name)"),
            unique=True,
            postgresql_where=text("archived_at IS NULL AND registration_method = 'managed'"),
        ),
    )

    id: Mapped[str]
    zone_id: Mapped[str]
    name: Mapped[str]
    registration_method: Mapped[str]
    credential_type: Mapped[str] = mapped_column(server_default=text_default("token"))
    client_secret_hash: Mapped[str | None]
    traits: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=EMPTY_TEXT_ARRAY)
    expires_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    created_by: Mapped[str | None]
    created_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)
    updated_by: Mapped[str | None]
    updated_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)
    # Nullable in the shared schema; caracal-api always sets it on insert.
    updated_at: Mapped[datetime | None]
