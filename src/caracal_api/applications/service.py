"""Application business rules (objects.md §2).

Secrets are hashed by the endpoints before the transaction opens (§1.1); the functions here
run inside the unit of work and write the custody copy on the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.applications import repository as repo
from caracal_api.applications.errors import (
    ApplicationNameTaken,
    ApplicationNotFound,
    ClientSecretNotConfigured,
    ClientSecretNotStored,
    DcrDisabled,
    DcrLimitExceeded,
)
from caracal_api.applications.schemas import ApplicationCreate, DcrCreate
from caracal_api.applications.traits import check_traits
from caracal_api.auth.actor import Actor
from caracal_api.auth.gates import check_reserved
from caracal_api.events.audit_stream import enqueue_audit_event
from caracal_api.kit.call import via_operator
from caracal_api.kit.ids import uuid7
from caracal_api.kit.pagination import Cursor
from caracal_api.kit.timefmt import format_ts, format_ts_or_none
from caracal_api.kit.uow import WriteContext
from caracal_api.secret_store.refs import application_secret_ref
from caracal_api.secret_store.service import SecretStore
from caracal_api.zones.errors import ZoneNotFound

NAME_PREFIX = "caracal.sys/"
MAX_LIVE_DCR = 1000


def read_shape(row: Row[Any], *, with_traits: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "zone_id": row.zone_id,
        "name": row.name,
        "registration_method": row.registration_method,
    }
    if with_traits:
        out["traits"] = list(row.traits or [])
    out.update(
        expires_at=format_ts_or_none(row.expires_at),
        archived_at=format_ts_or_none(row.archived_at),
        created_by=row.created_by,
        created_via_operator=row.created_via_operator,
        updated_by=row.updated_by,
        updated_via_operator=row.updated_via_operator,
        created_at=format_ts(row.created_at),
        updated_at=format_ts_or_none(row.updated_at),
    )
    return out


def issue_shape(row: Row[Any], secret: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "zone_id": row.zone_id,
        "name": row.name,
        "registration_method": row.registration_method,
        "expires_at": format_ts_or_none(row.expires_at),
        "created_by": row.created_by,
        "created_via_operator": row.created_via_operator,
        "updated_by": row.updated_by,
        "updated_via_operator": row.updated_via_operator,
        "created_at": format_ts(row.created_at),
        "updated_at": format_ts_or_none(row.updated_at),
        "client_secret": secret,
    }


def check_name(actor: Actor, name: str | None) -> None:
    check_reserved(actor, name, NAME_PREFIX)


def check_traits_of(actor: Actor, traits: Sequence[str] | None) -> None:
    if traits is not None:
        check_traits(traits, global_caller=actor.is_global)


# --- reads ---------------------------------------------------------------------------------


async def list_applications(
    session: AsyncSession, zone_id: str, archived: bool, limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    return await repo.list_applications(session, zone_id, archived, limit, cursor)


async def require_application(session: AsyncSession, zone_id: str, app_id: str) -> Row[Any]:
    row = await repo.get_live(session, zone_id, app_id)
    if row is None:
        raise ApplicationNotFound()
    return row


async def ensure_name_free(session: AsyncSession, zone_id: str, name: str) -> None:
    if await repo.name_taken(session, zone_id, name):
        raise ApplicationNameTaken()


# --- writes --------------------------------------------------------------------------------


async def create_application(
    session: AsyncSession,
    ctx: WriteContext,
    store: SecretStore,
    zone_id: str,
    payload: ApplicationCreate,
    secret: str,
    secret_hash: str,
) -> dict[str, Any]:
    app_id = uuid7()
    row = await repo.insert(
        session,
        {
            "id": app_id,
            "zone_id": zone_id,
            "name": payload.name,
            "registration_method": "managed",
            "client_secret_hash": secret_hash,
            "traits": list(payload.traits),
            "created_by": ctx.actor_label,
            "created_via_operator": await via_operator(session, ctx, zone_id),
        },
    )
    await store.put(session, application_secret_ref(zone_id, app_id), secret.encode("utf-8"))
    return issue_shape(row, secret)


async def rotate_secret(
    session: AsyncSession,
    ctx: WriteContext,
    store: SecretStore,
    zone_id: str,
    app_id: str,
    secret: str,
    secret_hash: str,
) -> dict[str, Any]:
    via = await via_operator(session, ctx, zone_id)
    row = await repo.update(
        session, zone_id, app_id, {"client_secret_hash": secret_hash}, ctx.actor_label, via
    )
    if row is None:
        raise ApplicationNotFound()
    await store.put(session, application_secret_ref(zone_id, app_id), secret.encode("utf-8"))
    return issue_shape(row, secret)


async def update_application(
    session: AsyncSession,
    ctx: WriteContext,
    store: SecretStore,
    zone_id: str,
    app_id: str,
    fields: dict[str, Any],
    secret_hash: str | None,
) -> dict[str, Any]:
    current = await repo.get_live(session, zone_id, app_id, lock=True)
    if current is None:
        raise ApplicationNotFound()
    if "name" in fields and await repo.name_taken(session, zone_id, fields["name"], app_id):
        raise ApplicationNameTaken()
    changes: dict[str, Any] = {}
    if "name" in fields:
        changes["name"] = fields["name"]
    if "traits" in fields:
        changes["traits"] = list(fields["traits"])
    if "client_secret" in fields:
        if current.client_secret_hash is None:
            raise ClientSecretNotConfigured()
        changes["client_secret_hash"] = secret_hash
    via = await via_operator(session, ctx, zone_id)
    row = await repo.update(session, zone_id, app_id, changes, ctx.actor_label, via)
    if row is None:
        raise ApplicationNotFound()
    if "client_secret" in fields:
        secret = str(fields["client_secret"]).encode("utf-8")
        await store.put(session, application_secret_ref(zone_id, app_id), secret)
    return read_shape(row, with_traits=ctx.actor.is_global)


async def delete_application(
    session: AsyncSession, ctx: WriteContext, store: SecretStore, zone_id: str, app_id: str
) -> None:
    via = await via_operator(session, ctx, zone_id)
    if not await repo.archive(session, zone_id, app_id, ctx.actor_label, via):
        raise ApplicationNotFound()
    await store.delete(session, application_secret_ref(zone_id, app_id))


async def register_dcr(
    session: AsyncSession,
    ctx: WriteContext,
    zone_id: str,
    payload: DcrCreate,
    secret: str,
    secret_hash: str,
) -> dict[str, Any]:
    enabled = await repo.lock_zone_dcr(session, zone_id)
    if enabled is None:
        raise ZoneNotFound()
    if not enabled:
        raise DcrDisabled()
    if await repo.count_live_dcr(session, zone_id) >= MAX_LIVE_DCR:
        raise DcrLimitExceeded(60)
    row = await repo.insert(
        session,
        {
            "id": uuid7(),
            "zone_id": zone_id,
            "name": payload.name,
            "registration_method": "dcr",
            "client_secret_hash": secret_hash,
            "traits": [],
            "expires_in": payload.expires_in,
            "created_by": ctx.actor_label,
            "created_via_operator": await via_operator(session, ctx, zone_id),
        },
    )
    return issue_shape(row, secret)


async def reveal_secret(
    session: AsyncSession,
    store: SecretStore,
    zone_id: str,
    app_id: str,
    *,
    request_id: str,
    actor_label: str,
    audit_key: bytes | None,
) -> str:
    """A5 in one transaction: the custody read and the `credential_revealed` event."""
    row = await repo.get_live(session, zone_id, app_id)
    if row is None or row.registration_method != "managed":
        raise ApplicationNotFound()
    value = await store.get(session, application_secret_ref(zone_id, app_id))
    if value is None:
        raise ClientSecretNotStored()
    await enqueue_audit_event(
        session,
        zone_id=zone_id,
        event_type="credential_revealed",
        request_id=request_id,
        decision="allow",
        metadata={
            "credential": "application_client_secret",
            "application_id": row.id,
            "application_name": row.name,
            "actor": actor_label,
        },
        key=audit_key,
    )
    return value.decode("utf-8")
