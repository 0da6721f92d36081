"""Encrypted secret values addressed by reference (objects.md, secret store)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, PrimaryKeyConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from caracal_api.models.base import NOW, Base


class SecretStoreEntry(Base):
    __tablename__ = "secret_store"
    __table_args__ = (
        PrimaryKeyConstraint("ref", name="secret_store_pkey"),
        ForeignKeyConstraint(["zone_id"], ["zones.id"], name="secret_store_zone_id_fkey"),
        Index("secret_store_zone_id_idx", "zone_id"),
    )

    ref: Mapped[str]
    zone_id: Mapped[str]
    # CSS1 envelope whose AAD is `ref`, so an envelope cannot be moved to another row.
    envelope: Mapped[bytes]
    version: Mapped[int] = mapped_column(server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)
