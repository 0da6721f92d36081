"""Enqueueing outbox rows (events.md §2).

Rows are written on the caller's session, inside the caller's transaction: the state change
and its event commit together or not at all. Nothing here commits or flushes anything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final

from caracal_api.kit import driver
from caracal_api.kit.driver import Tx
from caracal_api.kit.ids import uuid7
from caracal_api.kit.uow import OUTBOX_WRITTEN

PayloadValue = str | int | bool | None
Payload = Mapping[str, PayloadValue]

RESERVED_KEYS: Final = frozenset({"outbox_id", "_sig"})
# Integers travel as decimal text, but JSON consumers in other languages read the stored
# payload too; keep them within a signed 64-bit range.
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1

_INSERT_MANY = """
    INSERT INTO event_outbox (id, stream_name, payload_json, attempts, available_at, request_id)
    SELECT t.id, t.stream_name, t.payload::jsonb, 0, now(), $4
    FROM unnest($1::text[], $2::text[], $3::text[]) AS t(id, stream_name, payload)
"""


def validate_stream(stream: str) -> None:
    if not isinstance(stream, str):
        raise TypeError(f"outbox stream name must be a str, got {type(stream).__name__}")
    if not stream or not stream.isascii() or any(c.isspace() for c in stream):
        raise ValueError(f"outbox stream name {stream!r} must be non-empty ASCII without spaces")


def validate_payload(payload: Payload) -> None:
    """Enforce the flat-payload rules of events.md §2.

    Raises TypeError for a non-object payload, a non-string key or a value that is not a
    string, integer, boolean or None (floats, objects, arrays, bytes, ...); ValueError for an
    empty, non-ASCII or reserved key, a key with `=` or a newline, an integer outside 64
    bits or a string holding U+0000 or a newline.
    These are programming errors: payloads are built by code, never copied from a client.
    """
    if not isinstance(payload, Mapping):
        raise TypeError(f"outbox payload must be a flat mapping, got {type(payload).__name__}")
    for key, value in payload.items():
        if not isinstance(key, str):
            raise TypeError(f"outbox payload key {key!r} must be a str")
        if not key or not key.isascii():
            raise ValueError(f"outbox payload key {key!r} must be a non-empty ASCII string")
        if key in RESERVED_KEYS:
            raise ValueError(f"outbox payload key {key!r} is reserved")
        if "=" in key or "\n" in key:
            # The signed canonical text is `name=value` lines (events.md §4.1): a key with
            # `=` or a line break could make two payloads sign alike.
            raise ValueError(f"outbox payload key {key!r} must not contain '=' or a newline")
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, int):
            if not _INT_MIN <= value <= _INT_MAX:
                raise ValueError(f"outbox payload value of {key!r} exceeds 64 bits")
            continue
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError(f"outbox payload value of {key!r} contains U+0000")
            if "\n" in value:
                # A value with a line break could forge further `name=value` lines of the
                # signed text; every payload value is an id, an enum or compact JSON.
                raise ValueError(f"outbox payload value of {key!r} contains a newline")
            continue
        raise TypeError(
            f"outbox payload value of {key!r} must be str, int, bool or None, "
            f"got {type(value).__name__}"
        )


def encode_payload(payload: Payload) -> str:
    """Validated compact JSON text of a payload (what `payload_json` stores)."""
    validate_payload(payload)
    return json.dumps(dict(payload), ensure_ascii=False, separators=(",", ":"))


async def record(
    session: Tx,
    stream: str,
    payload: Payload,
    *,
    request_id: str | None,
) -> str:
    """Insert one outbox row in the session's transaction; returns its id (the `outbox_id`).

    Raises TypeError / ValueError for a payload that breaks events.md §2 (before any SQL).
    """
    ids = await record_many(session, [(stream, payload)], request_id=request_id)
    return ids[0]


async def record_many(
    session: Tx,
    rows: Sequence[tuple[str, Payload]],
    *,
    request_id: str | None,
) -> list[str]:
    """Insert several outbox rows with one multi-row INSERT; returns their ids in order.

    Every row is validated before anything is sent, so a bad row inserts nothing.
    """
    if not rows:
        return []
    ids: list[str] = []
    streams: list[str] = []
    payloads: list[str] = []
    for stream, payload in rows:
        validate_stream(stream)
        payloads.append(encode_payload(payload))
        streams.append(stream)
        ids.append(uuid7())
    await (await driver.raw(session)).execute(_INSERT_MANY, ids, streams, payloads, request_id)
    session.info[OUTBOX_WRITTEN] = True
    return ids
