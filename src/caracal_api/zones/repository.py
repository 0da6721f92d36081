"""All SQL of the zones aggregate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit.db import constraint_name
from caracal_api.kit.pagination import Cursor
from caracal_api.kit.rawread import RawSQL
from caracal_api.zones.errors import ZoneSlugConflict

ZONE_COLUMNS = (
    "id, name, slug, dcr_enabled, operator_coauthor_badge, operator_governed, created_by,"
    " created_via_operator, updated_by, updated_via_operator, created_at, updated_at"
)
LIVE_DCR = (
    "zone_id = :zone AND registration_method = 'dcr' AND archived_at IS NULL AND expires_at > now()"
)


def _slug_conflict(exc: IntegrityError) -> bool:
    return constraint_name(exc) == "zones_slug_key"


async def list_zones(
    session: AsyncSession, limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    after = " AND (created_at, id) < (:ts, :cid)" if cursor else ""
    stmt = text(
        f"SELECT {ZONE_COLUMNS} FROM zones WHERE archived_at IS NULL"
        " AND NOT (lower(btrim(name)) LIKE 'caracal.sys/%' OR lower(slug) LIKE 'caracal-sys-%')"
        f"{after} ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params.update(ts=cursor.ts, cid=cursor.id)
    return (await session.execute(stmt, params)).all()


async def get_live(session: AsyncSession, zone_id: str, *, lock: bool = False) -> Row[Any] | None:
    suffix = " FOR UPDATE" if lock else ""
    stmt = text(f"SELECT {ZONE_COLUMNS} FROM zones WHERE id = :id AND archived_at IS NULL{suffix}")
    return (await session.execute(stmt, {"id": zone_id})).first()


async def zone_exists(db: RawSQL, zone_id: str) -> bool:
    sql = "SELECT 1 FROM zones WHERE id = $1 AND archived_at IS NULL"
    return await db.fetchrow(sql, zone_id) is not None


async def taken_slugs(session: AsyncSession, base: str) -> set[str]:
    # The base holds only [a-z0-9-], so it needs no LIKE escaping.
    stmt = text("SELECT slug FROM zones WHERE slug = :base OR slug LIKE :pattern")
    rows = await session.execute(stmt, {"base": base, "pattern": f"{base}-%"})
    return {row.slug for row in rows}


async def lock_slug_base(session: AsyncSession, base: str) -> None:
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('zone-slug:' || :base))"), {"base": base}
    )


async def insert_zone(session: AsyncSession, values: dict[str, Any]) -> Row[Any]:
    """Insert in a savepoint so a slug collision can be retried in the same transaction.

    Raises ZoneSlugConflict on `zones_slug_key`.
    """
    stmt = text(
        "INSERT INTO zones (id, name, slug, dcr_enabled, created_by, created_via_operator,"
        " updated_by, created_at, updated_at) VALUES (:id, :name, :slug, :dcr_enabled,"
        " :created_by, :created_via_operator, :created_by, now(), now())"
        f" RETURNING {ZONE_COLUMNS}"
    )
    try:
        async with session.begin_nested():
            return (await session.execute(stmt, values)).one()
    except IntegrityError as exc:
        if _slug_conflict(exc):
            raise ZoneSlugConflict() from None
        raise


async def update_zone(
    session: AsyncSession, zone_id: str, changes: dict[str, Any], updated_by: str, via: bool
) -> Row[Any] | None:
    sets = [f"{column} = :{column}" for column in changes]
    sets += ["updated_at = now()", "updated_by = :updated_by", "updated_via_operator = :via"]
    stmt = text(
        f"UPDATE zones SET {', '.join(sets)} WHERE id = :id AND archived_at IS NULL"
        f" RETURNING {ZONE_COLUMNS}"
    )
    try:
        result = await session.execute(
            stmt, {**changes, "id": zone_id, "updated_by": updated_by, "via": via}
        )
    except IntegrityError as exc:
        if _slug_conflict(exc):
            raise ZoneSlugConflict() from None
        raise
    return result.first()


async def archive_zone(session: AsyncSession, zone_id: str, updated_by: str, via: bool) -> bool:
    stmt = text(
        "UPDATE zones SET archived_at = now(), updated_at = now(), updated_by = :by,"
        " updated_via_operator = :via WHERE id = :id AND archived_at IS NULL RETURNING id"
    )
    row = (await session.execute(stmt, {"id": zone_id, "by": updated_by, "via": via})).first()
    return row is not None


async def revoke_zone_tokens(session: AsyncSession, zone_id: str) -> list[bytes]:
    stmt = text(
        "UPDATE admin_tokens SET revoked_at = now() WHERE scope = 'zone' AND zone_id = :zone"
        " AND revoked_at IS NULL RETURNING token_sha256"
    )
    return [bytes(row.token_sha256) for row in await session.execute(stmt, {"zone": zone_id})]


async def count_live_dcr(session: AsyncSession, zone_id: str) -> int:
    stmt = text(f"SELECT count(*) FROM applications WHERE {LIVE_DCR}")
    return int((await session.execute(stmt, {"zone": zone_id})).scalar_one())


async def lock_live_dcr(session: AsyncSession, zone_id: str) -> list[str]:
    stmt = text(f"SELECT id FROM applications WHERE {LIVE_DCR} ORDER BY created_at FOR UPDATE")
    return [row.id for row in await session.execute(stmt, {"zone": zone_id})]


async def archive_applications(
    session: AsyncSession, zone_id: str, ids: list[str], updated_by: str, via: bool
) -> int:
    stmt = text(
        "UPDATE applications SET archived_at = now(), updated_at = now(), updated_by = :by,"
        " updated_via_operator = :via WHERE zone_id = :zone AND id = ANY(:ids)"
        " AND archived_at IS NULL"
    )
    result = await session.execute(
        stmt, {"zone": zone_id, "ids": ids, "by": updated_by, "via": via}
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def revoke_application_records(
    session: AsyncSession, zone_id: str, ids: list[str]
) -> list[str]:
    stmt = text(
        "WITH RECURSIVE tree AS ("
        " SELECT id FROM authority_records WHERE zone_id = :zone AND status = 'active'"
        " AND session_type = 'application' AND subject_id = ANY(:ids)"
        " UNION SELECT a.id FROM authority_records a JOIN tree t ON a.parent_id = t.id"
        " WHERE a.status = 'active')"
        " UPDATE authority_records SET status = 'revoked', revoked_at = now(),"
        " revoked_reason = 'dcr_shutdown' WHERE id IN (SELECT id FROM tree)"
        " AND status = 'active' RETURNING id"
    )
    return [row.id for row in await session.execute(stmt, {"zone": zone_id, "ids": ids})]


async def terminate_application_sessions(
    session: AsyncSession, zone_id: str, ids: list[str]
) -> list[Row[Any]]:
    stmt = text(
        "WITH RECURSIVE tree AS ("
        " SELECT id FROM sessions WHERE zone_id = :zone AND application_id = ANY(:ids)"
        " AND status IN ('active', 'suspended')"
        " UNION SELECT s.id FROM sessions s JOIN tree t ON s.parent_id = t.id"
        " WHERE s.status IN ('active', 'suspended'))"
        " UPDATE sessions SET status = 'terminated', terminated_at = now(), updated_at = now()"
        " WHERE id IN (SELECT id FROM tree) AND status IN ('active', 'suspended')"
        " RETURNING id, parent_id, subject_authority_record_id"
    )
    return list((await session.execute(stmt, {"zone": zone_id, "ids": ids})).all())


async def revoke_session_edges(
    session: AsyncSession, zone_id: str, session_ids: list[str]
) -> list[str]:
    stmt = text(
        "UPDATE delegation_edges SET status = 'revoked', revoked_at = now(),"
        " edge_version = edge_version + 1, updated_at = now()"
        " WHERE zone_id = :zone AND status = 'active'"
        " AND (source_session_id = ANY(:ids) OR target_session_id = ANY(:ids)) RETURNING id"
    )
    return [row.id for row in await session.execute(stmt, {"zone": zone_id, "ids": session_ids})]


async def overview(session: AsyncSession, zone_id: str) -> Row[Any]:
    stmt = text(
        "SELECT"
        " (SELECT count(*) FROM applications WHERE zone_id = :z AND archived_at IS NULL) AS apps,"
        " (SELECT count(*) FROM applications WHERE zone_id = :z AND archived_at IS NULL"
        "   AND expires_at < now()) AS apps_expired,"
        " (SELECT count(*) FROM applications WHERE zone_id = :z AND archived_at IS NULL"
        "   AND expires_at >= now() AND expires_at < now() + interval '7 days') AS apps_soon,"
        " (SELECT count(*) FROM resources WHERE zone_id = :z AND archived_at IS NULL) AS res,"
        " (SELECT count(*) FROM resources WHERE zone_id = :z AND archived_at IS NULL"
        "   AND operation_enforcement <> 'enforced') AS res_unenforced,"
        " (SELECT count(*) FROM providers WHERE zone_id = :z AND archived_at IS NULL) AS providers,"
        " (SELECT count(*) FROM policy_sets WHERE zone_id = :z AND archived_at IS NULL) AS sets,"
        " (SELECT count(*) FROM policy_sets ps JOIN policy_set_bindings b"
        "   ON b.policy_set_id = ps.id AND b.zone_id = ps.zone_id"
        "   WHERE ps.zone_id = :z AND ps.archived_at IS NULL"
        "   AND b.active_version_id IS NOT NULL) AS enforcing,"
        " (SELECT min(ps.name) FROM policy_sets ps JOIN policy_set_bindings b"
        "   ON b.policy_set_id = ps.id AND b.zone_id = ps.zone_id"
        "   WHERE ps.zone_id = :z AND ps.archived_at IS NULL"
        "   AND b.active_version_id IS NOT NULL) AS active_name,"
        " (SELECT count(*) FROM authority_records WHERE zone_id = :z AND status = 'active'"
        "   AND expires_at > now()) AS active_sessions,"
        " (SELECT count(*) FROM audit_events WHERE zone_id = :z"
        "   AND occurred_at >= now() - interval '24 hours' AND decision = 'allow') AS allowed,"
        " (SELECT count(*) FROM audit_events WHERE zone_id = :z"
        "   AND occurred_at >= now() - interval '24 hours' AND decision = 'deny') AS denied,"
        " now() AS generated_at"
    )
    return (await session.execute(stmt, {"z": zone_id})).one()


async def recent_events(session: AsyncSession, zone_id: str) -> Sequence[Row[Any]]:
    stmt = text(
        "SELECT id, event_type, request_id, decision, metadata_json, occurred_at"
        " FROM audit_events WHERE zone_id = :z ORDER BY occurred_at DESC, id DESC LIMIT 10"
    )
    return (await session.execute(stmt, {"z": zone_id})).all()
