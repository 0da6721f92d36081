"""Wire-form JSON rendered by PostgreSQL, for list pages that would otherwise spend most of
their time turning rows into dicts.

A repository selects `row_to_json(...)::text` over a projection whose columns are named and
formatted exactly as the response fields (timestamps through `ts`); the documents are spliced
into the response unparsed. `tests/integration` compares these documents with the Python
rendering of the same rows, field by field.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any

import orjson

from caracal_api.kit.pagination import encode_cursor

# foundation §1.2: UTC, six fractional digits, `Z` (the same text as kit.timefmt.format_ts).
_TS_PATTERN = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'


def ts(column: str) -> str:
    """SQL rendering a timestamptz column as a wire timestamp (NULL stays NULL)."""
    return f"to_char({column} AT TIME ZONE 'UTC', '{_TS_PATTERN}')"


def document(text: str) -> orjson.Fragment:
    """A JSON document from the database, embedded as is by the response encoder."""
    return orjson.Fragment(text)


class VersionedDocuments:
    """Rendered JSON by content version, for reads that mostly repeat (an LRU per process,
    bounded by the total size of its documents).

    The key names one version of the content: for a resource page, the page's query and a
    digest of its rows' (id, xmin, updated_at). PostgreSQL gives every new row version a
    new xmin, whoever wrote it, so a cached document is never stale for its key and needs
    no invalidation, in this process or any other. (xmin values recur only after about
    four billion transactions; the LRU has long forgotten them by then, and updated_at
    would have to repeat as well.)
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0  # characters of the documents held
        self._documents: OrderedDict[Hashable, tuple[orjson.Fragment, int]] = OrderedDict()

    def get(self, key: Hashable) -> orjson.Fragment | None:
        entry = self._documents.get(key)
        if entry is None:
            return None
        self._documents.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, text: str) -> orjson.Fragment:
        fragment = orjson.Fragment(text)
        previous = self._documents.pop(key, None)
        if previous is not None:
            self.size -= previous[1]
        self._documents[key] = (fragment, len(text))
        self.size += len(text)
        while self.size > self.max_bytes and self._documents:
            _, (_, evicted) = self._documents.popitem(last=False)
            self.size -= evicted
        return fragment

    def __len__(self) -> int:
        return len(self._documents)


def page(
    items: Sequence[orjson.Fragment], last: tuple[datetime | str, str] | None, limit: int
) -> dict[str, Any]:
    """`{"items", "next_cursor"}`: a cursor from the last row's (created_at, id) exactly
    when the page is full. A rendered created_at is the text `format_ts` gives, so cursors
    from either rendering are interchangeable."""
    next_cursor = None
    if last is not None and len(items) == limit:
        next_cursor = encode_cursor(*last)
    return {"items": list(items), "next_cursor": next_cursor}
