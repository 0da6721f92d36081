"""Zone business rules (foundation §16)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.audit import records
from caracal_api.auth.actor import Actor
from caracal_api.auth.gates import check_reserved, reserved_value
from caracal_api.errors import NoFields, ReservedNamespace
from caracal_api.events import outbox
from caracal_api.kit.call import via_operator
from caracal_api.kit.ids import uuid7
from caracal_api.kit.rawread import RawSQL
from caracal_api.kit.redaction import redact
from caracal_api.kit.timefmt import format_ts
from caracal_api.kit.uow import WriteContext
from caracal_api.zones import repository as repo
from caracal_api.zones.errors import (
    DcrShutdownNotApplicable,
    DcrShutdownRequired,
    ZoneNotFound,
    ZoneSlugConflict,
)
from caracal_api.zones.schemas import ZoneCreate, ZoneUpdate

NAME_PREFIX = "caracal.sys/"
SLUG_PREFIX = "caracal-sys-"
SLUG_ATTEMPTS = 3


def zone_out(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "slug": row.slug,
        "dcr_enabled": row.dcr_enabled,
        "operator_coauthor_badge": row.operator_coauthor_badge,
        "operator_governed": row.operator_governed,
        "created_by": row.created_by,
        "created_via_operator": row.created_via_operator,
        "updated_by": row.updated_by,
        "updated_via_operator": row.updated_via_operator,
        "created_at": format_ts(row.created_at),
        "updated_at": format_ts(row.updated_at),
    }


def slugify(text: str, fallback: str) -> str:
    """objects.md §1.5 / foundation §16.2."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or fallback


def check_create_namespace(actor: Actor, payload: ZoneCreate) -> None:
    check_reserved(actor, payload.name, NAME_PREFIX)
    check_reserved(actor, payload.slug, SLUG_PREFIX)


async def _generated_slug(session: AsyncSession, ctx: WriteContext, name: str) -> str:
    base = slugify(name.strip(), "zone")
    await repo.lock_slug_base(session, base)
    taken = await repo.taken_slugs(session, base)
    candidate = next(
        (c for c in [base, *(f"{base}-{n}" for n in range(2, 1000))] if c not in taken),
        f"{base}-{uuid7().replace('-', '')}",
    )
    if reserved_value(candidate, SLUG_PREFIX) and not ctx.actor.is_bootstrap:
        raise ReservedNamespace()
    return candidate


async def create_zone(
    session: AsyncSession, ctx: WriteContext, payload: ZoneCreate
) -> dict[str, Any]:
    check_create_namespace(ctx.actor, payload)
    values = {
        "id": uuid7(),
        "name": payload.name,
        "dcr_enabled": payload.dcr_enabled,
        "created_by": ctx.actor_label,
        "created_via_operator": ctx.operator_header,
    }
    if payload.slug is not None:
        row = await repo.insert_zone(session, {**values, "slug": payload.slug})
        return zone_out(row)
    attempt = 1
    while True:
        slug = await _generated_slug(session, ctx, payload.name)
        try:
            row = await repo.insert_zone(session, {**values, "slug": slug})
            return zone_out(row)
        except ZoneSlugConflict:
            if attempt >= SLUG_ATTEMPTS:
                raise
            attempt += 1


async def get_zone(session: AsyncSession, zone_id: str) -> dict[str, Any]:
    row = await repo.get_live(session, zone_id)
    if row is None:
        raise ZoneNotFound()
    return zone_out(row)


async def require_zone(db: RawSQL, zone_id: str) -> None:
    """404 zone_not_found unless the zone exists and is live (create routes).

    `db`: `call.raw_read()` before a unit of work, `kit.driver.raw(session)` inside one.
    """
    if not await repo.zone_exists(db, zone_id):
        raise ZoneNotFound()


async def dcr_status(session: AsyncSession, zone_id: str) -> dict[str, Any]:
    row = await repo.get_live(session, zone_id)
    if row is None:
        raise ZoneNotFound()
    live = await repo.count_live_dcr(session, zone_id)
    return {"id": row.id, "dcr_enabled": row.dcr_enabled, "live_dcr_applications": live}


def check_update_rules(actor: Actor, payload: ZoneUpdate) -> dict[str, Any]:
    """Steps 2–4 of Z5, before any row is read; returns the fields sent."""
    fields = {name: getattr(payload, name) for name in payload.model_fields_set}
    check_reserved(actor, fields.get("name"), NAME_PREFIX)
    check_reserved(actor, fields.get("slug"), SLUG_PREFIX)
    if "dcr_shutdown" in fields and fields.get("dcr_enabled") is not False:
        raise DcrShutdownNotApplicable()
    if not fields:
        raise NoFields()
    return fields


