"""Data-key rotation (SEC-4): rows and uploaded files sealed with key t1, the current key
switched to t2 (t1 kept to decrypt), the KeyRotation workflow run on the real Temporal dev
server. Its first worker stops mid-way, with a batch in flight; the platform's worker finishes
the job. At the end every row and every file carries t2, the values and photos decrypt
unchanged, and t1 is no longer needed."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.key_rotation import KeyRotationActivities
from contracts.key_rotation import (
    ACTIVITY_REENCRYPT_BATCH,
    KEY_ROTATION_WORKFLOW,
    UNREADABLE_VALUE,
    KeyRotationInput,
    KeyRotationResult,
    ReencryptBatch,
    ReencryptBatchResult,
)
from core.crypto import configure_from_settings, envelope_key_id
from core.db import SessionFactory, transaction
from core.file_store import EncryptedFiles
from core.models import CareTask, PathwayRun, Patient, TaskStatus, Upload
from core.settings import Settings
from harness.settings import TEST_DATA_KEYS, make_settings
from harness.workers import running_worker
from services.key_rotation import rows_under_old_keys
from tests.images import png
from workflows.key_rotation import KeyRotationWorkflow

NEW_KEY = "6e65772d646174612d6b65792d303032"
PATIENTS = 23
PHOTOS = 7


def _rotated_settings(
    database_url: str, task_queue: str, keys: dict[str, str], uploads: Path | None = None
) -> Settings:
    return make_settings(
        database_url=database_url,
        temporal_task_queue=task_queue,
        data_keys=json.dumps(keys),
        data_key_id="t2",
        upload_dir=uploads,
    )


async def _photos(sessions: SessionFactory, files: EncryptedFiles) -> dict[str, bytes]:
    """Seven wound photos of one patient's task, on disk under the current key."""
    now = datetime.now(UTC)
    async with transaction(sessions) as session:
        patient = Patient(his_patient_id="H-PHOTO", name="王芳", phone="13700137000")
        session.add(patient)
        await session.flush()
        run = PathwayRun(
            workflow_id="pathway:inpatient-discharge:photo",
            plan_id="inpatient-discharge",
            plan_version=1,
            patient_id=patient.id,
            department_code="cardiology",
            anchor_at=now,
        )
        session.add(run)
        await session.flush()
        task = CareTask(
            id=str(uuid.uuid4()),
            workflow_id=run.workflow_id,
            step_id="wound",
            patient_id=patient.id,
            plan_id="inpatient-discharge",
            department_code="cardiology",
            title="伤口照片",
            responsible_role="nurse",
            status=TaskStatus.COMPLETED,
            due_at=now,
        )
        session.add(task)
        await session.flush()
        photos = {}
        for i in range(PHOTOS):
            reference = f"upl_{i:02d}" + "x" * 30
            photos[reference] = png(8 + i, 8, (i * 20, 40, 40))
            files.write(reference, photos[reference])
            session.add(
                Upload(
                    reference=reference,
                    task_id=task.id,
                    question_id="wound_photo",
                    content_type="image/png",
                    size=len(photos[reference]),
                    digest=f"{i:064d}",
                )
            )
    return photos


def _file_key_ids(files: EncryptedFiles, names: Iterable[str]) -> set[str]:
    return {files.path(name).read_bytes()[5:7].decode() for name in names}


class StallingActivities(KeyRotationActivities):
    """Re-encrypts ``batches`` batches, then hangs in the next one until its worker stops."""

    def __init__(self, sessions: SessionFactory, files: EncryptedFiles, batches: int) -> None:
        super().__init__(sessions, files)
        self._left = batches
        self.stalled = asyncio.Event()

    @activity.defn(name=ACTIVITY_REENCRYPT_BATCH)
    async def reencrypt_batch(self, request: ReencryptBatch) -> ReencryptBatchResult:
        if self._left == 0:
            self.stalled.set()
            await asyncio.Event().wait()  # cancelled when the worker shuts down
        self._left -= 1
        return await super().reencrypt_batch(request)


async def _raw_key_ids(sessions: SessionFactory) -> set[str]:
    async with sessions() as session:
        connection = await session.connection()
        rows = (await connection.execute(sa.text("SELECT name, phone FROM patient"))).all()
    return {envelope_key_id(v) for row in rows for v in row}


