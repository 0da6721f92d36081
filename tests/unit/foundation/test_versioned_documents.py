"""kit.wirejson.VersionedDocuments: an LRU of rendered documents bounded by their size."""

from __future__ import annotations

import orjson

from caracal_api.kit.wirejson import VersionedDocuments


def test_documents_are_embedded_unparsed() -> None:
    cache = VersionedDocuments(max_bytes=1000)
    cache.put(("a", 1, "t"), '{"x": [1, 2]}')
    fragment = cache.get(("a", 1, "t"))
    assert fragment is not None
    assert orjson.dumps({"items": [fragment]}) == b'{"items":[{"x": [1, 2]}]}'
    assert cache.get(("a", 2, "t")) is None  # another version of the row is another key


def test_least_recently_used_documents_leave_first_when_full() -> None:
    cache = VersionedDocuments(max_bytes=30)
    for key in ("a", "b", "c"):
        cache.put(key, '"' + key * 8 + '"')  # 10 characters each
    assert cache.size == 30
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", '"' + "d" * 8 + '"')
    assert cache.get("b") is None
    assert [k for k in "acd" if cache.get(k) is not None] == ["a", "c", "d"]
    assert cache.size == 30


def test_replacing_a_key_keeps_the_size_right_and_a_huge_document_is_not_kept() -> None:
    cache = VersionedDocuments(max_bytes=50)
    cache.put("k", '"short"')
    cache.put("k", '"a bit longer"')
    assert cache.size == len('"a bit longer"')
    assert len(cache) == 1
    cache.put("big", '"' + "x" * 100 + '"')
    assert cache.size == 0
    assert len(cache) == 0
