"""Manifests: their hash (policies.md §5.1) and the contract check (§5.2)."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from caracal_api.kit.rawread import RawSQL
from caracal_api.policies.contract import BundleModule
from caracal_api.policies.validation import check_schema_version, validate_static
from caracal_api.policy_sets.errors import InvalidPolicyContract
from caracal_api.policy_sets.schemas import MAX_MANIFEST

_STATIC_CACHE_SIZE = 1024


def manifest_json(ids: Sequence[str]) -> list[dict[str, str]]:
    return [{"policy_version_id": version_id} for version_id in ids]


def manifest_sha256(ids: Sequence[str]) -> str:
    """Lower-case hex SHA-256 of the compact manifest JSON, as the STS recomputes it."""
    compact = json.dumps(manifest_json(ids), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(compact.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredVersion:
    """A policy version a manifest references, as the contract check reads it."""

    id: str
    content: str
    content_sha256: str
    schema_version: str
    zone_id: str


@dataclass(frozen=True)
class CheckedManifest:
    """The referenced versions in manifest order and their shared schema version."""

    modules: list[BundleModule]
    schema_version: str


class _StaticVerdicts:
    """Static-validator verdicts of stored versions, keyed by content hash (content is
    immutable, so the verdict of a hash never changes)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._codes: OrderedDict[str, str | None] = OrderedDict()

    def code(self, content_sha256: str, content: str) -> str | None:
        if content_sha256 in self._codes:
            self._codes.move_to_end(content_sha256)
            return self._codes[content_sha256]
        code = validate_static(content).code
        self._codes[content_sha256] = code
        while len(self._codes) > self._size:
            self._codes.popitem(last=False)
        return code


_verdicts = _StaticVerdicts(_STATIC_CACHE_SIZE)


def _check_entries(ids: Sequence[str]) -> None:
    """Rules 1–3: at least one entry, at most MAX_MANIFEST, none twice."""
    if not ids:
        raise InvalidPolicyContract("empty_manifest", "The manifest lists no policy version.")
    if len(ids) > MAX_MANIFEST:
        raise InvalidPolicyContract(
            "too_many_entries", f"The manifest lists more than {MAX_MANIFEST} policy versions."
        )
    if len(set(ids)) != len(ids):
        raise InvalidPolicyContract(
            "duplicate_entries", "The manifest lists a policy version more than once."
        )


_VERSIONS = (
    "SELECT pv.id, pv.content, pv.content_sha256, pv.schema_version, p.zone_id"
    " FROM policy_versions pv JOIN policies p ON p.id = pv.policy_id"
    " WHERE pv.id = ANY($1::text[])"
)


async def check_manifest(db: RawSQL, zone_id: str, ids: Sequence[str]) -> CheckedManifest:
    """The eight rules of §5.2, in order; raises InvalidPolicyContract."""
    _check_entries(ids)  # before the read: an oversized manifest costs no query
    found = [StoredVersion(*row) for row in await db.fetch(_VERSIONS, list(ids))]
    return check_fetched(zone_id, ids, found)


def check_fetched(
    zone_id: str, ids: Sequence[str], found: Sequence[StoredVersion]
) -> CheckedManifest:
    """`check_manifest` on versions already read (`found`: those of `ids` that exist)."""
    _check_entries(ids)
    rows = {version.id: version for version in found}
    missing = [version_id for version_id in ids if version_id not in rows]
    if missing:
        raise InvalidPolicyContract(
            "missing_versions", f"Unknown policy versions: {', '.join(missing[:10])}."
        )
    ordered = [rows[version_id] for version_id in ids]
    for row in ordered:
        if row.zone_id != zone_id:
            raise InvalidPolicyContract(
                "foreign_zone", f"Policy version {row.id} belongs to another zone."
            )
    schema = ordered[0].schema_version
    for row in ordered:
        if row.schema_version != schema:
            raise InvalidPolicyContract(
                "schema_mismatch",
                f"The schema version {row.schema_version} of policy version {row.id}"
                f" does not match policy set schema {schema}.",
            )
    unsupported = check_schema_version(schema)
    if unsupported is not None:
        raise InvalidPolicyContract(
            "unsupported_schema", f"The manifest schema is not supported: {unsupported}."
        )
    for row in ordered:
        code = _verdicts.code(row.content_sha256, row.content)
        if code is not None:
            raise InvalidPolicyContract(
                f"invalid_document:{code}",
                f"Policy version {row.id} is not a valid data document: {code}.",
            )
    modules = [BundleModule(row.id, row.content, row.content_sha256) for row in ordered]
    return CheckedManifest(modules, schema)