async def test_rotation_reencrypts_every_row_and_survives_a_worker_restart(
    database_url: str,
    sessions: SessionFactory,
    dev_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
) -> None:
    expected = {}
    async with transaction(sessions) as session:
        for i in range(PATIENTS):
            name, phone = f"患者{i:02d}", f"139{i:08d}"
            expected[f"H{i}"] = (name, phone)
            session.add(Patient(his_patient_id=f"H{i}", name=name, phone=phone))
    files = EncryptedFiles(tmp_path / "uploads")
    photos = await _photos(sessions, files)
    expected["H-PHOTO"] = ("王芳", "13700137000")
    assert await _raw_key_ids(sessions) == {"t1"}
    assert _file_key_ids(files, photos) == {"t1"}

    rotated = _rotated_settings(
        database_url, task_queue, {**TEST_DATA_KEYS, "t2": NEW_KEY}, files.root
    )
    configure_from_settings(rotated)
    try:
        stalling = StallingActivities(sessions, files, batches=2)
        first = Worker(
            dev_env.client,
            task_queue=task_queue,
            workflows=[KeyRotationWorkflow],
            activities=[stalling.reencrypt_batch],
        )
        async with first:
            handle = await dev_env.client.start_workflow(
                KEY_ROTATION_WORKFLOW,
                KeyRotationInput(batch_size=5, batches_per_run=3),
                id=f"key-rotation-{uuid.uuid4()}",
                task_queue=task_queue,
                result_type=KeyRotationResult,
            )
            await asyncio.wait_for(stalling.stalled.wait(), timeout=30)
            async with sessions() as session:
                left = await rows_under_old_keys(session, "t2")
            # Two batches of five done, the third in flight when the worker stops.
            assert left["patient"] == PATIENTS + 1 - 10
        assert await _raw_key_ids(sessions) == {"t1", "t2"}

        # The platform's own worker (workers/factory.py) picks the job up.
        async with running_worker(dev_env.client, task_queue, rotated, sessions):
            result = await asyncio.wait_for(handle.result(), timeout=90)
        assert result.key_id == "t2"
        assert result.rows == PATIENTS + 1
        assert result.files == PHOTOS
        # 24 rows in batches of 5, then an empty one; the files in two batches and an empty
        # one; three batches per run.
        assert result.batches >= 9
        description = await handle.describe()
        assert description.run_id != handle.first_execution_run_id  # continued as new

        assert await _raw_key_ids(sessions) == {"t2"}
        assert _file_key_ids(files, photos) == {"t2"}
        async with sessions() as session:
            assert set((await rows_under_old_keys(session, "t2")).values()) == {0}
        # Without t1 at all, every value still reads back unchanged.
        configure_from_settings(_rotated_settings(database_url, task_queue, {"t2": NEW_KEY}))
        async with sessions() as session:
            patients = (await session.exec(select(Patient))).all()
        assert {p.his_patient_id: (p.name, p.phone) for p in patients} == expected
        assert {name: files.read(name) for name in photos} == photos
    finally:
        configure_from_settings(make_settings())


async def test_a_value_no_key_opens_stops_the_rotation(
    database_url: str, sessions: SessionFactory, dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with transaction(sessions) as session:
        session.add(Patient(his_patient_id="H1", name="张建国", phone="13800138001"))
    # t1 was removed before the rotation ran: the row cannot be read, and retrying cannot help.
    rotated = _rotated_settings(database_url, task_queue, {"t2": NEW_KEY})
    try:
        async with running_worker(dev_env.client, task_queue, rotated, sessions):
            handle = await dev_env.client.start_workflow(
                KEY_ROTATION_WORKFLOW,
                KeyRotationInput(batch_size=5),
                id=f"key-rotation-{uuid.uuid4()}",
                task_queue=task_queue,
                result_type=KeyRotationResult,
            )
            with pytest.raises(WorkflowFailureError) as failed:
                await asyncio.wait_for(handle.result(), timeout=60)
        cause = failed.value.cause.__cause__ if failed.value.cause else None
        assert isinstance(cause, ApplicationError)
        assert cause.type == UNREADABLE_VALUE
        assert "unknown key id 't1'" in str(cause)
    finally:
        configure_from_settings(make_settings())
