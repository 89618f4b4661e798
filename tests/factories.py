"""Rows and helpers shared by tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from temporalio.client import Client
from temporalio.worker import Worker

from core.db import SessionFactory, transaction
from core.models import Encounter, Patient, StaffRole
from core.settings import Settings
from messaging.channel import MessageChannel
from services.staff import create_staff
from workers.factory import WorkerDeps, build_workers, running_workers

T = TypeVar("T")
BEIJING = ZoneInfo("Asia/Shanghai")


def daytime(moment: datetime, hour: int = 10) -> datetime:
    """The latest ``hour`` o'clock Beijing time at or before ``moment``: an anchor whose day-N
    steps fall outside quiet hours, whatever time of day the test runs."""
    local = moment.astimezone(BEIJING)
    anchor = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if anchor > local:
        anchor -= timedelta(days=1)
    return anchor.astimezone(UTC)


async def add_patient(
    sessions: SessionFactory,
    *,
    name: str = "张建国",
    phone: str = "13800138001",
    department_code: str = "cardiology",
    discharged_at: datetime | None = None,
) -> tuple[Patient, Encounter]:
    suffix = uuid.uuid4().hex[:8]
    async with transaction(sessions) as session:
        patient = Patient(his_patient_id=f"P{suffix}", name=name, phone=phone, sex="M")
        session.add(patient)
        await session.flush()
        encounter = Encounter(
            his_encounter_id=f"E{suffix}",
            patient_id=patient.id,
            kind="inpatient",
            department_code=department_code,
            department_name="心内科",
            discharged_at=discharged_at or datetime.now(UTC),
        )
        session.add(encounter)
    return patient, encounter


async def add_staff(
    sessions: SessionFactory,
    role: StaffRole = StaffRole.NURSE,
    department_code: str | None = "cardiology",
    name: str = "王护士",
) -> str:
    async with transaction(sessions) as session:
        _, token = await create_staff(
            session, name=name, role=role, department_code=department_code
        )
    return token


@asynccontextmanager
async def running_worker(
    client: Client,
    task_queue: str,
    settings: Settings,
    sessions: SessionFactory,
    *,
    max_cached_workflows: int = 1000,
    channels: dict[str, MessageChannel] | None = None,
) -> AsyncIterator[list[Worker]]:
    """The platform's workers (main + one per channel) for one test's task queue."""
    deps = WorkerDeps.from_settings(settings, sessions, channels)
    workers = build_workers(client, task_queue, deps, max_cached_workflows=max_cached_workflows)
    try:
        async with running_workers(workers):
            yield workers
    finally:
        await deps.close()


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float = 15.0,
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """Polls ``probe`` until it returns something truthy; fails the test after ``within`` s.

    Waits on an observable condition (a row, a workflow state), never a fixed delay.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)
