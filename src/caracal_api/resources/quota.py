"""When a resource create has to count the zone's live resources (objects.md R3 step 8).

Counting is O(zone): PostgreSQL has no cheap `count(*)`, so a create into a zone of ten
thousand resources would spend milliseconds counting rows that are nowhere near the quota.
This process remembers the last count per zone and skips counting while that count is
recent and far below the quota. Near the quota every create counts, so the limit is as
exact there as the transaction's snapshot allows (concurrent creates could always both
pass one below it).

The bound, written down in docs/objects.md: a zone's count is at most `REFRESH_S` old when it
is trusted, and it is trusted only while it is at least `MARGIN` below the quota, so
replicas together would have to create more than `MARGIN` resources in one zone within
`REFRESH_S` to overshoot.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

REFRESH_S = 1.0
MARGIN = 1_000
ZONES_REMEMBERED = 10_000


class QuotaGate:
    def __init__(
        self,
        *,
        refresh_s: float = REFRESH_S,
        margin: int = MARGIN,
        zones: int = ZONES_REMEMBERED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._refresh_s = refresh_s
        self._margin = margin
        self._zones = zones
        self._clock = clock
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def must_count(self, zone_id: str, quota: int) -> bool:
        """Does a create into this zone have to count its live resources now?"""
        if quota <= 0:
            return False
        known = self._counts.get(zone_id)
        if known is None:
            return True
        live, counted_at = known
        fresh = self._clock() - counted_at < self._refresh_s
        return not fresh or live + self._margin >= quota

    def counted(self, zone_id: str, live: int) -> None:
        """Remember a count read by a create (the row it inserts is not in it)."""
        self._counts[zone_id] = (live, self._clock())
        self._counts.move_to_end(zone_id)
        while len(self._counts) > self._zones:
            self._counts.popitem(last=False)
