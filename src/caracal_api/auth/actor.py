"""The authenticated caller of a `/v1` request."""

from __future__ import annotations

from dataclasses import dataclass

BOOTSTRAP_CREATED_BY = "env-bootstrap"


@dataclass(frozen=True, slots=True)
class Actor:
    id: str
    name: str
    scope: str  # "global" | "zone"
    zone_id: str | None
    capability: str  # "read" | "write" | "approve"
    created_by: str

    @property
    def is_bootstrap(self) -> bool:
        return self.created_by == BOOTSTRAP_CREATED_BY

    @property
    def is_global(self) -> bool:
        return self.scope == "global"
