"""Pooled database connections after the server dropped them (a PostgreSQL restart, a failover,
an idle timeout): one that sat unused is checked and replaced before anyone gets it; one that
died while in use a moment ago costs its one request a retryable error, never the next. Requests
in between skip the check (it costs three round trips on asyncpg; issue 15)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from core import db
from core.db import create_engine, database_unreachable


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def _drop(database_url: str, pid: int) -> None:
    """What a restart does to one connection: the server ends it."""
    other = create_engine(database_url)
    async with other.connect() as connection:
        await connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await other.dispose()


async def test_a_dropped_connection_that_sat_unused_is_replaced_before_use(
    engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped = await _backend_pid(engine)
    await _drop(database_url, dropped)
    # As if the pool had not handed it out for longer than the window.
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)

    again = await _backend_pid(engine)

    assert again != dropped


async def test_a_connection_dropped_right_after_use_fails_one_request_and_only_one(
    engine: AsyncEngine, database_url: str
) -> None:
    dropped = await _backend_pid(engine)
    await _drop(database_url, dropped)

    with pytest.raises(DBAPIError) as failed:
        await _backend_pid(engine)
    again = await _backend_pid(engine)

    assert database_unreachable(failed.value)  # the API's 503 with Retry-After
    assert again != dropped
