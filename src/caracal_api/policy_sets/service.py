"""Policy-set business rules (policies.md §5): sets, versions, activation, deletion."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from asyncpg import Record
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.events import outbox
from caracal_api.kit import driver
from caracal_api.kit.call import via_operator
from caracal_api.kit.driver import Tx
from caracal_api.kit.ids import uuid7
from caracal_api.kit.pagination import Cursor
from caracal_api.kit.rawread import RawSQL
from caracal_api.kit.timefmt import format_ts
from caracal_api.kit.uow import WriteContext
from caracal_api.policy_sets import repository as repo
from caracal_api.policy_sets.errors import (
    PolicySetBindingNotFound,
    PolicySetNotFound,
    PolicySetVersionNotFound,
    ReferencedPolicyVersionMissing,
    VersionNotFound,
)
from caracal_api.policy_sets.manifest import (
    CheckedManifest,
    StoredVersion,
    check_fetched,
    manifest_json,
    manifest_sha256,
)
from caracal_api.policy_sets.schemas import PolicySetCreate
from caracal_api.zones.service import require_zone


def set_out(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "zone_id": row.zone_id,
        "name": row.name,
        "description": row.description,
        "created_by": row.created_by,
        "created_via_operator": row.created_via_operator,
        "updated_by": row.updated_by,
        "updated_via_operator": row.updated_via_operator,
        "created_at": format_ts(row.created_at),
        "updated_at": format_ts(row.updated_at),
        "active_version_id": row.active_version_id,
    }


def version_out(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "policy_set_id": row.policy_set_id,
        "version": row.version,
        "manifest_sha256": row.manifest_sha256,
        "schema_version": row.schema_version,
        "created_by": row.created_by,
        "created_via_operator": row.created_via_operator,
        "created_at": format_ts(row.created_at),
    }


def manifest_ids(manifest: list[dict[str, Any]]) -> list[str]:
    """The `policy_version_id` strings of a stored manifest (`manifest_json`), in order."""
    return [str(entry.get("policy_version_id")) for entry in manifest]


# --- reads ---------------------------------------------------------------------------------


async def list_sets(
    session: AsyncSession, zone_id: str, limit: int, cursor: Cursor | None
) -> tuple[list[dict[str, Any]], list[Row[Any]]]:
    rows = list(await repo.list_sets(session, zone_id, limit, cursor))
    return [set_out(row) for row in rows], rows


async def get_set(session: AsyncSession, zone_id: str, set_id: str) -> dict[str, Any]:
    row = await repo.get_live_set(session, zone_id, set_id)
    if row is None:
        raise PolicySetNotFound()
    return set_out(row)


async def require_live_set(session: AsyncSession, zone_id: str, set_id: str) -> None:
    if await repo.get_live_set(session, zone_id, set_id) is None:
        raise PolicySetNotFound()


async def list_versions(
    session: AsyncSession, zone_id: str, set_id: str, limit: int, cursor: Cursor | None
) -> tuple[list[dict[str, Any]], list[Row[Any]]]:
    await require_live_set(session, zone_id, set_id)
    rows = list(await repo.list_versions(session, set_id, limit, cursor))
    return [version_out(row) for row in rows], rows


async def get_version(
    session: AsyncSession, zone_id: str, set_id: str, version_id: str
) -> dict[str, Any]:
    row = await repo.get_version_in_zone(session, zone_id, set_id, version_id)
    if row is None:
        raise PolicySetVersionNotFound()
    return {
        **version_out(row),
        "manifest_json": row.manifest_json,
        "policies": manifest_ids(row.manifest_json),
    }


async def checked_version(
    db: RawSQL, zone_id: str, set_id: str, version_id: str
) -> tuple[Record, list[str], CheckedManifest]:
    """PS7/PS9 steps 2–3 in one round trip: the version, which must be one of this live set
    (404 `version_not_found`), its manifest's ids, and the manifest's contract check."""
    row = await repo.get_version_with_referenced(db, zone_id, set_id, version_id)
    if row is None:
        raise VersionNotFound()
    ids = manifest_ids(row["manifest_json"])
    found = [
        StoredVersion(*fields)
        for fields in zip(
            row["ids"] or (),
            row["contents"] or (),
            row["hashes"] or (),
            row["schemas"] or (),
            row["zones"] or (),
            strict=True,
        )
    ]
    return row, ids, check_fetched(zone_id, ids, found)


# --- writes --------------------------------------------------------------------------------


async def create_set(
    session: AsyncSession, ctx: WriteContext, zone_id: str, payload: PolicySetCreate
) -> dict[str, Any]:
    await require_zone(await driver.raw(session), zone_id)
    via = await via_operator(session, ctx, zone_id)
    row = await repo.insert_set(
        session,
        {
            "id": uuid7(),
            "zone_id": zone_id,
            "name": payload.name,
            "description": payload.description,
            "created_by": ctx.actor_label,
            "created_via_operator": via,
        },
    )
    return set_out(row)


async def add_version(
    session: AsyncSession,
    ctx: WriteContext,
    zone_id: str,
    set_id: str,
    ids: list[str],
    checked: CheckedManifest,
) -> dict[str, Any]:
    """PS4 step 5: the next version under the set's advisory lock."""
    await repo.lock_set(session, set_id)
    await require_live_set(session, zone_id, set_id)
    via = await via_operator(session, ctx, zone_id)
    row = await repo.insert_version(
        session,
        {
            "id": uuid7(),
            "policy_set_id": set_id,
            "manifest_json": manifest_json(ids),
            "manifest_sha256": manifest_sha256(ids),
            "schema_version": checked.schema_version,
            "created_by": ctx.actor_label,
            "created_via_operator": via,
        },
    )
    await repo.touch_set(await driver.raw(session), set_id, ctx.actor_label, via)
    return {
        "version_id": row.id,
        "id": row.id,
        "policy_set_id": row.policy_set_id,
        "version": row.version,
        "manifest_sha256": row.manifest_sha256,
        "schema_version": row.schema_version,
        "created_at": format_ts(row.created_at),
    }


