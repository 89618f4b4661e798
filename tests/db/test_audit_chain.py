"""The audit chain on both backends: entries written before migration 0011 are chained by it, new
ones by the flush hook, and the result verifies; the ORM refuses to change or delete an entry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.audit_chain import AuditAppendOnly
from core.db import create_engine, session_factory, transaction
from core.migrate import alembic_config
from core.models import AuditEntry
from harness.databases import clone_database, drop_database
from harness.postgres import PostgresServer
from services import audit

KEY = "migration-test-audit-key-0123456789abcdef"


def _upgrade(url: str, revision: str) -> None:
    from alembic import command

    config = alembic_config(url)
    config.attributes["audit_key"] = KEY
    command.upgrade(config, revision)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_existing_entries_are_chained_by_the_migration(
    backend: str, tmp_path: Path, postgres: PostgresServer
) -> None:
    if backend == "sqlite":
        url, name = f"sqlite+aiosqlite:///{tmp_path / 'chain.db'}", None
    else:
        name = await clone_database(postgres, template="template0")
        url = postgres.url(name)
    engine = create_engine(url)
    try:
        await asyncio.to_thread(_upgrade, url, "0008")
        start = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
        async with engine.begin() as connection:
            for i in (2, 0, 1):  # inserted out of time order: the migration orders by time
                await connection.execute(
                    sa.text(
                        "INSERT INTO audit_entry (id, at, actor_type, actor_id, action, "
                        "target_type, target_id, detail) VALUES (:id, :at, 'staff', 's1', "
                        "'patient.excluded', 'patient', 'p1', :detail)"
                    ),
                    {
                        "id": f"e{i}",
                        "at": (start + timedelta(minutes=i)).replace(tzinfo=None)
                        if backend == "sqlite"
                        else start + timedelta(minutes=i),
                        "detail": '{"reason": "moved", "n": 2.0}',
                    },
                )
        await asyncio.to_thread(_upgrade, url, "head")
        sessions = session_factory(engine, audit_key=KEY)
        async with transaction(sessions) as session:
            audit.record(
                session,
                actor_type="system",
                actor_id=None,
                action="run.started",
                target_type="pathway_run",
                target_id="wf-1",
                patient_id="p1",
                ratio=1.5,
            )
        async with sessions() as session:
            result = await audit.verify_chain(session, KEY)
            rows = (await session.exec(sa.select(AuditEntry.id, AuditEntry.seq))).all()  # type: ignore[call-overload]
            assert not (await audit.verify_chain(session, "another key")).intact
        assert result.intact, result.summary()
        assert result.entries == 4
        seqs = dict(rows)
        assert (seqs["e0"], seqs["e1"], seqs["e2"], sorted(seqs.values())) == (
            1,
            2,
            3,
            [1, 2, 3, 4],
        )
        async with sessions() as session:
            entry = await session.get(AuditEntry, "e1")
            assert entry is not None
            assert entry.patient_id == "p1"
            entry.action = "patient.included"
            with pytest.raises(AuditAppendOnly):
                await session.flush()
            await session.rollback()
            entry = await session.get(AuditEntry, "e1")
            await session.delete(entry)
            with pytest.raises(AuditAppendOnly):
                await session.flush()
    finally:
        await engine.dispose()
        if name:
            await drop_database(postgres, name)
