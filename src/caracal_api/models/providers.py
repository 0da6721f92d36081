"""Credential providers of a zone (objects.md §3)."""

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

from caracal_api.models.base import EMPTY_JSONB_OBJECT, EMPTY_TEXT_ARRAY, FALSE, NOW, Base

PROVIDER_KINDS = (
    "none",
    "caracal_mandate",
    "oauth2_authorization_code",
    "oauth2_client_credentials",
    "api_key",
    "bearer_token",
    "http_basic",
)


class Provider(Base):
    __tablename__ = "providers"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="providers_pkey"),
        UniqueConstraint("zone_id", "id", name="providers_zone_id_id_unique"),
        ForeignKeyConstraint(["zone_id"], ["zones.id"], name="providers_zone_id_fkey"),
        CheckConstraint(
            "provider_kind IN ({})".format(", ".join(f"'{k}'" for k in PROVIDER_KINDS)),
            name="providers_provider_kind_check",
        ),
        Index("providers_active_idx", "id", postgresql_where=text("archived_at IS NULL")),
        Index(
            "providers_zone_identifier_active_uidx",
            "zone_id",
            "identifier",
            unique=True,
            postgresql_where=text("archived_at IS NULL"),
        ),
        Index(
            "providers_zone_keyset_idx",
            "zone_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("archived_at IS NULL"),
        ),
    )

    id: Mapped[str]
    zone_id: Mapped[str]
    name: Mapped[str]
    identifier: Mapped[str]
    # Public configuration only; secret values live in secret_store.
    config_json: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=EMPTY_JSONB_OBJECT)
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)
    archived_at: Mapped[datetime | None]
    secret_config_keys: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=EMPTY_TEXT_ARRAY
    )
    provider_kind: Mapped[str]
    connectivity_failed_at: Mapped[datetime | None]
    created_by: Mapped[str | None]
    created_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)
    updated_by: Mapped[str | None]
    updated_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)
