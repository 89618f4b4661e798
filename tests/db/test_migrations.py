"""The Alembic migrations build exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import core.models  # noqa: F401
from core.db import create_engine
from core.migrate import downgrade, upgrade
from harness.databases import clone_database, drop_database
from harness.postgres import PostgresServer


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def _check_round_trip(url: str) -> None:
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
            assert await connection.run_sync(_tables) == set(SQLModel.metadata.tables)
        await asyncio.to_thread(downgrade, url, "base")
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) == set()
        await asyncio.to_thread(upgrade, url)
    finally:
        await engine.dispose()


async def test_migrations_on_sqlite(tmp_path: Path) -> None:
    await _check_round_trip(f"sqlite+aiosqlite:///{tmp_path / 'carepath.db'}")


async def test_migrations_on_postgresql(postgres: PostgresServer) -> None:
    # An empty database, not the migrated template.
    name = await clone_database(postgres, template="template0")
    try:
        await _check_round_trip(postgres.url(name))
    finally:
        await drop_database(postgres, name)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_timestamps_come_back_timezone_aware(
    backend: str, tmp_path: Path, postgres: PostgresServer, pg_template: str
) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from core.crypto import configure_from_settings
    from core.db import session_factory, transaction
    from core.models import Patient
    from harness.settings import make_settings

    configure_from_settings(make_settings())

    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'tz.db'}"
        await asyncio.to_thread(upgrade, url)
        name = None
    else:
        name = await clone_database(postgres, pg_template)
        url = postgres.url(name)
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        beijing = datetime(2026, 11, 22, 16, 0, tzinfo=timezone(timedelta(hours=8)))
        async with transaction(sessions) as session:
            session.add(
                Patient(id="p1", his_patient_id="P1", name="张三", phone="", created_at=beijing)
            )
        async with sessions() as session:
            stored = await session.get(Patient, "p1")
        assert stored is not None
        assert stored.created_at == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
        assert stored.created_at.tzinfo is not None
    finally:
        await engine.dispose()
        if name:
            await drop_database(postgres, name)