async def update_zone(
    session: AsyncSession, ctx: WriteContext, zone_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    current = await repo.get_live(session, zone_id, lock=True)
    if current is None:
        raise ZoneNotFound()
    shutdown_mode = fields.get("dcr_shutdown")
    disabling = fields.get("dcr_enabled") is False
    live_ids: list[str] = []
    shutdown_path = disabling and (current.dcr_enabled or shutdown_mode is not None)
    if shutdown_path:
        live_ids = await repo.lock_live_dcr(session, zone_id)
        if live_ids and shutdown_mode is None:
            raise DcrShutdownRequired(details={"live_dcr_applications": len(live_ids)})
    columns = {k: v for k, v in fields.items() if k != "dcr_shutdown"}
    via = await via_operator(session, ctx, zone_id)
    row = await repo.update_zone(session, zone_id, columns, ctx.actor_label, via)
    if row is None:
        raise ZoneNotFound()
    counts = {
        "revoked_applications": 0,
        "revoked_authority_records": 0,
        "terminated_sessions": 0,
        "revoked_delegations": 0,
    }
    if shutdown_mode == "revoke_live" and live_ids:
        counts = await _revoke_live(session, ctx, zone_id, live_ids, via)
    if shutdown_path:
        mode = "no_live" if not live_ids else shutdown_mode
        await _insert_shutdown_record(session, ctx, zone_id, str(mode), len(live_ids), counts)
    return zone_out(row)


async def _revoke_live(
    session: AsyncSession, ctx: WriteContext, zone_id: str, app_ids: list[str], via: bool
) -> dict[str, int]:
    apps = await repo.archive_applications(session, zone_id, app_ids, ctx.actor_label, via)
    record_ids = await repo.revoke_application_records(session, zone_id, app_ids)
    terminated = await repo.terminate_application_sessions(session, zone_id, app_ids)
    edge_ids = await repo.revoke_session_edges(session, zone_id, [s.id for s in terminated])
    rows: list[tuple[str, dict[str, Any]]] = []
    for record_id in record_ids:
        rows.append(
            (
                "caracal.sessions.revoke",
                {"zone_id": zone_id, "session_id": record_id, "reason": "dcr_shutdown"},
            )
        )
    for s in terminated:
        rows.append(
            (
                "caracal.agents.lifecycle",
                {
                    "event": "terminate",
                    "zone_id": zone_id,
                    "agent_session_id": s.id,
                    "parent_id": s.parent_id,
                    "reason": "dcr_shutdown",
                },
            )
        )
        rows.append(
            (
                "caracal.sessions.revoke",
                {
                    "zone_id": zone_id,
                    "session_id": s.subject_authority_record_id,
                    "agent_session_id": s.id,
                    "reason": "dcr_shutdown",
                },
            )
        )
    for edge_id in edge_ids:
        rows.append(
            (
                "caracal.sessions.revoke",
                {"zone_id": zone_id, "delegation_edge_id": edge_id, "reason": "dcr_shutdown"},
            )
        )
    if rows:
        await outbox.record_many(session, rows, request_id=ctx.request_id)
    return {
        "revoked_applications": apps,
        "revoked_authority_records": len(record_ids),
        "terminated_sessions": len(terminated),
        "revoked_delegations": len(edge_ids),
    }


async def _insert_shutdown_record(
    session: AsyncSession,
    ctx: WriteContext,
    zone_id: str,
    mode: str,
    live: int,
    counts: dict[str, int],
) -> None:
    payload = {
        "dcr_registration_disabled": True,
        "dcr_shutdown_mode": mode,
        "live_dcr_applications": live,
        **counts,
    }
    record = records.build_record(
        records.RequestFacts(ctx.request_id, "PATCH", f"/v1/zones/{zone_id}", ctx.actor),
        status_code=200,
        occurred_at=await records.transaction_now(session),
        payload=payload,
        zone_id=zone_id,
        action=f"DCR shutdown {mode}",
        entity=("zones", zone_id),
    )
    await ctx.insert_audit(session, record)


async def delete_zone(session: AsyncSession, ctx: WriteContext, zone_id: str) -> list[bytes]:
    """Archive the zone and revoke its zone-scoped tokens; returns their digests."""
    via = await via_operator(session, ctx, zone_id)
    if not await repo.archive_zone(session, zone_id, ctx.actor_label, via):
        raise ZoneNotFound()
    return await repo.revoke_zone_tokens(session, zone_id)


async def list_zones(
    session: AsyncSession, limit: int, cursor: Any
) -> tuple[list[dict[str, Any]], list[Row[Any]]]:
    rows = list(await repo.list_zones(session, limit, cursor))
    return [zone_out(r) for r in rows], rows


async def overview(session: AsyncSession, zone_id: str) -> dict[str, Any]:
    counts = await repo.overview(session, zone_id)
    events = await repo.recent_events(session, zone_id)
    return {
        "zone_id": zone_id,
        "generated_at": format_ts(counts.generated_at),
        "applications": {
            "total": counts.apps,
            "expired": counts.apps_expired,
            "expiring_soon": counts.apps_soon,
        },
        "resources": {"total": counts.res, "unenforced": counts.res_unenforced},
        "providers": {"total": counts.providers},
        "policy_sets": {
            "total": counts.sets,
            "enforcing": counts.enforcing,
            "active_name": counts.active_name,
        },
        "sessions": {"active": counts.active_sessions},
        "decisions_24h": {"allowed": counts.allowed, "denied": counts.denied},
        "recent_events": [
            {
                "id": e.id,
                "event_type": e.event_type,
                "request_id": e.request_id,
                "decision": e.decision,
                "metadata_json": redact(e.metadata_json),
                "occurred_at": format_ts(e.occurred_at),
            }
            for e in events
        ],
    }
