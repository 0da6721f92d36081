"""Resources reachable through a zone's providers (objects.md §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
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
    EMPTY_JSONB_ARRAY,
    EMPTY_TEXT_ARRAY,
    FALSE,
    NOW,
    Base,
    text_default,
)


class Resource(Base):
    __tablename__ = "resources"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="resources_pkey"),
        UniqueConstraint("zone_id", "id", name="resources_zone_id_id_unique"),
        ForeignKeyConstraint(["zone_id"], ["zones.id"], name="resources_zone_id_fkey"),
        ForeignKeyConstraint(
            ["credential_provider_id"],
            ["providers.id"],
            name="resources_credential_provider_id_fkey",
        ),
        # Keeps a resource from pointing at another zone's provider.
        ForeignKeyConstraint(
            ["zone_id", "credential_provider_id"],
            ["providers.zone_id", "providers.id"],
            name="resources_zone_provider_fk",
        ),
        CheckConstraint(
            "operation_enforcement IN ('enforced', 'transport_uniform')",
            name="resources_operation_enforcement_check",
        ),
        Index("resources_active_idx", "id", postgresql_where=text("archived_at IS NULL")),
        Index("resources_credential_provider_id_idx", "credential_provider_id"),
        Index(
            "resources_zone_keyset_idx",
            "zone_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("archived_at IS NULL"),
        ),
        Index(
            "resources_zone_id_identifier_key",
            "zone_id",
            "identifier",
            unique=True,
            postgresql_where=text("archived_at IS NULL"),
        ),
        # Generated-identifier probe over every row, archived included (revision 0003).
        Index("resources_zone_identifier_probe_idx", "zone_id", text('identifier COLLATE "C"')),
    )

    id: Mapped[str]
    zone_id: Mapped[str]
    name: Mapped[str]
    identifier: Mapped[str]
    upstream_url: Mapped[str | None]
    credential_provider_id: Mapped[str]
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=EMPTY_TEXT_ARRAY)
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)
    archived_at: Mapped[datetime | None]
    # Array of {method, path, scope} objects.
    operations: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=EMPTY_JSONB_ARRAY
    )
    # The shared default is 'transport_uniform'; the API always writes a value explicitly.
    operation_enforcement: Mapped[str] = mapped_column(
        server_default=text_default("transport_uniform")
    )
    created_by: Mapped[str | None]
    created_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)
    updated_by: Mapped[str | None]
    updated_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)
