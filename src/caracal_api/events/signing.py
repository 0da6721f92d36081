"""Stream message signing: `_sig` (events.md §4).

Canonical text = `<stream>\\n` + `<name>=<value>\\n` for every field except `_sig`, in
ascending byte order of the field name, skipping null values; `_sig` = lower-case hex
HMAC-SHA256(STREAMS_HMAC_KEY, UTF-8 of that text). The stream name is bound, so the same
fields never verify for another stream.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

from caracal_api.events.outbox import Payload, PayloadValue

SIG_FIELD = "_sig"
OUTBOX_ID_FIELD = "outbox_id"


def stringify(value: PayloadValue) -> str | None:
    """The published text of a payload value (§4.2); None means the field is omitted."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"cannot publish a {type(value).__name__} value")


def _byte_key(item: tuple[str, str]) -> bytes:
    return item[0].encode("utf-8")


def published_fields(outbox_id: str, payload: Payload) -> list[tuple[str, str]]:
    """Fields of the message in publish order, without `_sig`.

    `outbox_id` first, then the payload keys in ascending byte order, null values skipped.
    """
    fields = [(OUTBOX_ID_FIELD, outbox_id)]
    rest: list[tuple[str, str]] = []
    for name, value in payload.items():
        text = stringify(value)
        if text is not None:
            rest.append((name, text))
    rest.sort(key=_byte_key)
    fields.extend(rest)
    return fields


def canonical_text(stream: str, fields: Iterable[tuple[str, str | None]]) -> bytes:
    """UTF-8 canonical text of §4.1 over `fields` (any order; `_sig` and nulls ignored)."""
    items = sorted(
        ((n, v) for n, v in fields if n != SIG_FIELD and v is not None),
        key=lambda item: item[0].encode("utf-8"),
    )
    parts = [stream, "\n"]
    for name, value in items:
        parts.append(f"{name}={value}\n")
    return "".join(parts).encode("utf-8")


def sign(key: bytes, stream: str, fields: Iterable[tuple[str, str | None]]) -> str:
    """Lower-case hex HMAC-SHA256 of the canonical text."""
    return hmac.new(key, canonical_text(stream, fields), hashlib.sha256).hexdigest()


def message_fields(
    stream: str, outbox_id: str, payload: Payload, key: bytes | None
) -> list[tuple[str, str]]:
    """Every field to publish, in order, with `_sig` last when a key is configured."""
    fields = published_fields(outbox_id, payload)
    if key is not None:
        fields.append((SIG_FIELD, sign(key, stream, fields)))
    return fields


def _as_text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def verify(
    keys: Iterable[bytes],
    stream: str,
    fields: Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[str, str]],
) -> bool:
    """True when `_sig` of a received message matches under one of `keys`.

    `fields` is the message as read from Redis (str or bytes names and values). A message
    without `_sig`, or with a `_sig` under none of the keys, does not verify.
    """
    items_iter = fields.items() if isinstance(fields, Mapping) else fields
    items = [(_as_text(n), _as_text(v)) for n, v in items_iter]
    received = next((v for n, v in items if n == SIG_FIELD), None)
    if received is None:
        return False
    text = canonical_text(stream, items)
    ok = False
    for key in keys:
        expected = hmac.new(key, text, hashlib.sha256).hexdigest()
        # Evaluate every key so timing does not reveal which one matched.
        ok = hmac.compare_digest(expected, received.lower()) or ok
    return ok
