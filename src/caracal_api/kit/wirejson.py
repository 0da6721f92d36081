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
    """Rendered documents by row version, for pages that mostly repeat (an LRU per process).

    The key names one version of one row: (id, xmin, updated_at). PostgreSQL gives every
    new row version a new xmin, whoever wrote it, so a cached document is never stale for
    its key and needs no invalidation, in this process or any other. (xmin values recur
    only after about four billion transactions; the LRU has long forgotten them by then,
    and updated_at would have to repeat as well.)
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._documents: OrderedDict[Hashable, orjson.Fragment] = OrderedDict()

    def get(self, key: Hashable) -> orjson.Fragment | None:
        fragment = self._documents.get(key)
        if fragment is not None:
            self._documents.move_to_end(key)
        return fragment

    def put(self, key: Hashable, text: str) -> orjson.Fragment:
        fragment = orjson.Fragment(text)
        self._documents[key] = fragment
        self._documents.move_to_end(key)
        while len(self._documents) > self.max_entries:
            self._documents.popitem(last=False)
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
