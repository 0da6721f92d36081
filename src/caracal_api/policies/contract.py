"""The embedded decision contract (policies.md §9) and what the engine builds around it.

The contract is our own Rego text, shipped inside the package. A *bundle* is the contract
plus the tenant modules of one policy-set version; its digest (§3.2) names the compiled
result in every worker's cache. Results are read fail-closed (§3.3).
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from caracal_api.policies.validation import DATA_RULES

log = logging.getLogger("caracal_api.rego")

CONTRACT_MODULE = "caracal.platform.decision_contract"
CONTRACT_MODULE_LABEL = "decision_contract"
CONTRACT_VERSION = "2026-07-12"
CONTRACT_SOURCE: str = (
    resources.files("caracal_api.policies")
    .joinpath("contract", "decision_contract.rego")
    .read_text(encoding="utf-8")
)
CONTRACT_SHA256 = hashlib.sha256(CONTRACT_SOURCE.encode("utf-8")).hexdigest()

RESULT_ENTRYPOINT = "caracal/authz/result"
DATA_ENTRYPOINTS: dict[str, str] = {rule: f"caracal/authz/{rule}" for rule in DATA_RULES}
ENTRYPOINTS: tuple[str, ...] = (RESULT_ENTRYPOINT, *DATA_ENTRYPOINTS.values())

# Module name of the content under the compile check of validate / create (§2.2).
CHECK_MODULE_FILE = "policy.rego"
CHECK_MODULE_LABEL = "policy"

DEFAULT_DENY: dict[str, Any] = {
    "decision": "deny",
    "evaluation_status": "complete",
    "determining_policies": [],
    "diagnostics": [{"reason": "no_rule_matched"}],
}


@dataclass(frozen=True)
class BundleModule:
    """One tenant module of a bundle: a policy version (id, content, content hash)."""

    id: str
    content: str
    content_sha256: str

    @property
    def file_name(self) -> str:
        return f"{self.id}.rego"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def bundle_digest(modules: Iterable[BundleModule]) -> str:
    """§3.2: SHA-256 of the contract hash, then `<id>\\n<content_sha256>\\n` per module."""
    h = hashlib.sha256(CONTRACT_SHA256.encode("ascii"))
    for module in modules:
        h.update(f"{module.id}\n{module.content_sha256}\n".encode())
    return h.hexdigest()


def decision_from(status: str, value: Any) -> dict[str, Any]:
    """The decision of an evaluation output (§3.3), never an allow by accident.

    An undefined `result` is replaced by the default deny (regopy can answer undefined for
    a rule that only has its default); anything but a complete allow/deny object raises
    `MalformedResult`.
    """
    if status == "undefined":
        log.warning("decision contract result undefined; using the default deny")
        return copy.deepcopy(DEFAULT_DENY)
    if status != "ok":
        raise MalformedResult("the evaluation produced no result")
    return read_result(value)


class MalformedResult(ValueError):
    """The result document is not a complete allow/deny object (never read as allow)."""


def read_result(value: Any) -> dict[str, Any]:
    """Accept a contract result only when it is a complete allow/deny object (§3.3)."""
    if (
        not isinstance(value, Mapping)
        or value.get("decision") not in ("allow", "deny")
        or value.get("evaluation_status") != "complete"
    ):
        raise MalformedResult("the decision contract returned a malformed result")
    return dict(value)
