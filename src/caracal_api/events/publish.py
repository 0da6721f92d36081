"""One round trip of XADDs for a batch (events.md §3.3).

redis-py spends ~30 µs per command encoding its arguments; for a 128-row batch that was
4 ms of the 10 ms publish step (bench/outbox_bench.py). Our arguments are already `str`,
so the batch is packed into RESP here and written on one pooled connection, then every
reply is read in order. Clients whose connections are not plain sockets (the in-process
stream store of embedded mode) use an ordinary non-transactional pipeline instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Final

from redis import exceptions as redis_exc
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

_SOCKET_CONNECTIONS: Final = (Connection, SSLConnection, UnixDomainSocketConnection)

Command = Sequence[str]


def pack(commands: Sequence[Command]) -> bytes:
    """RESP encoding of `commands` (each a sequence of str arguments)."""
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            data = arg.encode("utf-8")
            out.append(b"$%d\r\n" % len(data))
            out.append(data)
            out.append(b"\r\n")
    return b"".join(out)


async def execute(redis: Redis, commands: Sequence[Command]) -> list[Any]:
    """Send every command in one write; one reply per command, in order.

    A command's error reply is returned in its place as a `ResponseError` instance. A
    failure of the connection itself (no reply) raises redis `ConnectionError` /
    `TimeoutError` (or OSError): then no reply of the batch can be trusted.
    """
    if not commands:
        return []
    pool = redis.connection_pool
    if pool.connection_class not in _SOCKET_CONNECTIONS:
        return await _pipeline(redis, commands)
    payload = pack(commands)
    conn = await pool.get_connection()
    done = False
    try:
        try:
            await conn.send_packed_command(payload)
        except (redis_exc.ConnectionError, redis_exc.TimeoutError, OSError):
            # A pooled connection may have died while idle (e.g. Redis restarted): one
            # fresh connection is tried before the batch counts as unpublished.
            await conn.disconnect()
            await conn.send_packed_command(payload)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except redis_exc.ResponseError as exc:
                if isinstance(exc, redis_exc.ConnectionError):
                    raise
                replies.append(exc)
        done = True
        return replies
    finally:
        if not done:
            # Unread replies would desynchronise the next user of this connection.
            with contextlib.suppress(Exception):
                await conn.disconnect()
        await pool.release(conn)


async def _pipeline(redis: Redis, commands: Sequence[Command]) -> list[Any]:
    pipe = redis.pipeline(transaction=False)
    try:
        for command in commands:
            pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies
    finally:
        with contextlib.suppress(Exception):
            await pipe.reset()
