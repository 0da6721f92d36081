"""Policies, policy sets, their immutable versions and the per-zone binding (policies.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from caracal_api.models.base import FALSE, NOW, Base


class _ZoneDocument:
    """Columns shared by `policies` and `policy_sets` (schema.md §2.12: same columns)."""

    id: Mapped[str]
    zone_id: Mapped[str]
    name: Mapped[str]
    description: Mapped[str | None]
    archived_at: Mapped[datetime | None]
    created_by: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)
    created_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)
    updated_by: Mapped[str | None]
    updated_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)


class Policy(_ZoneDocument, Base):
    __tablename__ = "policies"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="policies_pkey"),
        ForeignKeyConstraint(["zone_id"], ["zones.id"], name="policies_zone_id_fkey"),
        Index(
            "policies_zone_id_name_key",
            "zone_id",
            "name",
            unique=True,
            postgresql_where=text("archived_at IS NULL"),
        ),
        Index(
            "policies_zone_keyset_idx",
            "zone_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("archived_at IS NULL"),
        ),
    )


class PolicyVersion(Base):
    """Immutable: the `policy_versions_immutable` trigger rejects UPDATE and DELETE."""

    __tablename__ = "policy_versions"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="policy_versions_pkey"),
        ForeignKeyConstraint(["policy_id"], ["policies.id"], name="policy_versions_policy_id_fkey"),
        UniqueConstraint("policy_id", "version", name="policy_versions_policy_id_version_key"),
        Index("policy_versions_policy_id_created_at_idx", "policy_id", text("created_at DESC")),
    )

    id: Mapped[str]
    policy_id: Mapped[str]
    version: Mapped[int]
    content: Mapped[str]
    content_sha256: Mapped[str]
    schema_version: Mapped[str]
    created_by: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    archived_at: Mapped[datetime | None]
    created_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)


class PolicySet(_ZoneDocument, Base):
    __tablename__ = "policy_sets"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="policy_sets_pkey"),
        ForeignKeyConstraint(["zone_id"], ["zones.id"], name="policy_sets_zone_id_fkey"),
        Index(
            "policy_sets_zone_id_name_key",
            "zone_id",
            "name",
            unique=True,
            postgresql_where=text("archived_at IS NULL"),
        ),
        Index(
            "policy_sets_zone_keyset_idx",
            "zone_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("archived_at IS NULL"),
        ),
    )


class PolicySetVersion(Base):
    """Immutable: the `policy_set_versions_immutable` trigger rejects UPDATE and DELETE."""

    __tablename__ = "policy_set_versions"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="policy_set_versions_pkey"),
        ForeignKeyConstraint(
            ["policy_set_id"], ["policy_sets.id"], name="policy_set_versions_policy_set_id_fkey"
        ),
        UniqueConstraint(
            "policy_set_id", "version", name="policy_set_versions_policy_set_id_version_key"
        ),
    )

    id: Mapped[str]
    policy_set_id: Mapped[str]
    version: Mapped[int]
    # [{"policy_version_id": ...}, ...]
    manifest_json: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    manifest_sha256: Mapped[str]
    schema_version: Mapped[str]
    created_by: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    archived_at: Mapped[datetime | None]
    created_via_operator: Mapped[bool] = mapped_column(server_default=FALSE)


class PolicySetBinding(Base):
    __tablename__ = "policy_set_bindings"
    __table_args__ = (
        PrimaryKeyConstraint("zone_id", "policy_set_id", name="policy_set_bindings_pkey"),
        ForeignKeyConstraint(["zone_id"], ["zones.id"], name="policy_set_bindings_zone_id_fkey"),
        ForeignKeyConstraint(
            ["policy_set_id"], ["policy_sets.id"], name="policy_set_bindings_policy_set_id_fkey"
        ),
        ForeignKeyConstraint(
            ["active_version_id"],
            ["policy_set_versions.id"],
            name="policy_set_bindings_active_version_id_fkey",
        ),
        # At most one active policy set per zone.
        Index(
            "policy_set_bindings_one_active_per_zone",
            "zone_id",
            unique=True,
            postgresql_where=text("active_version_id IS NOT NULL"),
        ),
    )

    zone_id: Mapped[str]
    policy_set_id: Mapped[str]
    active_version_id: Mapped[str | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)
