"""All SQL of the `secret_store` table and the sealed columns of `provider_connections`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_UPSERT = text(
    """
    INSERT INTO secret_store (ref, zone_id, envelope)
    VALUES (:ref, :zone_id, :envelope)
    ON CONFLICT (ref) DO UPDATE
       SET envelope = EXCLUDED.envelope,
           version = secret_store.version + 1,
           updated_at = now()
    """
)
_SELECT = text("SELECT envelope FROM secret_store WHERE ref = :ref")
_DELETE = text("DELETE FROM secret_store WHERE ref = :ref")


async def upsert(session: AsyncSession, ref: str, zone_id: str, envelope: bytes) -> None:
    await session.execute(_UPSERT, {"ref": ref, "zone_id": zone_id, "envelope": envelope})


async def select_envelope(session: AsyncSession, ref: str) -> bytes | None:
    row = (await session.execute(_SELECT, {"ref": ref})).first()
    return None if row is None else bytes(row[0])


async def delete(session: AsyncSession, ref: str) -> None:
    await session.execute(_DELETE, {"ref": ref})


# --- rekey -------------------------------------------------------------------------------

_COUNT_SECRETS = text("SELECT count(*) FROM secret_store")
_COUNT_TOKENS = text(
    "SELECT count(*) FROM provider_connections"
    " WHERE access_token_ct IS NOT NULL OR refresh_token_ct IS NOT NULL"
)
_LOCK_SECRETS = text(
    "SELECT ref, envelope FROM secret_store WHERE ref > :after ORDER BY ref LIMIT :limit FOR UPDATE"
)
_LOCK_TOKENS = text(
    "SELECT id, access_token_ct, refresh_token_ct FROM provider_connections"
    " WHERE id > :after AND (access_token_ct IS NOT NULL OR refresh_token_ct IS NOT NULL)"
    " ORDER BY id LIMIT :limit FOR UPDATE"
)
_RESEAL_SECRET = text(
    "UPDATE secret_store SET envelope = :envelope, version = version + 1, updated_at = now()"
    " WHERE ref = :ref"
)
_RESEAL_TOKENS = text(
    "UPDATE provider_connections SET access_token_ct = :access, refresh_token_ct = :refresh"
    " WHERE id = :id"
)


async def count_rows(session: AsyncSession) -> tuple[int, int]:
    secrets = (await session.execute(_COUNT_SECRETS)).scalar_one()
    tokens = (await session.execute(_COUNT_TOKENS)).scalar_one()
    return int(secrets), int(tokens)


async def lock_secret_batch(session: AsyncSession, after: str, limit: int) -> Sequence[Any]:
    return (await session.execute(_LOCK_SECRETS, {"after": after, "limit": limit})).all()


async def lock_token_batch(session: AsyncSession, after: str, limit: int) -> Sequence[Any]:
    return (await session.execute(_LOCK_TOKENS, {"after": after, "limit": limit})).all()


async def reseal_secret(session: AsyncSession, ref: str, envelope: bytes) -> None:
    await session.execute(_RESEAL_SECRET, {"ref": ref, "envelope": envelope})


async def reseal_tokens(
    session: AsyncSession, connection_id: str, access: bytes | None, refresh: bytes | None
) -> None:
    await session.execute(
        _RESEAL_TOKENS, {"id": connection_id, "access": access, "refresh": refresh}
    )
