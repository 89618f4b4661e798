"""API processes starting together (``uvicorn --workers N``, as ``make run`` and production do)
each publish the shipped pathway library at start-up; they take turns instead of failing on the
rows another is inserting (found by the API load benchmark: the second process died on
pk_form_document and uvicorn stopped the whole API)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import func, select

from api.container import Container
from core.crypto import configure_from_settings
from core.db import create_engine, session_factory, transaction
from core.migrate import upgrade
from core.models import Pathway, PathwayVersion
from harness.settings import make_settings
from integrations.his import HisClient

PROCESSES = 4


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_processes_starting_together_publish_the_library_once(
    backend: str, tmp_path: Path, database_url: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'carepath.db'}" if backend == "sqlite" else database_url
    if backend == "sqlite":
        await asyncio.to_thread(upgrade, url)
    settings = make_settings(database_url=url)
    configure_from_settings(settings)
    # One engine each, as separate processes have.
    engines = [create_engine(url) for _ in range(PROCESSES)]
    his = HisClient.create("http://127.0.0.1:9", "unused", timeout_seconds=1)
    try:
        containers = [
            Container.build(settings, session_factory(engine), None, his)  # type: ignore[arg-type]
            for engine in engines
        ]
        await asyncio.gather(*(c.sync_library() for c in containers))
        async with transaction(containers[0].sessions) as session:
            pathways = (await session.exec(select(func.count()).select_from(Pathway))).one()
            versions = (await session.exec(select(func.count()).select_from(PathwayVersion))).one()
        assert pathways > 0
        # Each library pathway published once: as many versions as pathways.
        assert versions == pathways
    finally:
        await his.close()
        for engine in engines:
            await engine.dispose()
