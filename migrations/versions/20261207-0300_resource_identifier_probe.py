"""caracal-api addition: an index for the generated-identifier probe of resource creates.

A generated identifier is probed against every resource of the zone, archived ones
included (objects.md §4.2), and the live-only unique index cannot serve that. Without
this index each create read the whole zone, so creates slowed down linearly with the
zone's size. Byte order ("C") turns "identifier starts with base" into a range scan
whatever the database's collation.

Additive only, so existing readers and writers of `resources` are unaffected.

Revision ID: 0003_resource_identifier_probe
Revises: 0002_caracal_api
Create Date: 2026-12-07 03:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_resource_identifier_probe"
down_revision: str | Sequence[str] | None = "0002_caracal_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS resources_zone_identifier_probe_idx"
        ' ON resources (zone_id, identifier COLLATE "C")'
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS resources_zone_identifier_probe_idx")
