"""Prescription tests: the real API (ASGI for our calls, a loopback port for the enterprise
simulator's reports), real PostgreSQL, a real Temporal server, the HIS simulator recording our
callbacks, and a service-enterprise simulator taking our orders."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.container import Container
from api.main import create_app
from contracts.messages import delivery_workflow_id
from contracts.prescription import QUERY_STATE, PrescriptionState
from core.db import SessionFactory, transaction
from core.hospitals import (
    DispatchRule,
    HospitalConfig,
    PrescriptionConfig,
    QuietHours,
    ReviewPolicy,
)
from core.models import Hospital, Prescription, StaffRole
from core.settings import Settings
from core.webhook_auth import signed_headers
from harness.postgres import free_port
from harness.prescriptions import HOSPITAL
from harness.servers import serve
from harness.settings import (
    TEST_ENTERPRISE_SECRET,
    TEST_HIS_API_KEY,
    TEST_WEBHOOK_SECRET,
    make_settings,
)
from harness.staff import add_staff
from harness.waiting import eventually
from harness.workers import running_worker
from integrations.his import HisClient
from simulators.enterprise.app import EnterpriseState
from simulators.enterprise.app import create_app as create_enterprise
from simulators.his.app import HisState
from simulators.his.app import create_app as create_his
from workflows.prescription import PATIENT_NOTICES

ENTERPRISE = "ENT-A"


@dataclass
class RxStack:
    http: httpx.AsyncClient
    url: str
    settings: Settings
    sessions: SessionFactory
    env: WorkflowEnvironment
    his: HisState
    enterprise: EnterpriseState
    enterprise_url: str
    pharmacist: str
    started: list[str] = field(default_factory=list)

    def workers(self, **kwargs: Any) -> AbstractAsyncContextManager[list[Worker]]:
        return running_worker(
            self.env.client,
            self.settings.temporal_task_queue,
            self.settings,
            self.sessions,
            **kwargs,
        )

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.pharmacist}"}

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        raw = json.dumps(body, ensure_ascii=False).encode()
        return await self.http.post(
            path, content=raw, headers=signed_headers(TEST_WEBHOOK_SECRET, raw)
        )

    async def submit(self, body: dict[str, Any]) -> httpx.Response:
        response = await self.post("/webhooks/his/prescriptions", body)
        if response.status_code == 202:
            self.started.append(response.json()["workflow_id"])
        return response

    async def under_review(self, body: dict[str, Any]) -> dict[str, Any]:
        """Submits ``body``; its acceptance once the HIS has heard that review started."""
        accepted: dict[str, Any] = (await self.submit(body)).json()
        await self.wait_callbacks(body["prescription_no"], 1)
        return accepted

    async def terminate_started(self) -> None:
        """Leaves nothing running on the shared Temporal server: a run waiting on a dead
        worker's task queue would stop the time-skipping server from skipping for later tests."""
        for workflow_id in self.started:
            children = [delivery_workflow_id(f"{workflow_id}/notify/{k}") for k in PATIENT_NOTICES]
            for target in [workflow_id, *children]:
                with contextlib.suppress(RPCError):
                    await self.env.client.get_workflow_handle(target).terminate("test finished")

    async def change(self, number: str, kind: str, **fields: Any) -> httpx.Response:
        body = {"event_id": f"EVT-{uuid.uuid4().hex}", "hospital_code": HOSPITAL, **fields}
        return await self.post(f"/webhooks/his/prescriptions/{number}/{kind}", body)

    async def pay(self, number: str, **fields: Any) -> httpx.Response:
        fields = {
            "payment_id": f"PAY{uuid.uuid4().hex[:8]}",
            "amount_fen": 12850,
            "paid_at": datetime.now(UTC).isoformat(),
            **fields,
        }
        return await self.change(number, "payment", **fields)

    async def decide(self, prescription_id: str, **body: Any) -> httpx.Response:
        return await self.http.post(
            f"/api/prescriptions/{prescription_id}/decision", json=body, headers=self.auth()
        )

    async def report(self, prescription_id: str, status: str, **extra: Any) -> httpx.Response:
        body = {
            "event_id": f"ENT-{uuid.uuid4().hex}",
            "prescription_id": prescription_id,
            "status": status,
            "at": datetime.now(UTC).isoformat(),
            **extra,
        }
        raw = json.dumps(body).encode()
        return await self.http.post(
            f"/webhooks/enterprise/{ENTERPRISE}/status",
            content=raw,
            headers=signed_headers(TEST_ENTERPRISE_SECRET, raw),
        )

    async def state(self, workflow_id: str) -> PrescriptionState:
        handle = self.env.client.get_workflow_handle(workflow_id)
        result: PrescriptionState = await handle.query(QUERY_STATE, result_type=PrescriptionState)
        return result

    async def wait_status(
        self, workflow_id: str, status: str, within: float = 20
    ) -> PrescriptionState:
        async def probe() -> PrescriptionState | None:
            state = await self.state(workflow_id)
            return state if state.status == status else None

        return await eventually(probe, within=within, what=f"prescription to be {status}")

    async def row(self, prescription_id: str) -> Prescription:
        async with self.sessions() as session:
            row = await session.get(Prescription, prescription_id)
            assert row is not None
            return row

    def callbacks(self, number: str) -> list[dict[str, Any]]:
        return sorted(
            (c for c in self.his.prescription_callbacks.values() if c["prescription_no"] == number),
            key=lambda c: c["seq"],
        )

    async def wait_callbacks(
        self, number: str, count: int, within: float = 20
    ) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]] | None:
            found = self.callbacks(number)
            return found if len(found) >= count else None

        return await eventually(probe, within=within, what=f"{count} HIS callbacks")


