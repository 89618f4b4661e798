"""Pathway tests: the real API, real PostgreSQL with the library published, a real Temporal
server (time-skipping for whole plans), the HIS simulator for patient master data, and the
platform's workers with the outbox channel."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, select
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.container import Container
from api.main import create_app
from contracts.pathway import QUERY_PROGRESS
from contracts.runs import RunProgress
from core.db import SessionFactory, transaction
from core.hospitals import HospitalConfig, QuietHours
from core.models import (
    Alert,
    CareTask,
    Hospital,
    OutboundMessage,
    StaffRole,
)
from core.settings import Settings
from core.webhook_auth import signed_headers
from harness.servers import serve
from harness.settings import TEST_HIS_API_KEY, TEST_WEBHOOK_SECRET, make_settings
from harness.staff import add_staff
from harness.waiting import eventually
from harness.workers import running_worker
from integrations.his import HisClient
from simulators.his.app import HisState
from simulators.his.app import create_app as create_his

DAY = timedelta(days=1)


@dataclass
class PathwayStack:
    http: httpx.AsyncClient
    settings: Settings
    sessions: SessionFactory
    env: WorkflowEnvironment
    his: HisState
    tokens: dict[str, str]
    # The app itself, for tests that serve it on loopback to a browser.
    app: FastAPI
    started: list[str] = field(default_factory=list)

    def workers(self, **kwargs: Any) -> AbstractAsyncContextManager[list[Worker]]:
        return running_worker(
            self.env.client,
            self.settings.temporal_task_queue,
            self.settings,
            self.sessions,
            **kwargs,
        )

    def auth(self, role: str = "nurse") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def event(self, path: str, body: dict[str, Any]) -> httpx.Response:
        raw = json.dumps(body, ensure_ascii=False).encode()
        response = await self.http.post(
            path, content=raw, headers=signed_headers(TEST_WEBHOOK_SECRET, raw)
        )
        if response.status_code == 202:
            self.started += [r["workflow_id"] for r in response.json()["runs"]]
        return response

    async def discharge(
        self,
        at: datetime,
        *,
        patient: str = "P0001",
        department: str = "cardiology",
        diagnoses: list[dict[str, str]] | None = None,
    ) -> httpx.Response:
        return await self.event(
            "/webhooks/his/discharge",
            {
                "event_id": f"EVT-{uuid.uuid4().hex}",
                "event_type": "discharge",
                "occurred_at": at.isoformat(),
                "patient_id": patient,
                "encounter": {
                    "encounter_id": f"ENC-{uuid.uuid4().hex[:10]}",
                    "kind": "inpatient",
                    "department_code": department,
                    "department_name": "心内科",
                    "ward": "心内科一病区",
                    "discharged_at": at.isoformat(),
                    "admitted_at": (at - 5 * DAY).isoformat(),
                    "diagnoses": diagnoses or [{"code": "I20.000", "name": "不稳定型心绞痛"}],
                },
            },
        )

    async def visit(
        self,
        at: datetime,
        *,
        patient: str = "P0001",
        department: str = "endocrinology",
        diagnoses: list[dict[str, str]] | None = None,
        event_id: str | None = None,
    ) -> httpx.Response:
        return await self.event(
            "/webhooks/his/events",
            {
                "event_id": event_id or f"EVT-{uuid.uuid4().hex}",
                "event_type": "visit",
                "occurred_at": at.isoformat(),
                "patient_id": patient,
                "encounter": {
                    "encounter_id": f"OP-{uuid.uuid4().hex[:10]}",
                    "kind": "outpatient",
                    "department_code": department,
                    "department_name": "内分泌科",
                    "diagnoses": diagnoses or [{"code": "E11.900", "name": "2型糖尿病"}],
                },
            },
        )

    async def registration(self, at: datetime, *, patient: str, department: str) -> httpx.Response:
        return await self.event(
            "/webhooks/his/events",
            {
                "event_id": f"REG-{uuid.uuid4().hex}",
                "event_type": "registration",
                "patient_id": patient,
                "department_code": department,
                "registered_at": at.isoformat(),
            },
        )

    async def progress(self, workflow_id: str) -> RunProgress:
        result: RunProgress = await self.env.client.get_workflow_handle(workflow_id).query(
            QUERY_PROGRESS, result_type=RunProgress
        )
        return result

    async def wait_step(
        self,
        workflow_id: str,
        step_id: str,
        statuses: tuple[str, ...],
        index: int = 0,
        within: float = 20,
    ) -> RunProgress:
        async def probe() -> RunProgress | None:
            progress = await self.progress(workflow_id)
            step = next(
                (s for s in progress.steps if s.step_id == step_id and s.occurrence == index), None
            )
            return progress if step and step.status in statuses else None

        return await eventually(probe, within=within, what=f"{step_id}#{index} in {statuses}")

    async def wait_projected(self, workflow_id: str) -> dict[str, CareTask]:
        """Until the run's tasks are in the database (what staff see and act on)."""

        async def probe() -> dict[str, CareTask] | None:
            return await self.tasks(workflow_id) or None

        return await eventually(probe, what=f"{workflow_id} in the database")

    async def wait_task(self, workflow_id: str, key: str, status: str) -> CareTask:
        """Until the task ``<step>#<n>`` is stored with ``status`` (what staff lists read)."""

        async def probe() -> CareTask | None:
            task = (await self.tasks(workflow_id)).get(key)
            return task if task is not None and task.status == status else None

        return await eventually(probe, what=f"{key} stored as {status}")

    async def tasks(self, workflow_id: str) -> dict[str, CareTask]:
        async with self.sessions() as session:
            rows = await session.exec(select(CareTask).where(CareTask.workflow_id == workflow_id))
            return {f"{t.step_id}#{t.occurrence}": t for t in rows.all()}

    async def messages(self, workflow_id: str) -> list[OutboundMessage]:
        async with self.sessions() as session:
            rows = await session.exec(
                select(OutboundMessage)
                .where(OutboundMessage.workflow_id == workflow_id)
                .order_by(col(OutboundMessage.scheduled_for))
            )
            return list(rows.all())

    async def alerts(self, workflow_id: str) -> list[Alert]:
        async with self.sessions() as session:
            rows = await session.exec(select(Alert).where(Alert.workflow_id == workflow_id))
            return list(rows.all())

    async def link(self, workflow_id: str, step_id: str, index: int = 0) -> str:
        task = (await self.tasks(workflow_id))[f"{step_id}#{index}"]
        for message in await self.messages(workflow_id):
            if message.task_id == task.id and "/p/" in message.body:
                return "/p/" + message.body.split("/p/")[1].split()[0].rstrip("，。")
        raise AssertionError(f"no link sent for {step_id}#{index}")

    async def answer(
        self, workflow_id: str, step_id: str, answers: dict[str, Any], index: int = 0
    ) -> httpx.Response:
        return await self.http.post(await self.link(workflow_id, step_id, index), data=answers)

    async def terminate_started(self) -> None:
        for workflow_id in self.started:
            with contextlib.suppress(RPCError):
                await self.env.client.get_workflow_handle(workflow_id).terminate("test finished")


