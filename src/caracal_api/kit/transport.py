"""Body transport checks of foundation §4.1: content type, size, strict decoding."""

from __future__ import annotations

from typing import Any

from starlette.types import Receive

from caracal_api.errors import PayloadTooLarge, UnsupportedMediaType
from caracal_api.kit import jsonio

# A client that keeps sending past the limit is still read (and discarded) up to this many
# bytes, so the 413 reaches it instead of a connection reset.
DRAIN_FACTOR = 16


def json_content_type(value: bytes | None) -> bool:
    if value is None:
        return False
    try:
        text = value.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return False
    main, *params = (part.strip() for part in text.split(";"))
    main = main.lower()
    if "/" not in main:
        return False
    kind, subtype = main.split("/", 1)
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return False
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset" and val.strip().strip('"').lower() != "utf-8":
            return False
    return True


async def _drain(receive: Receive, budget: int) -> None:
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def read_json_body(headers: dict[bytes, bytes], receive: Receive, limit: int) -> Any:
    """The decoded body, or jsonio.ABSENT; raises 415, 413 or 400 invalid_json."""
    declared = headers.get(b"content-length")
    chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
    length = int(declared) if declared and declared.strip().isdigit() else None
    if not chunked and not length:
        return jsonio.ABSENT
    first = b""
    more = True
    while more and not first:
        message = await receive()
        if message["type"] != "http.request":
            return jsonio.ABSENT
        first = message.get("body", b"")
        more = message.get("more_body", False)
    if not first:
        return jsonio.ABSENT
    if not json_content_type(headers.get(b"content-type")):
        if more:
            await _drain(receive, limit * DRAIN_FACTOR)
        raise UnsupportedMediaType()
    if length is not None and length > limit:
        if more:
            await _drain(receive, limit * DRAIN_FACTOR)
        raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
    chunks = [first]
    size = len(first)
    while more:
        if size > limit:
            await _drain(receive, limit * DRAIN_FACTOR)
            raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
    if size > limit:
        raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
    return jsonio.decode_body(b"".join(chunks))
