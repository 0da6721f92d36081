"""events.md §2 / §10 item 13: payload rules enforced at enqueue time."""

from __future__ import annotations

from typing import Any

import pytest

from caracal_api.events import outbox


class _NoSession:
    """Any SQL would fail: validation must happen before the session is touched."""

    async def execute(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("SQL executed for an invalid payload")


@pytest.mark.parametrize(
    ("payload", "exc"),
    [
        ({"ratio": 1.5}, TypeError),
        ({"ratio": float("nan")}, TypeError),
        ({"nested": {"a": "b"}}, TypeError),
        ({"items": ["a"]}, TypeError),
        ({"items": ("a",)}, TypeError),
        ({"raw": b"bytes"}, TypeError),
        ({"_sig": "x"}, ValueError),
        ({"outbox_id": "x"}, ValueError),
        ({"": "x"}, ValueError),
        ({"zoné": "x"}, ValueError),
        ({1: "x"}, TypeError),
        ({"n": 2**63}, ValueError),
        ({"s": "a\x00b"}, ValueError),
    ],
)
def test_invalid_payloads_raise(payload: dict[Any, Any], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        outbox.validate_payload(payload)


def test_non_mapping_payload_raises() -> None:
    with pytest.raises(TypeError):
        outbox.validate_payload(["a", "b"])  # type: ignore[arg-type]


def test_valid_payload_encodes_compact_json() -> None:
    text = outbox.encode_payload(
        {"zone_id": "z1", "count": 3, "flag": False, "gone": None, "name": "é"}
    )
    assert text == '{"zone_id":"z1","count":3,"flag":false,"gone":null,"name":"é"}'


@pytest.mark.parametrize("stream", ["", "a b", "strëam", 5])
def test_invalid_stream_names(stream: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        outbox.validate_stream(stream)


async def test_record_validates_before_sql() -> None:
    with pytest.raises(TypeError):
        await outbox.record(_NoSession(), "s", {"x": 1.0}, request_id=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reserved"):
        await outbox.record_many(
            _NoSession(),  # type: ignore[arg-type]
            [("s", {"ok": "1"}), ("s", {"_sig": "x"})],
            request_id=None,
        )


async def test_record_many_empty_is_noop() -> None:
    assert await outbox.record_many(_NoSession(), [], request_id=None) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload",
    [{"a": "1\nb=2"}, {"a=b": "c"}, {"a\nb": "c"}],
)
def test_values_and_keys_that_could_forge_signed_lines_are_refused(payload: dict) -> None:
    # events.md §4.1 signs `name=value` lines: {"a": "1\nb=2"} would sign like
    # {"a": "1", "b": "2"}, so such payloads never reach the outbox.
    with pytest.raises(ValueError, match=r"newline|'='"):
        outbox.validate_payload(payload)
