"""Admin-token verification with the fresh and hash caches (foundation §6.5, §6.6)."""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import secrets
from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from caracal_api.auth.actor import Actor
from caracal_api.auth.ttlcache import TTLCache
from caracal_api.errors import CaracalError
from caracal_api.kit.db import unavailable_error
from caracal_api.kit.hashing import run_hash, sha256, verify_admin_token
from caracal_api.metrics import ADMIN_TOKEN_VERIFICATIONS

log = logging.getLogger("caracal_api.auth")

MAX_TOKEN_LENGTH = 4096

_LOOKUP = text(
    "SELECT id, name, scope, zone_id, capability, created_by, token_sha256, token_hash "
    "FROM admin_tokens WHERE token_sha256 = :digest AND revoked_at IS NULL"
)


def generate_token() -> str:
    """`cat_` + base64url (no padding) of 32 CSPRNG bytes: 47 characters."""
    return "cat_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def bearer_of(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when malformed."""
    if header is None or not header.startswith("Bearer "):
        return None
    token = header[len("Bearer ") :].strip()
    if not 1 <= len(token) <= MAX_TOKEN_LENGTH:
        return None
    return token


class AuthUnavailable(Exception):
    """The token lookup itself failed (database down): answer 503, not 401."""

    def __init__(self, error: CaracalError) -> None:
        self.error = error


@dataclass
class TokenVerifier:
    engine: AsyncEngine
    redis: Redis
    debounce_sec: int
    fresh: TTLCache[bytes, Actor] = field(default_factory=lambda: TTLCache(1.0, 4096))
    verified_hashes: TTLCache[tuple[bytes, str], bool] = field(
        default_factory=lambda: TTLCache(600.0, 4096)
    )
    _inflight: dict[bytes, asyncio.Future[Actor | None]] = field(default_factory=dict)
    _touched: TTLCache[str, bool] = field(init=False)
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    lookups: int = 0  # observable by tests: database lookups performed

    def __post_init__(self) -> None:
        # The in-process debounce used while Redis is unavailable (§6.6), same window.
        self._touched = TTLCache(float(max(self.debounce_sec, 1)), 65536)

    async def verify(self, token: str) -> Actor | None:
        """The actor for a well-formed bearer token, or None when it does not authenticate.

        Raises AuthUnavailable when the database cannot be asked.
        """
        digest = sha256(token)
        actor = self.fresh.get(digest)
        if actor is not None:
            ADMIN_TOKEN_VERIFICATIONS.labels("cache_hit").inc()
            return actor
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Actor | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            actor = await self._lookup(token, digest)
            future.set_result(actor)
            return actor
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved when nobody else waits
            raise
        finally:
            self._inflight.pop(digest, None)

    async def _lookup(self, token: str, digest: bytes) -> Actor | None:
        self.lookups += 1
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(_LOOKUP, {"digest": digest})).first()
        except Exception as exc:
            error = unavailable_error(exc)
            if error is None:
                raise
            raise AuthUnavailable(error) from exc
        if row is None or row.token_hash is None or row.created_by.startswith("env-derived"):
            ADMIN_TOKEN_VERIFICATIONS.labels("rejected").inc()
            return None
        if not hmac.compare_digest(bytes(row.token_sha256), digest):
            ADMIN_TOKEN_VERIFICATIONS.labels("rejected").inc()
            return None
        if self.verified_hashes.get((digest, row.token_hash)) is None:
            ok = await run_hash(verify_admin_token, row.token_hash, token)
            if not ok:
                ADMIN_TOKEN_VERIFICATIONS.labels("rejected").inc()
                return None
            self.verified_hashes.put((digest, row.token_hash), True)
        actor = Actor(
            id=row.id,
            name=row.name,
            scope=row.scope,
            zone_id=row.zone_id,
            capability=row.capability,
            created_by=row.created_by,
        )
        self.fresh.put(digest, actor)
        ADMIN_TOKEN_VERIFICATIONS.labels("verified").inc()
        self._schedule_touch(actor.id)
        return actor

    def evict(self, digests: list[bytes]) -> None:
        """Forget revoked tokens at once on this replica (T3, Z6)."""
        wanted = set(digests)
        for digest in wanted:
            self.fresh.pop(digest)
        self.verified_hashes.pop_where(lambda key: key[0] in wanted)

    def _schedule_touch(self, token_id: str) -> None:
        task = asyncio.create_task(self._touch(token_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _touch(self, token_id: str) -> None:
        try:
            if self.debounce_sec > 0 and not await self._claim_touch(token_id):
                return
            async with self.engine.begin() as conn:
                await conn.execute(
                    text("UPDATE admin_tokens SET last_used_at = now() WHERE id = :id"),
                    {"id": token_id},
                )
        except Exception as exc:
            log.warning("last_used_at update failed", extra={"error": type(exc).__name__})

    async def _claim_touch(self, token_id: str) -> bool:
        try:
            result = await asyncio.wait_for(
                self.redis.set(
                    f"api:admin_token_touched:{token_id}", 1, ex=self.debounce_sec, nx=True
                ),
                0.25,
            )
            return bool(result)
        except Exception:
            if self._touched.get(token_id):
                return False
            self._touched.put(token_id, True)
            return True

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
