"""Bundle verification (policies.md §5.3): local compile always, the STS when configured."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from caracal_api.policies.contract import BundleModule
from caracal_api.policies.engine import RegoEngine, RegoFailure
from caracal_api.policy_sets.errors import InvalidPolicyBundle, PolicyVerificationUnavailable
from caracal_api.policy_sets.sts import StsClient

log = logging.getLogger("caracal_api.policy_sets")

BUNDLE_VERIFY_VERSION = "bundle-verify"


def bundle_error(failure: RegoFailure) -> InvalidPolicyBundle:
    """422 `invalid_policy_bundle` for a local compile/evaluation failure or a timeout."""
    details: dict[str, Any]
    if failure.is_timeout:
        details = {"reason": "timeout", "message": failure.message}
        return InvalidPolicyBundle("The policy bundle timed out while verifying.", details)
    details = {
        "module": failure.module,
        "line": failure.line,
        "column": failure.column,
        "message": failure.message,
    }
    if failure.is_compile:
        return InvalidPolicyBundle(
            f"The policy bundle does not compile: {failure.message}", details
        )
    return InvalidPolicyBundle(
        f"The policy bundle's data rules fail to evaluate: {failure.message}", details
    )


async def verify_locally(engine: RegoEngine, modules: Sequence[BundleModule]) -> None:
    """Step 1: build and check the bundle; raises InvalidPolicyBundle or RegoEngineBusy."""
    failure = await engine.verify_bundle(modules)
    if failure is not None:
        raise bundle_error(failure)


async def verify_remotely(
    sts: StsClient | None,
    policy_set_id: str,
    modules: Sequence[BundleModule],
    *,
    tolerate_unreachable: bool,
) -> None:
    """Step 2: POST the bundle to the STS simulate endpoint (when an STS is configured).

    Unreachable: 503 `policy_verification_unavailable`, or a warning when tolerated (PS7).
    Any answer but 2xx JSON: 422 `invalid_policy_bundle` with the STS's error text.
    """
    if sts is None:
        return
    reply = await sts.simulate(policy_set_id, BUNDLE_VERIFY_VERSION, "", modules, {})
    if reply.network_error is not None:
        if tolerate_unreachable:
            log.warning(
                "STS unreachable during bundle verification; activating without it",
                extra={"policy_set_id": policy_set_id, "error": reply.network_error},
            )
            return
        raise PolicyVerificationUnavailable()
    if reply.ok:
        try:
            reply.json()
            return
        except ValueError:
            pass
    raise InvalidPolicyBundle(
        reply.error_text(), {"reason": "sts_rejected", "status": reply.status}
    )
