"""put/get/delete on the caller's transaction (objects.md §1.4).

Every call runs on the session it is given, so a secret row commits or rolls back with
the change it belongs to. Envelope failures surface as 502 `secret_backend_unavailable`;
database errors propagate unchanged (the unit of work maps and retries them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit.envelope import EnvelopeError, KeyRing
from caracal_api.metrics import SECRET_BACKEND_ERRORS, SECRET_BACKEND_OPERATIONS
from caracal_api.secret_store import repository
from caracal_api.secret_store.errors import SecretBackendUnavailable
from caracal_api.secret_store.keys import load_keyring
from caracal_api.secret_store.refs import zone_of_ref

log = logging.getLogger(__name__)


@contextmanager
def _operation(kind: str, ref: str) -> Iterator[None]:
    SECRET_BACKEND_OPERATIONS.inc()
    try:
        yield
    except EnvelopeError as exc:
        SECRET_BACKEND_ERRORS.inc()
        log.error("secret store %s failed for %s: %s", kind, ref, exc)
        raise SecretBackendUnavailable() from None
    except BaseException:
        SECRET_BACKEND_ERRORS.inc()
        raise


class SecretStore:
    """The builtin backend bound to one key ring."""

    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys

    async def put(self, session: AsyncSession, ref: str, value: bytes) -> None:
        """Seal `value` under `ref` and upsert it (version + 1 on overwrite); flushes."""
        zone_id = zone_of_ref(ref)
        with _operation("put", ref):
            envelope = self.keys.seal(value, ref)
            await repository.upsert(session, ref, zone_id, envelope)

    async def get(self, session: AsyncSession, ref: str) -> bytes | None:
        """The opened value, or None when no row exists. 502 when it does not open."""
        with _operation("get", ref):
            envelope = await repository.select_envelope(session, ref)
            if envelope is None:
                return None
            return self.keys.open(envelope, ref)

    async def delete(self, session: AsyncSession, ref: str) -> None:
        """Delete the row; absent is fine."""
        with _operation("delete", ref):
            await repository.delete(session, ref)

    # Sealed columns (provider connection tokens) use the same keys and counters.

    def seal_value(self, value: bytes, aad: str) -> bytes:
        with _operation("seal", aad):
            return self.keys.seal(value, aad)

    def open_value(self, envelope: bytes, aad: str) -> bytes:
        with _operation("open", aad):
            return self.keys.open(envelope, aad)


def secret_store_of(runtime: Any) -> SecretStore:
    """The process's store, built once from settings (`Runtime.services`)."""
    return runtime.service("secret_store", lambda: SecretStore(load_keyring(runtime.settings)))
