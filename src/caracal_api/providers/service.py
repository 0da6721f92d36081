"""Provider business rules (objects.md §3)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.auth.actor import Actor
from caracal_api.auth.gates import check_reserved
from caracal_api.errors import NoFields, ValidationFailed, issue
from caracal_api.kit.call import via_operator
from caracal_api.kit.ids import uuid7
from caracal_api.kit.pagination import Cursor
from caracal_api.kit.timefmt import format_ts, format_ts_or_none
from caracal_api.kit.uow import WriteContext
from caracal_api.providers import identifiers
from caracal_api.providers import repository as repo
from caracal_api.providers.config import OAUTH_KINDS, SplitConfig, split
from caracal_api.providers.errors import (
    INVALID_PROVIDER,
    InvalidProviderIdentifier,
    ProviderConfigRequired,
    ProviderIdentifierConflict,
    ProviderNotFound,
)
from caracal_api.providers.schemas import ProviderCreate, ProviderUpdate
from caracal_api.secret_store.errors import SecretBackendUnavailable
from caracal_api.secret_store.refs import provider_secret_ref
from caracal_api.secret_store.service import SecretStore

IDENTIFIER_ATTEMPTS = 3


def provider_out(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "zone_id": row.zone_id,
        "name": row.name,
        "identifier": row.identifier,
        "kind": row.provider_kind,
        "config_json": row.config_json,
        "secret_config_keys": sorted(row.secret_config_keys or []),
        "connectivity_failed_at": format_ts_or_none(row.connectivity_failed_at),
        "created_by": row.created_by,
        "created_via_operator": row.created_via_operator,
        "updated_by": row.updated_by,
        "updated_via_operator": row.updated_via_operator,
        "created_at": format_ts(row.created_at),
        "updated_at": format_ts(row.updated_at),
        "archived_at": format_ts_or_none(row.archived_at),
    }


def secret_document(secrets: dict[str, str]) -> bytes:
    """Compact JSON, keys sorted (objects.md §1.4)."""
    text = json.dumps(secrets, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _check_identifier(identifier: str) -> None:
    if not identifiers.is_valid_identifier(identifier):
        raise InvalidProviderIdentifier()


def _check_reserved(actor: Actor, identifier: str) -> None:
    check_reserved(actor, identifier, identifiers.RESERVED_PREFIX)


@dataclass(frozen=True)
class CreatePlan:
    name: str | None
    identifier: str | None  # explicit
    kind: str
    config: SplitConfig
    check: bool

    @property
    def identifier_base(self) -> str:
        return self.identifier or identifiers.generated_base(self.name, self.kind)


def plan_create(payload: ProviderCreate) -> CreatePlan:
    """P3 steps 2–4 (after the model validated types): names, identifier, config."""
    name = payload.name or None
    explicit = payload.identifier or None
    if name is None and explicit is None:
        raise ValidationFailed(
            INVALID_PROVIDER, [issue(["name"], "name or identifier is required")]
        )
    if explicit is not None:
        _check_identifier(explicit)
    config = split(payload.kind, payload.config_json, secrets_required=True)
    return CreatePlan(name, explicit, payload.kind, config, payload.check)


def check_create_reserved(actor: Actor, plan: CreatePlan) -> None:
    _check_reserved(actor, plan.identifier_base)


# --- reads ---------------------------------------------------------------------------------


async def list_providers(
    session: AsyncSession, zone_id: str, archived: bool, limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    return await repo.list_providers(session, zone_id, archived, limit, cursor)


async def require_provider(
    session: AsyncSession, zone_id: str, provider_id: str, *, lock: bool = False
) -> Row[Any]:
    row = await repo.get_live(session, zone_id, provider_id, lock=lock)
    if row is None:
        raise ProviderNotFound()
    return row


async def read_secrets(
    session: AsyncSession, store: SecretStore, zone_id: str, provider_id: str
) -> dict[str, str]:
    """The provider's secret document (absent = {}); 502 when it does not open."""
    value = await store.get(session, provider_secret_ref(zone_id, provider_id))
    if value is None:
        return {}
    try:
        document = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SecretBackendUnavailable() from None
    if not isinstance(document, dict):
        raise SecretBackendUnavailable()
    return {str(k): str(v) for k, v in document.items()}


# --- writes --------------------------------------------------------------------------------