RxStackFactory = Callable[..., AbstractAsyncContextManager[RxStack]]


@pytest.fixture
def rx_stack(database_url: str, sessions: SessionFactory, task_queue: str) -> RxStackFactory:
    @asynccontextmanager
    async def build(
        env: WorkflowEnvironment,
        *,
        deadline_seconds: int = 120,
        on_timeout_with_findings: str = "return_to_doctor",
    ) -> AsyncIterator[RxStack]:
        config = HospitalConfig(
            quiet_hours=QuietHours(enabled=False),
            prescriptions=PrescriptionConfig(
                review=ReviewPolicy(
                    deadline_seconds=deadline_seconds,
                    on_timeout_with_findings=on_timeout_with_findings,
                ),
                dispatch_rules=[DispatchRule(enterprise=ENTERPRISE)],
            ),
        )
        async with transaction(sessions) as session:
            session.add(
                Hospital(
                    code=HOSPITAL,
                    name="静安区中心医院",
                    phone="021-12345678",
                    config=config.model_dump(mode="json"),
                )
            )
        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        his_state = HisState.seeded()
        enterprise = EnterpriseState(code=ENTERPRISE)
        his_app = create_his(
            webhook_target=api_url,
            webhook_secret=TEST_WEBHOOK_SECRET,
            api_key=TEST_HIS_API_KEY,
            state=his_state,
        )
        enterprise_app = create_enterprise(
            enterprise, platform_url=api_url, secret=TEST_ENTERPRISE_SECRET
        )
        async with serve(his_app) as his_url, serve(enterprise_app) as enterprise_url:
            settings = make_settings(
                database_url=database_url,
                temporal_task_queue=task_queue,
                temporal_query_timeout_seconds=2.0,
                his_base_url=his_url,
                enterprise_base_urls={ENTERPRISE: enterprise_url},
                default_hospital_code=HOSPITAL,
            )
            his = HisClient.create(his_url, TEST_HIS_API_KEY, timeout_seconds=2.0)
            app = create_app(container=Container.build(settings, sessions, env.client, his))
            pharmacist = await add_staff(sessions, StaffRole.PHARMACIST, None, name="李药师")
            async with (
                serve(app, port=api_port),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://carepath.test"
                ) as http,
            ):
                stack = RxStack(
                    http,
                    api_url,
                    settings,
                    sessions,
                    env,
                    his_state,
                    enterprise,
                    enterprise_url,
                    pharmacist,
                )
                try:
                    yield stack
                finally:
                    await stack.terminate_started()
            await his.close()

    return build
