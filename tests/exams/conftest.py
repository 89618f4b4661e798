"""The platform and the exam vendor's simulator, each on a loopback port, talking HTTP to each
other: the API calls the vendor (US-K1, US-K2), the vendor pushes to the API (US-H1..H5)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from core.db import SessionFactory, transaction
from core.models import (
    CareTask,
    FormResponse,
    PathwayRun,
    Patient,
    StaffRole,
    TaskStatus,
)
from harness.postgres import free_port
from harness.servers import serve
from harness.settings import TEST_EXAM_API_KEY, TEST_EXAM_SECRET, make_settings
from harness.staff import add_staff
from simulators.exam.app import ExamVendorState, create_app
from tests.api.conftest import Api, HisSim, _api, his_sim

__all__ = ["his_sim"]


def window_refusals(today: date) -> set[str]:
    """The refusal of a date outside the next two weeks: from today, or from tomorrow should
    midnight pass during the test."""
    return {
        f"请输入{first:%Y-%m-%d}至{first + timedelta(days=14):%Y-%m-%d}的任意日期。"
        for first in (today, today + timedelta(days=1))
    }


@dataclass
class ExamStack:
    api: Api
    vendor: ExamVendorState
    sim: httpx.AsyncClient
    tokens: dict[str, str]
    # Where the API is served on loopback (for a browser).
    base_url: str

    def auth(self, role: str = "nurse") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def patient(
        self,
        *,
        name: str = "张建国",
        sex: str = "M",
        birth_date: date = date(1956, 3, 12),
        id_number: str | None = "110101195603120011",
        phone: str = "13800138001",
        opt_outs: list[str] | None = None,
    ) -> Patient:
        async with transaction(self.api.sessions) as session:
            patient = Patient(
                his_patient_id=f"P{uuid.uuid4().hex[:8]}",
                name=name,
                phone=phone,
                sex=sex,
                birth_date=birth_date,
                id_number=id_number,
                message_opt_outs=opt_outs or [],
            )
            session.add(patient)
        return patient

    async def bind(self, patient: Patient) -> httpx.Response:
        return await self.api.http.post(
            "/api/exams/accounts",
            json={"patient_id": patient.id, "consent_version": "PX-2026-1", "accepted": True},
            headers=self.auth(),
        )

    async def answered(self, patient: Patient, form_id: str, values: dict[str, Any]) -> None:
        """A questionnaire the patient submitted (what US-H1 requires, and what the
        personalised list is drawn from)."""
        now = datetime.now(UTC)
        workflow_id = f"pathway:test:{patient.his_patient_id}:{uuid.uuid4().hex[:6]}"
        async with transaction(self.api.sessions) as session:
            session.add(
                PathwayRun(
                    workflow_id=workflow_id,
                    plan_id="test",
                    plan_version=1,
                    patient_id=patient.id,
                    department_code="health_management",
                    anchor_at=now,
                )
            )
            await session.flush()
            task = CareTask(
                id=str(uuid.uuid4()),
                workflow_id=workflow_id,
                step_id="assess",
                patient_id=patient.id,
                plan_id="test",
                department_code="health_management",
                title="健康问卷",
                form_id=form_id,
                responsible_role="nurse",
                status=TaskStatus.COMPLETED,
                due_at=now,
            )
            session.add(task)
            await session.flush()
            session.add(
                FormResponse(
                    task_id=task.id,
                    workflow_id=workflow_id,
                    form_id=form_id,
                    answers={},
                    scores=values,
                    submitted_at=now,
                )
            )

    async def push(self, kind: str, **body: Any) -> dict[str, Any]:
        """The simulator pushes to the platform; what the platform answered (the last, with
        ``times``)."""
        response = await self.sim.post(f"/sim/push/{kind}", json=body)
        assert response.status_code == 200, response.text
        outcome: dict[str, Any] = response.json()
        return outcome

    @contextlib.asynccontextmanager
    async def failing_writes(self, table: str) -> AsyncIterator[None]:
        """Every insert or update of ``table`` fails in PostgreSQL while inside."""
        trigger = f"fail_{table}"
        async with transaction(self.api.sessions) as session:
            await session.exec(  # type: ignore[call-overload]
                text(
                    "CREATE OR REPLACE FUNCTION carepath_test_fail() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'injected write failure'; END $$ LANGUAGE plpgsql"
                )
            )
            await session.exec(  # type: ignore[call-overload]
                text(
                    f"CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION carepath_test_fail()"
                )
            )
        try:
            yield
        finally:
            async with transaction(self.api.sessions) as session:
                await session.exec(text(f"DROP TRIGGER {trigger} ON {table}"))  # type: ignore[call-overload]


async def _stack(
    client: Client,
    database_url: str,
    sessions: SessionFactory,
    task_queue: str,
    tmp_path: Path,
    his: HisSim,
) -> AsyncIterator[ExamStack]:
    api_port = free_port()
    vendor = ExamVendorState.seeded()
    sim_app = create_app(
        platform_url=f"http://127.0.0.1:{api_port}",
        api_key=TEST_EXAM_API_KEY,
        secret=TEST_EXAM_SECRET,
        state=vendor,
    )
    async with serve(sim_app) as sim_url:
        settings = make_settings(
            database_url=database_url,
            his_base_url=his.url,
            temporal_task_queue=task_queue,
            temporal_query_timeout_seconds=1.0,
            upload_dir=tmp_path / "uploads",
            exam_base_url=sim_url,
            exam_timeout_seconds=2.0,
        )
        tokens = {
            "nurse": await add_staff(sessions, StaffRole.NURSE, None, "体检中心护士"),
            "doctor": await add_staff(sessions, StaffRole.DOCTOR, None, "健康管理医生"),
            "care_manager": await add_staff(sessions, StaffRole.CARE_MANAGER, None, "个案管理师"),
        }
        async for api in _api(settings, sessions, client, his):
            async with (
                serve(api.app, port=api_port),
                httpx.AsyncClient(base_url=sim_url, timeout=30) as sim,
            ):
                yield ExamStack(api, vendor, sim, tokens, f"http://127.0.0.1:{api_port}")


@pytest.fixture
async def exam_stack(
    database_url: str,
    sessions: SessionFactory,
    dev_env: WorkflowEnvironment,
    his_sim: HisSim,
    task_queue: str,
    tmp_path: Path,
) -> AsyncIterator[ExamStack]:
    async for stack in _stack(
        dev_env.client, database_url, sessions, task_queue, tmp_path, his_sim
    ):
        yield stack


@pytest.fixture
async def skipping_exam_stack(
    database_url: str,
    sessions: SessionFactory,
    isolated_time_env: WorkflowEnvironment,
    his_sim: HisSim,
    task_queue: str,
    tmp_path: Path,
) -> AsyncIterator[ExamStack]:
    async for stack in _stack(
        isolated_time_env.client, database_url, sessions, task_queue, tmp_path, his_sim
    ):
        yield stack
