"""kit.driver: driver statements join the unit of work's transaction, or refuse to run."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from caracal_api.kit import driver
from caracal_api.kit.ids import uuid7
from tests.conftest import Api


async def test_a_driver_statement_first_still_runs_inside_the_transaction(api: Api) -> None:
    marker = f"driver-{uuid7()}"
    async with api.runtime.sessionmaker() as session, session.begin():
        db = await driver.raw(session)  # no SQLAlchemy statement yet: of() begins
        await db.execute("SELECT set_config('application_name', $1, true)", marker)
        inside = await session.execute(text("SELECT current_setting('application_name')"))
        assert inside.scalar_one() == marker
        await session.rollback()
    async with api.runtime.engine.connect() as conn:
        after = await conn.execute(text("SELECT current_setting('application_name')"))
        assert after.scalar_one() != marker


async def test_an_autocommit_connection_is_refused(api: Api) -> None:
    async with api.runtime.engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(driver.NotInTransaction):
            await driver.of(autocommit)