async def create_provider(
    session: AsyncSession,
    ctx: WriteContext,
    store: SecretStore,
    zone_id: str,
    plan: CreatePlan,
    unverified: bool,
) -> dict[str, Any]:
    provider_id = uuid7()
    values: dict[str, Any] = {
        "id": provider_id,
        "zone_id": zone_id,
        "kind": plan.kind,
        "config": plan.config.public,
        "secret_keys": plan.config.secret_keys,
        "unverified": unverified,
        "created_by": ctx.actor_label,
        "via": await via_operator(session, ctx, zone_id),
    }
    if plan.identifier is not None:
        row = await repo.insert(
            session, {**values, "identifier": plan.identifier, "name": plan.name or plan.identifier}
        )
    else:
        row = await _insert_generated(session, ctx, zone_id, plan, values)
    if plan.config.secrets:
        await store.put(
            session, provider_secret_ref(zone_id, provider_id), secret_document(plan.config.secrets)
        )
    return provider_out(row)


async def _insert_generated(
    session: AsyncSession,
    ctx: WriteContext,
    zone_id: str,
    plan: CreatePlan,
    values: dict[str, Any],
) -> Row[Any]:
    base = plan.identifier_base
    attempt = 1
    while True:
        await repo.lock_identifier_base(session, zone_id, base)
        taken = await repo.taken_identifiers(session, zone_id, base)
        identifier = next(c for c in identifiers.candidates(base) if c not in taken)
        _check_reserved(ctx.actor, identifier)
        try:
            return await repo.insert(
                session, {**values, "identifier": identifier, "name": plan.name or identifier}
            )
        except ProviderIdentifierConflict:
            if attempt >= IDENTIFIER_ATTEMPTS:
                raise
            attempt += 1


def plan_update(actor: Actor, payload: ProviderUpdate) -> dict[str, Any]:
    """P4 steps 2–4; returns the fields to apply."""
    fields: dict[str, Any] = {}
    for name in payload.model_fields_set:
        value = getattr(payload, name)
        if name in ("name", "identifier") and not value:
            continue  # empty or blank counts as absent
        fields[name] = value
    if "identifier" in fields:
        _check_identifier(fields["identifier"])
        _check_reserved(actor, fields["identifier"])
    if "kind" in fields and "config_json" not in fields:
        raise ProviderConfigRequired()
    if not fields:
        raise NoFields()
    return fields


async def update_provider(
    session: AsyncSession,
    ctx: WriteContext,
    store: SecretStore,
    zone_id: str,
    provider_id: str,
    fields: dict[str, Any],
) -> dict[str, Any]:
    current = await require_provider(session, zone_id, provider_id, lock=True)
    changes: dict[str, Any] = {k: fields[k] for k in ("name", "identifier") if k in fields}
    kind_sent = "kind" in fields
    config: SplitConfig | None = None
    if "config_json" in fields:
        if kind_sent:
            config = split(fields["kind"], fields["config_json"], secrets_required=True)
        else:
            config = split(
                current.provider_kind,
                fields["config_json"],
                secrets_required=False,
                stored_secret_keys=current.secret_config_keys or [],
            )
        changes["config_json"] = config.public
    if kind_sent:
        changes["provider_kind"] = fields["kind"]
        if fields["kind"] not in OAUTH_KINDS:
            changes["connectivity_failed_at"] = None
    secrets = config.secrets if config is not None else {}
    if secrets:
        changes["secret_config_keys"] = sorted(secrets)
    elif kind_sent:
        changes["secret_config_keys"] = []
    via = await via_operator(session, ctx, zone_id)
    row = await repo.update(session, zone_id, provider_id, changes, ctx.actor_label, via)
    if row is None:
        raise ProviderNotFound()
    ref = provider_secret_ref(zone_id, provider_id)
    if secrets:
        await store.put(session, ref, secret_document(secrets))
    elif kind_sent:
        await store.delete(session, ref)
    return provider_out(row)


async def delete_provider(
    session: AsyncSession, ctx: WriteContext, store: SecretStore, zone_id: str, provider_id: str
) -> None:
    via = await via_operator(session, ctx, zone_id)
    if not await repo.archive(session, zone_id, provider_id, ctx.actor_label, via):
        raise ProviderNotFound()
    await store.delete(session, provider_secret_ref(zone_id, provider_id))


async def record_check(
    session: AsyncSession,
    _ctx: WriteContext,
    zone_id: str,
    provider_id: str,
    result: dict[str, Any],
) -> dict[str, Any]:
    await repo.set_connectivity(session, zone_id, provider_id, result["status"] == "ok")
    return result
