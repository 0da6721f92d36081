"""Body transport (foundation §4.1): the content-type rule, size cap and absent bodies."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from caracal_api.errors import InvalidJson, PayloadTooLarge, UnsupportedMediaType
from caracal_api.kit import jsonio
from caracal_api.kit.transport import json_content_type, read_json_body


# foundation §18 item 12 (the rule behind it)
@pytest.mark.parametrize(
    "value",
    [
        b"application/json",
        b"Application/JSON",
        b"application/json; charset=utf-8",
        b"application/json;charset=UTF-8",
        b'application/json; charset="utf-8"',
        b"application/json; foo=bar",
        b"application/merge-patch+json",
        b"application/vnd.caracal.v1+json; charset=utf-8",
        b"  application/json  ",
    ],
)
def test_json_media_types_are_accepted(value: bytes) -> None:
    assert json_content_type(value)


# foundation §18 item 12
@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"text/plain",
        b"text/plain; charset=utf-8",
        b"application/xml",
        b"text/xml",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=xyz",
        b"application/octet-stream",
        b"text/json",
        b"json",
        b"application/jsonp",
        b"application/json-seq",
        b"application/json; charset=latin-1",
        b"application/json; charset=utf-16",
        b"application/json; charset=",
    ],
)
def test_other_media_types_are_refused(value: bytes | None) -> None:
    assert not json_content_type(value)


def receiver(chunks: Iterable[bytes]) -> tuple[Any, list[int]]:
    """An ASGI receive callable over `chunks`, recording how many bytes were read."""
    pending = list(chunks)
    read: list[int] = []

    async def receive() -> dict[str, Any]:
        if not pending:
            return {"type": "http.disconnect"}
        body = pending.pop(0)
        read.append(len(body))
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    return receive, read


def headers(content_type: bytes | None = b"application/json", **extra: bytes) -> dict[bytes, bytes]:
    out = {k.replace("_", "-").encode(): v for k, v in extra.items()}
    if content_type is not None:
        out[b"content-type"] = content_type
    return out


async def test_no_length_and_no_chunking_means_absent() -> None:
    receive, read = receiver([b'{"a": 1}'])
    assert jsonio.is_absent(await read_json_body(headers(None), receive, 1024))
    assert read == []  # never read


@pytest.mark.parametrize("content_type", [None, b"text/plain", b"application/json"])
async def test_zero_bytes_are_absent_whatever_the_content_type(content_type: bytes | None) -> None:
    receive, _ = receiver([b""])
    result = await read_json_body(headers(content_type, content_length=b"0"), receive, 1024)
    assert jsonio.is_absent(result)
    receive, _ = receiver([b"", b""])
    chunked = headers(content_type, transfer_encoding=b"chunked")
    assert jsonio.is_absent(await read_json_body(chunked, receive, 1024))


@pytest.mark.parametrize("content_type", [None, b"text/plain", b"application/xml"])
async def test_a_body_without_json_type_is_415(content_type: bytes | None) -> None:
    receive, _ = receiver([b'{"a": 1}'])
    with pytest.raises(UnsupportedMediaType):
        await read_json_body(headers(content_type, content_length=b"8"), receive, 1024)


async def test_declared_length_over_the_limit_is_413() -> None:
    receive, _ = receiver([b"{", b"}"])
    with pytest.raises(PayloadTooLarge):
        await read_json_body(headers(content_length=b"5000"), receive, 1024)


async def test_streamed_bytes_over_the_limit_are_413_and_the_rest_is_drained() -> None:
    chunks = [b"[" + b"1," * 200] * 20
    receive, read = receiver(chunks)
    with pytest.raises(PayloadTooLarge):
        await read_json_body(headers(transfer_encoding=b"chunked"), receive, 1024)
    assert len(read) == len(chunks)  # the whole (small) remainder was consumed


async def test_body_exactly_at_the_limit_is_read() -> None:
    body = b'{"k": "' + b"x" * (1024 - 9) + b'"}'
    assert len(body) == 1024
    receive, _ = receiver([body[:500], body[500:]])
    value = await read_json_body(headers(content_length=b"1024"), receive, 1024)
    assert value == {"k": "x" * 1015}


async def test_decoding_errors_surface_as_invalid_json() -> None:
    receive, _ = receiver([b'{"a": NaN}'])
    with pytest.raises(InvalidJson):
        await read_json_body(headers(content_length=b"10"), receive, 1024)


async def test_null_body_is_absent() -> None:
    receive, _ = receiver([b" null "])
    assert jsonio.is_absent(await read_json_body(headers(content_length=b"6"), receive, 1024))