def status_url(zone_id: str, set_id: str, version_id: str, outbox_id: str) -> str:
    def enc(value: str) -> str:
        return quote(value, safe="")

    return (
        f"/v1/zones/{enc(zone_id)}/policy-sets/{enc(set_id)}/activation-status"
        f"?version_id={enc(version_id)}&outbox_id={enc(outbox_id)}"
    )


async def activate(
    session: Tx, ctx: WriteContext, zone_id: str, set_id: str, version_id: str
) -> dict[str, Any]:
    """PS7 step 5: switch the zone's active set and enqueue the invalidation."""
    db = await driver.raw(session)
    await repo.lock_activation(db, zone_id)
    row = await repo.lock_version_of_live_set(db, zone_id, set_id, version_id)
    if row is None:
        raise VersionNotFound()
    ids = manifest_ids(row["manifest_json"])
    if await repo.share_versions_and_deactivate_others(db, zone_id, set_id, ids) < len(set(ids)):
        raise ReferencedPolicyVersionMissing()
    via = await via_operator(session, ctx, zone_id)
    if not await repo.activate_binding(db, zone_id, set_id, version_id, ctx.actor_label, via):
        raise PolicySetBindingNotFound()
    outbox_id = await outbox.record(
        session,
        repo.INVALIDATE_STREAM,
        {"zone_id": zone_id, "policy_set_id": set_id, "policy_set_version_id": version_id},
        request_id=ctx.request_id,
    )
    return {
        "activated": True,
        "version_id": version_id,
        "outbox_id": outbox_id,
        "status_url": status_url(zone_id, set_id, version_id, outbox_id),
    }


async def delete_set(session: AsyncSession, ctx: WriteContext, zone_id: str, set_id: str) -> None:
    """PS10: archive the set; an active binding is cleared and invalidated (no version)."""
    await repo.lock_activation(await driver.raw(session), zone_id)
    via = await via_operator(session, ctx, zone_id)
    if not await repo.archive_set(session, zone_id, set_id, ctx.actor_label, via):
        raise PolicySetNotFound()
    if await repo.clear_binding(session, zone_id, set_id) is not None:
        await outbox.record(
            session,
            repo.INVALIDATE_STREAM,
            {"zone_id": zone_id, "policy_set_id": set_id, "policy_set_version_id": None},
            request_id=ctx.request_id,
        )
