"""`caracal-api secrets rekey` (objects.md §1.4 "Rotation").

Re-seals, under the current KEK, every `secret_store` envelope and every sealed provider
connection token that is still under another key. Work goes in batches of 100 rows per
transaction with the rows locked (`FOR UPDATE`, waiting), so it runs beside live traffic;
rows already under the current key are left untouched, which makes a second run (or a run
resumed after an interruption) cheap and idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TextIO

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from caracal_api.kit.envelope import EnvelopeError, KeyRing
from caracal_api.secret_store import repository
from caracal_api.secret_store.refs import ACCESS_TOKEN_AAD, REFRESH_TOKEN_AAD

BATCH_SIZE = 100


@dataclass
class RekeyTally:
    total: int = 0
    done: int = 0
    rekeyed: int = 0
    current: int = 0
    failed: int = 0

    def summary(self) -> str:
        return f"rekeyed {self.rekeyed}, already current {self.current}, failed {self.failed}"


async def rekey(
    engine_or_sessionmaker: AsyncEngine | async_sessionmaker[AsyncSession],
    keys: KeyRing,
    out: TextIO,
    *,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Run the rekey; returns the exit code (0, or 1 when any row failed to open)."""
    if isinstance(engine_or_sessionmaker, AsyncEngine):
        sessionmaker = async_sessionmaker(engine_or_sessionmaker, expire_on_commit=False)
    else:
        sessionmaker = engine_or_sessionmaker
    tally = RekeyTally()
    async with sessionmaker() as session, session.begin():
        secrets, tokens = await repository.count_rows(session)
    tally.total = secrets + tokens
    print(f"rekey: {tally.total} rows to check ({secrets} secrets, {tokens} connections)", file=out)
    await _secret_batches(sessionmaker, keys, out, tally, batch_size)
    await _token_batches(sessionmaker, keys, out, tally, batch_size)
    print(tally.summary(), file=out)
    out.flush()
    return 1 if tally.failed else 0


async def _secret_batches(
    sessionmaker: async_sessionmaker[AsyncSession],
    keys: KeyRing,
    out: TextIO,
    tally: RekeyTally,
    batch_size: int,
) -> None:
    after = ""
    while True:
        async with sessionmaker() as session, session.begin():
            rows = await repository.lock_secret_batch(session, after, batch_size)
            for ref, envelope in rows:
                sealed = _reseal(keys, bytes(envelope), ref, tally, out, f"secret {ref}")
                if sealed is not None:
                    await repository.reseal_secret(session, ref, sealed)
            if rows:
                after = rows[-1][0]
        _progress(out, tally, len(rows))
        if len(rows) < batch_size:
            return


async def _token_batches(
    sessionmaker: async_sessionmaker[AsyncSession],
    keys: KeyRing,
    out: TextIO,
    tally: RekeyTally,
    batch_size: int,
) -> None:
    after = ""
    while True:
        async with sessionmaker() as session, session.begin():
            rows = await repository.lock_token_batch(session, after, batch_size)
            for row in rows:
                await _reseal_connection(session, keys, row, tally, out)
            if rows:
                after = rows[-1][0]
        _progress(out, tally, len(rows))
        if len(rows) < batch_size:
            return


async def _reseal_connection(
    session: AsyncSession, keys: KeyRing, row: Any, tally: RekeyTally, out: TextIO
) -> None:
    connection_id, access, refresh = row[0], row[1], row[2]
    pending = [
        (bytes(ct), aad)
        for ct, aad in ((access, ACCESS_TOKEN_AAD), (refresh, REFRESH_TOKEN_AAD))
        if ct is not None
    ]
    if all(keys.is_current(ct) for ct, _ in pending):
        tally.current += 1
        return
    try:
        resealed = [ct if keys.is_current(ct) else keys.reseal(ct, aad) for ct, aad in pending]
    except EnvelopeError as exc:
        tally.failed += 1
        print(f"rekey: provider connection {connection_id}: {exc}", file=out)
        return
    it = iter(resealed)
    new_access = next(it) if access is not None else None
    new_refresh = next(it) if refresh is not None else None
    await repository.reseal_tokens(session, connection_id, new_access, new_refresh)
    tally.rekeyed += 1


def _reseal(
    keys: KeyRing, envelope: bytes, aad: str, tally: RekeyTally, out: TextIO, label: str
) -> bytes | None:
    if keys.is_current(envelope):
        tally.current += 1
        return None
    try:
        sealed = keys.reseal(envelope, aad)
    except EnvelopeError as exc:
        tally.failed += 1
        print(f"rekey: {label}: {exc}", file=out)
        return None
    tally.rekeyed += 1
    return sealed


def _progress(out: TextIO, tally: RekeyTally, rows: int) -> None:
    tally.done += rows
    if rows:
        print(f"rekey: {tally.done}/{max(tally.total, tally.done)} rows", file=out)
        out.flush()
