from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from caracal_api.policies.engine import RegoEngine


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def rego_engine() -> AsyncIterator[RegoEngine]:
    """One shared engine (2 workers, generous deadline) for tests that only evaluate."""
    engine = RegoEngine(workers=2, timeout_ms=20_000)
    await engine.start()
    yield engine
    await engine.stop()