PathwayStackFactory = Callable[..., AbstractAsyncContextManager[PathwayStack]]


@pytest.fixture
def pathway_stack(
    database_url: str, sessions: SessionFactory, task_queue: str
) -> PathwayStackFactory:
    @asynccontextmanager
    async def build(
        env: WorkflowEnvironment, *, quiet_hours: bool = False
    ) -> AsyncIterator[PathwayStack]:
        async with transaction(sessions) as session:
            session.add(
                Hospital(
                    code="default",
                    name="示例医院",
                    phone="12320",
                    config=HospitalConfig(quiet_hours=QuietHours(enabled=quiet_hours)).model_dump(
                        mode="json"
                    ),
                )
            )
        his_state = HisState.seeded()
        his_app = create_his(
            webhook_target="http://127.0.0.1:9",
            webhook_secret=TEST_WEBHOOK_SECRET,
            api_key=TEST_HIS_API_KEY,
            state=his_state,
        )
        async with serve(his_app) as his_url:
            settings = make_settings(
                database_url=database_url,
                temporal_task_queue=task_queue,
                temporal_query_timeout_seconds=2.0,
                his_base_url=his_url,
            )
            his = HisClient.create(his_url, TEST_HIS_API_KEY, timeout_seconds=2.0)
            container = Container.build(settings, sessions, env.client, his)
            await container.sync_library()
            tokens = {
                "nurse": await add_staff(sessions, StaffRole.NURSE, "cardiology"),
                "ortho_nurse": await add_staff(
                    sessions, StaffRole.NURSE, "orthopedics", "骨科护士"
                ),
                "doctor": await add_staff(sessions, StaffRole.DOCTOR, "endocrinology", "钱医生"),
                "care_manager": await add_staff(sessions, StaffRole.CARE_MANAGER, None, "周个案"),
                "admin": await add_staff(sessions, StaffRole.ADMIN, None, "管理员"),
            }
            app = create_app(container=container)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://patient.test"
            ) as http:
                stack = PathwayStack(http, settings, sessions, env, his_state, tokens, app)
                try:
                    yield stack
                finally:
                    await stack.terminate_started()
            await his.close()

    return build
