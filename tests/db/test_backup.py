"""OPS-3: a backup restored into a fresh database holds the same patients, runs and audit trail;
a restore never lands on top of live data."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlmodel import SQLModel

from core.db import SessionFactory, create_engine, session_factory, transaction
from core.file_store import EncryptedFiles
from core.migrate import upgrade
from core.models import PathwayRun
from harness.databases import clone_database, drop_database
from harness.postgres import PostgresServer
from harness.settings import TEST_AUDIT_KEY
from infra.audit import verify as audit_verify
from infra.backup import BackupError, create_backup, restore_backup
from services import audit
from tests.factories import add_patient
from tests.images import png

TABLES = sorted(SQLModel.metadata.tables)


async def _fill(sessions: SessionFactory) -> None:
    for name, phone in (("张建国", "13800138001"), ("李秀英", "13900139002")):
        patient, encounter = await add_patient(sessions, name=name, phone=phone)
        async with transaction(sessions) as session:
            session.add(
                PathwayRun(
                    workflow_id=f"pathway:inpatient-discharge:{patient.id}:{encounter.id}",
                    plan_id="inpatient-discharge",
                    plan_version=1,
                    patient_id=patient.id,
                    encounter_id=encounter.id,
                    department_code="cardiology",
                    anchor_at=datetime(2026, 3, 15, 2, tzinfo=UTC),
                )
            )
            audit.record(
                session,
                actor_type="staff",
                actor_id="nurse-1",
                action="run.paused",
                target_type="pathway_run",
                target_id=patient.id,
            )


async def _contents(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table (decoded as the application reads them), in key order."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            contents: dict[str, list[dict[str, Any]]] = {}
            for name in TABLES:
                table = SQLModel.metadata.tables[name]
                rows = await connection.execute(select(table).order_by(*table.primary_key.columns))
                contents[name] = [dict(row._mapping) for row in rows.all()]
            version = await connection.execute(text("SELECT version_num FROM alembic_version"))
            contents["alembic_version"] = [{"version": version.one()[0]}]
    finally:
        await engine.dispose()
    return contents


async def test_postgresql_backup_restores_into_a_fresh_database(
    postgres: PostgresServer, database_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    await _fill(sessions)
    backup = tmp_path / "carepath.dump"
    # The documented command, as an operator runs it.
    await asyncio.to_thread(
        subprocess.run,
        [
            *(sys.executable, "-m", "infra.backup", "create"),
            *(f"--output={backup}", f"--database-url={database_url}"),
        ],
        check=True,
        capture_output=True,
    )
    fresh = await clone_database(postgres, template="template0")
    try:
        await asyncio.to_thread(restore_backup, backup, postgres.url(fresh))
        restored = await _contents(postgres.url(fresh))
        original = await _contents(database_url)
        assert restored == original
        assert len(restored["patient"]) == 2
        assert len(restored["pathway_run"]) == 2
        assert len(restored["audit_entry"]) == 2
        # The restored audit trail verifies as the original's did (same chain, same head).
        copy = await audit_verify(postgres.url(fresh), TEST_AUDIT_KEY)
        live = await audit_verify(database_url, TEST_AUDIT_KEY)
        assert copy.intact
        assert (copy.entries, copy.head_mac) == (live.entries, live.head_mac)
        # A second restore would land on live data: refused, and the data stays as it was.
        with pytest.raises(BackupError, match="already has tables"):
            await asyncio.to_thread(restore_backup, backup, postgres.url(fresh))
        assert await _contents(postgres.url(fresh)) == original
    finally:
        await drop_database(postgres, fresh)


async def test_sqlite_backup_restores_into_a_fresh_file(tmp_path: Path) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path / 'carepath.db'}"
    await asyncio.to_thread(upgrade, source)
    engine = create_engine(source)
    try:
        await _fill(session_factory(engine))
    finally:
        await engine.dispose()
    backup = await asyncio.to_thread(create_backup, source, tmp_path / "b" / "carepath.sqlite3")
    with pytest.raises(BackupError, match="never overwrites"):
        await asyncio.to_thread(create_backup, source, backup)

    target = f"sqlite+aiosqlite:///{tmp_path / 'restored' / 'carepath.db'}"
    await asyncio.to_thread(restore_backup, backup, target)
    original = await _contents(source)
    assert await _contents(target) == original
    assert len(original["patient"]) == 2
    with pytest.raises(BackupError, match="already holds data"):
        await asyncio.to_thread(restore_backup, backup, source)


async def test_uploaded_photos_are_backed_up_with_the_database_and_restored(
    tmp_path: Path,
) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path / 'carepath.db'}"
    await asyncio.to_thread(upgrade, source)
    files = EncryptedFiles(tmp_path / "uploads")
    photos = {"upl_" + "a" * 32: png(16, 16), "upl_" + "b" * 32: png(8, 8, (0, 0, 0))}
    for name, data in photos.items():
        files.write(name, data)
    backup = tmp_path / "b" / "carepath.sqlite3"
    # The documented command, as an operator runs it.
    await asyncio.to_thread(
        subprocess.run,
        [
            *(sys.executable, "-m", "infra.backup", "create", f"--output={backup}"),
            *(f"--database-url={source}", f"--uploads-dir={files.root}"),
        ],
        check=True,
        capture_output=True,
    )
    archive = backup.with_name(backup.name + ".uploads.tar")
    assert archive.is_file()
    with tarfile.open(archive) as tar:
        stored = {Path(member.name).name: tar.extractfile(member) for member in tar.getmembers()}
        assert sorted(stored) == sorted(photos)
        # Archived as stored: sealed, not the pictures.
        assert all(b"PNG" not in member.read() for member in stored.values() if member)

    target = f"sqlite+aiosqlite:///{tmp_path / 'restored' / 'carepath.db'}"
    restored = EncryptedFiles(tmp_path / "restored" / "uploads")
    await asyncio.to_thread(restore_backup, backup, target, restored.root)
    assert {name: restored.read(name) for name in photos} == photos
    # An upload directory that already holds files is refused before the database is touched.
    again = f"sqlite+aiosqlite:///{tmp_path / 'again' / 'carepath.db'}"
    with pytest.raises(BackupError, match="already holds files"):
        await asyncio.to_thread(restore_backup, backup, again, files.root)
    assert not (tmp_path / "again" / "carepath.db").exists()
