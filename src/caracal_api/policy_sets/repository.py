"""All SQL of the policy-set aggregate (sets, versions, bindings, their invalidations)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from asyncpg import Record
from sqlalchemy import Row, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit.db import constraint_name
from caracal_api.kit.pagination import Cursor
from caracal_api.kit.rawread import RawSQL
from caracal_api.policy_sets.errors import PolicySetNameConflict

INVALIDATE_STREAM = "caracal.policy.invalidate"

SET_COLUMNS = (
    "s.id, s.zone_id, s.name, s.description, s.created_by, s.created_via_operator,"
    " s.updated_by, s.updated_via_operator, s.created_at, s.updated_at, b.active_version_id"
)
SET_FROM = (
    "policy_sets s LEFT JOIN policy_set_bindings b"
    " ON b.policy_set_id = s.id AND b.zone_id = s.zone_id"
)
VERSION_COLUMNS = (
    "v.id, v.policy_set_id, v.version, v.manifest_sha256, v.schema_version, v.created_by,"
    " v.created_via_operator, v.created_at"
)


# --- sets ----------------------------------------------------------------------------------


async def list_sets(
    session: AsyncSession, zone_id: str, limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    after = " AND (s.created_at, s.id) < (:ts, :cid)" if cursor else ""
    stmt = text(
        f"SELECT {SET_COLUMNS} FROM {SET_FROM}"
        f" WHERE s.zone_id = :zone AND s.archived_at IS NULL{after}"
        " ORDER BY s.created_at DESC, s.id DESC LIMIT :limit"
    )
    params: dict[str, Any] = {"zone": zone_id, "limit": limit}
    if cursor:
        params.update(ts=cursor.ts, cid=cursor.id)
    return (await session.execute(stmt, params)).all()


async def get_live_set(session: AsyncSession, zone_id: str, set_id: str) -> Row[Any] | None:
    stmt = text(
        f"SELECT {SET_COLUMNS} FROM {SET_FROM}"
        " WHERE s.id = :id AND s.zone_id = :zone AND s.archived_at IS NULL"
    )
    return (await session.execute(stmt, {"id": set_id, "zone": zone_id})).first()


async def insert_set(session: AsyncSession, values: dict[str, Any]) -> Row[Any]:
    """Insert the set and its (inactive) binding; PolicySetNameConflict on a live name."""
    insert = text(
        "INSERT INTO policy_sets (id, zone_id, name, description, created_by,"
        " created_via_operator, updated_by, created_at, updated_at)"
        " VALUES (:id, :zone_id, :name, :description, :created_by, :created_via_operator,"
        " :created_by, now(), now())"
    )
    binding = text(
        "INSERT INTO policy_set_bindings (zone_id, policy_set_id, active_version_id, updated_at)"
        " VALUES (:zone_id, :id, NULL, now())"
    )
    try:
        async with session.begin_nested():
            await session.execute(insert, values)
    except IntegrityError as exc:
        if constraint_name(exc) == "policy_sets_zone_id_name_key":
            raise PolicySetNameConflict() from None
        raise
    await session.execute(binding, values)
    row = await get_live_set(session, values["zone_id"], values["id"])
    assert row is not None
    return row


async def lock_set(session: AsyncSession, set_id: str) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:id))"), {"id": set_id})


async def lock_activation(db: RawSQL, zone_id: str) -> None:
    """Serialises activations and set deletions of one zone (foundation §12)."""
    await db.execute("SELECT pg_advisory_xact_lock(hashtext('policy-activation:' || $1))", zone_id)


async def touch_set(db: RawSQL, set_id: str, updated_by: str, via: bool) -> None:
    sql = (
        "UPDATE policy_sets SET updated_by = $2, updated_via_operator = $3, updated_at = now()"
        " WHERE id = $1"
    )
    await db.execute(sql, set_id, updated_by, via)


async def archive_set(
    session: AsyncSession, zone_id: str, set_id: str, updated_by: str, via: bool
) -> bool:
    stmt = text(
        "UPDATE policy_sets SET archived_at = now(), updated_at = now(), updated_by = :by,"
        " updated_via_operator = :via"
        " WHERE id = :id AND zone_id = :zone AND archived_at IS NULL RETURNING id"
    )
    params = {"id": set_id, "zone": zone_id, "by": updated_by, "via": via}
    return (await session.execute(stmt, params)).first() is not None


# --- versions ------------------------------------------------------------------------------


async def insert_version(session: AsyncSession, values: dict[str, Any]) -> Row[Any]:
    """The next version of a set (the caller holds the set's advisory lock)."""
    stmt = text(
        "INSERT INTO policy_set_versions (id, policy_set_id, version, manifest_json,"
        " manifest_sha256, schema_version, created_by, created_via_operator, created_at)"
        " SELECT CAST(:id AS text), CAST(:policy_set_id AS text), COALESCE(MAX(version), 0) + 1,"
        " CAST(:manifest_json AS jsonb), CAST(:manifest_sha256 AS text),"
        " CAST(:schema_version AS text), CAST(:created_by AS text),"
        " CAST(:created_via_operator AS boolean), now()"
        " FROM policy_set_versions WHERE policy_set_id = :policy_set_id"
        " RETURNING id, policy_set_id, version, manifest_sha256, schema_version, created_at"
    )
    params = {**values, "manifest_json": json.dumps(values["manifest_json"], ensure_ascii=False)}
    return (await session.execute(stmt, params)).one()


async def list_versions(
    session: AsyncSession, set_id: str, limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    after = " AND (v.created_at, v.id) < (:ts, :cid)" if cursor else ""
    stmt = text(
        f"SELECT {VERSION_COLUMNS} FROM policy_set_versions v"
        f" WHERE v.policy_set_id = :set{after}"
        " ORDER BY v.created_at DESC, v.id DESC LIMIT :limit"
    )
    params: dict[str, Any] = {"set": set_id, "limit": limit}
    if cursor:
        params.update(ts=cursor.ts, cid=cursor.id)
    return (await session.execute(stmt, params)).all()


async def get_version_in_zone(
    session: AsyncSession, zone_id: str, set_id: str, version_id: str
) -> Row[Any] | None:
    """PS6: the version joined to its set in the zone (archived sets included)."""
    stmt = text(
        f"SELECT {VERSION_COLUMNS}, v.manifest_json FROM policy_set_versions v"
        " JOIN policy_sets s ON s.id = v.policy_set_id"
        " WHERE v.id = :vid AND v.policy_set_id = :set AND s.zone_id = :zone"
    )
    params = {"vid": version_id, "set": set_id, "zone": zone_id}
    return (await session.execute(stmt, params)).first()


# A version of a live set of the zone: $1 version, $2 set, $3 zone.
_VERSION_FROM = " FROM policy_set_versions v JOIN policy_sets s ON s.id = v.policy_set_id"
_OF_LIVE_SET = " WHERE v.id = $1 AND s.id = $2 AND s.zone_id = $3 AND s.archived_at IS NULL"


async def lock_version_of_live_set(
    db: RawSQL, zone_id: str, set_id: str, version_id: str
) -> Record | None:
    """PS7 step 5: the version of this live set in this zone, `FOR UPDATE OF` the set."""
    sql = f"SELECT {VERSION_COLUMNS}, v.manifest_json{_VERSION_FROM}{_OF_LIVE_SET} FOR UPDATE OF s"
    return await db.fetchrow(sql, version_id, set_id, zone_id)


# The version and, in the same round trip, every policy version its manifest references
# (as arrays: asyncpg decodes text[] natively, without a JSON detour for large contents).
_VERSION_WITH_REFERENCED = (
    f"SELECT {VERSION_COLUMNS}, v.manifest_json, r.ids, r.contents, r.hashes, r.schemas,"
    f" r.zones{_VERSION_FROM}"
    " LEFT JOIN LATERAL ("
    "  SELECT array_agg(pv.id) AS ids, array_agg(pv.content) AS contents,"
    "  array_agg(pv.content_sha256) AS hashes, array_agg(pv.schema_version) AS schemas,"
    "  array_agg(p.zone_id) AS zones"
    "  FROM policy_versions pv JOIN policies p ON p.id = pv.policy_id"
    "  WHERE pv.id IN (SELECT e->>'policy_version_id'"
    f"   FROM jsonb_array_elements(v.manifest_json) AS e)) AS r ON true{_OF_LIVE_SET}"
)


async def get_version_with_referenced(
    db: RawSQL, zone_id: str, set_id: str, version_id: str
) -> Record | None:
    """The version of this live set in this zone, with the referenced policy versions that
    exist as parallel arrays `ids, contents, hashes, schemas, zones` (NULL when none)."""
    return await db.fetchrow(_VERSION_WITH_REFERENCED, version_id, set_id, zone_id)


# --- bindings ------------------------------------------------------------------------------

# One round trip for two independent steps of PS7 step 5. The deactivation stays apart from
# activate_binding: one active binding per zone is checked row by row, so the others must
# be cleared by an earlier statement.
_SHARE_AND_DEACTIVATE_OTHERS = (
    "WITH shared AS (SELECT id FROM policy_versions WHERE id = ANY($3::text[])"
    " ORDER BY id FOR SHARE),"
    " cleared AS (UPDATE policy_set_bindings SET active_version_id = NULL, updated_at = now()"
    " WHERE zone_id = $1 AND policy_set_id <> $2 AND active_version_id IS NOT NULL)"
    " SELECT count(*) FROM shared"
)


async def share_versions_and_deactivate_others(
    db: RawSQL, zone_id: str, set_id: str, ids: Sequence[str]
) -> int:
    """`FOR SHARE` the referenced policy versions (returns how many exist) and clear the
    zone's other active bindings."""
    shared = await db.fetchval(_SHARE_AND_DEACTIVATE_OTHERS, zone_id, set_id, sorted(set(ids)))
    return int(shared)


async def activate_binding(
    db: RawSQL, zone_id: str, set_id: str, version_id: str, updated_by: str, via: bool
) -> bool:
    """Point the set's binding at the version and stamp the set as updated (touch_set)."""
    sql = (
        "WITH touched AS (UPDATE policy_sets SET updated_by = $4, updated_via_operator = $5,"
        " updated_at = now() WHERE id = $2)"
        " UPDATE policy_set_bindings SET active_version_id = $3, updated_at = now()"
        " WHERE zone_id = $1 AND policy_set_id = $2 RETURNING policy_set_id"
    )
    row = await db.fetchrow(sql, zone_id, set_id, version_id, updated_by, via)
    return row is not None


async def clear_binding(session: AsyncSession, zone_id: str, set_id: str) -> str | None:
    """Deactivate the set's binding; returns the version that was active (None if none)."""
    select = text(
        "SELECT active_version_id FROM policy_set_bindings"
        " WHERE zone_id = :zone AND policy_set_id = :set FOR UPDATE"
    )
    params = {"zone": zone_id, "set": set_id}
    row = (await session.execute(select, params)).first()
    if row is None or row.active_version_id is None:
        return None
    await session.execute(
        text(
            "UPDATE policy_set_bindings SET active_version_id = NULL, updated_at = now()"
            " WHERE zone_id = :zone AND policy_set_id = :set"
        ),
        params,
    )
    return str(row.active_version_id)


async def binding_status(session: AsyncSession, zone_id: str, set_id: str) -> Row[Any] | None:
    """PS8 step 1: the binding joined to a live set, with the active version's hash."""
    stmt = text(
        "SELECT b.active_version_id, v.manifest_sha256 FROM policy_set_bindings b"
        " JOIN policy_sets s ON s.id = b.policy_set_id AND s.archived_at IS NULL"
        " LEFT JOIN policy_set_versions v ON v.id = b.active_version_id"
        " WHERE b.zone_id = :zone AND b.policy_set_id = :set"
    )
    return (await session.execute(stmt, {"zone": zone_id, "set": set_id})).first()


# --- invalidation rows (PS8) ---------------------------------------------------------------

_OUTBOX_COLUMNS = (
    "id, stream_name, attempts, last_error, dispatched_at,"
    " available_at = 'infinity'::timestamptz AS dead,"
    " payload_json->>'zone_id' AS zone_id, payload_json->>'policy_set_id' AS policy_set_id,"
    " payload_json->>'policy_set_version_id' AS policy_set_version_id"
)


async def outbox_row(session: AsyncSession, outbox_id: str) -> Row[Any] | None:
    stmt = text(f"SELECT {_OUTBOX_COLUMNS} FROM event_outbox WHERE id = :id")
    return (await session.execute(stmt, {"id": outbox_id})).first()


NEWEST_INVALIDATION = (
    f"SELECT {_OUTBOX_COLUMNS} FROM event_outbox"
    f" WHERE stream_name = '{INVALIDATE_STREAM}'"
    " AND payload_json->>'zone_id' = :zone AND payload_json->>'policy_set_id' = :set"
    " AND payload_json->>'policy_set_version_id' = :version"
    " ORDER BY created_at DESC, id DESC LIMIT 1"
)


async def newest_invalidation(
    session: AsyncSession, zone_id: str, set_id: str, version_id: str
) -> Row[Any] | None:
    """Through `event_outbox_invalidate_set_idx` (its expressions and order, same predicate)."""
    params = {"zone": zone_id, "set": set_id, "version": version_id}
    return (await session.execute(text(NEWEST_INVALIDATION), params)).first()
