"""Admin tokens: minting (T1, CLI), listing, revocation and bootstrap seeding (§6.3, §17)."""

from __future__ import annotations

import sys
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from caracal_api.admin_tokens import repository as repo
from caracal_api.admin_tokens.errors import (
    AdminTokenNotFound,
    ApproveMintRequiresBootstrap,
    ZoneIdNotAllowedForGlobal,
    ZoneIdRequired,
)
from caracal_api.admin_tokens.schemas import AdminTokenCreate
from caracal_api.auth.actor import BOOTSTRAP_CREATED_BY, Actor
from caracal_api.auth.tokens import generate_token
from caracal_api.kit import driver
from caracal_api.kit.hashing import hash_admin_token, run_hash, sha256
from caracal_api.kit.ids import uuid7
from caracal_api.kit.timefmt import format_ts, format_ts_or_none
from caracal_api.kit.uow import WriteContext
from caracal_api.zones.errors import ZoneNotFound
from caracal_api.zones.repository import zone_exists


def token_out(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "scope": row.scope,
        "capability": row.capability,
        "zone_id": row.zone_id,
        "created_by": row.created_by,
        "created_at": format_ts(row.created_at),
        "last_used_at": format_ts_or_none(row.last_used_at),
        "revoked_at": format_ts_or_none(row.revoked_at),
    }


def check_mint_rules(payload: AdminTokenCreate, actor: Actor | None) -> None:
    """Steps 2–3 of T1; `actor` is None for the offline CLI, which may mint anything."""
    if payload.scope == "zone" and payload.zone_id is None:
        raise ZoneIdRequired()
    if payload.scope == "global" and payload.zone_id is not None:
        raise ZoneIdNotAllowedForGlobal()
    if payload.capability == "approve" and actor is not None and not actor.is_bootstrap:
        raise ApproveMintRequiresBootstrap()


async def prepare_token() -> tuple[str, bytes, str]:
    """Plaintext, digest and Argon2id hash, computed before any transaction opens."""
    plaintext = generate_token()
    return plaintext, sha256(plaintext), await run_hash(hash_admin_token, plaintext)


async def mint(
    db: AsyncSession | AsyncConnection,
    payload: AdminTokenCreate,
    created_by: str,
    prepared: tuple[str, bytes, str],
) -> dict[str, Any]:
    plaintext, digest, token_hash = prepared
    if payload.scope == "zone":
        assert payload.zone_id is not None
        if not await zone_exists(await driver.raw(db), payload.zone_id):
            raise ZoneNotFound()
    row = await repo.insert_token(
        db,
        {
            "id": uuid7(),
            "name": payload.name,
            "token_sha256": digest,
            "token_hash": token_hash,
            "scope": payload.scope,
            "zone_id": payload.zone_id if payload.scope == "zone" else None,
            "capability": payload.capability,
            "created_by": created_by,
        },
    )
    return {
        "id": row.id,
        "name": row.name,
        "scope": row.scope,
        "capability": row.capability,
        "zone_id": row.zone_id,
        "created_by": row.created_by,
        "created_at": format_ts(row.created_at),
        "token": plaintext,
    }


async def create_token(
    session: AsyncSession,
    ctx: WriteContext,
    payload: AdminTokenCreate,
    prepared: tuple[str, bytes, str],
) -> dict[str, Any]:
    return await mint(session, payload, f"admin:{ctx.actor.id}", prepared)


async def revoke_token(session: AsyncSession, _ctx: WriteContext, token_id: str) -> bytes:
    digest = await repo.revoke(session, token_id)
    if digest is None:
        raise AdminTokenNotFound()
    return digest


BANNER = "caracal-api: bootstrap admin token (shown once): "


async def seed_bootstrap(engine: AsyncEngine, configured: str | None) -> str | None:
    """Foundation §6.3; returns a generated plaintext to print once, else None.

    The caller has already refused production mode without CARACAL_ADMIN_TOKEN.
    """
    generated: str | None = None
    plaintext = configured
    if plaintext is None:
        plaintext = generate_token()
        generated = plaintext
    digest = sha256(plaintext)
    async with engine.begin() as conn:
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('admin-tokens::bootstrap'))")
        )
        if configured is None and await repo.any_live_bootstrap(conn):
            return None
        existing = await repo.live_bootstrap(conn, digest)
        if existing is not None:
            keep_id = existing.id
            if existing.token_hash is None:
                await repo.set_hash(conn, keep_id, await run_hash(hash_admin_token, plaintext))
        else:
            # Hashing only when a row is written keeps restarts with an unchanged
            # token free of the Argon2 cost.
            keep_id = uuid7()
            await repo.insert_token(
                conn,
                {
                    "id": keep_id,
                    "name": "bootstrap",
                    "token_sha256": digest,
                    "token_hash": await run_hash(hash_admin_token, plaintext),
                    "scope": "global",
                    "zone_id": None,
                    "capability": "write",
                    "created_by": BOOTSTRAP_CREATED_BY,
                },
            )
        await repo.revoke_other_bootstraps(conn, keep_id)
    return generated


def print_banner(plaintext: str) -> None:
    sys.stderr.write(f"{BANNER}{plaintext}\n")
    sys.stderr.flush()
