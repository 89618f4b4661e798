"""API tests: the real app over ASGITransport, real PostgreSQL, a real Temporal server and the
HIS simulator on a loopback port."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func
from sqlmodel import SQLModel, select
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from api.container import Container
from api.main import create_app
from core.db import SessionFactory
from core.file_store import EncryptedFiles
from core.links import LinkSigner
from core.models import CareTask, PathwayRun, Patient, TaskStatus, Upload
from core.settings import Settings
from core.webhook_auth import signed_headers
from harness.servers import serve
from harness.settings import TEST_HIS_API_KEY, TEST_WEBHOOK_SECRET, make_settings
from integrations.his import HisClient
from pathways.library import load_forms, snapshot
from simulators.his.app import HisState
from simulators.his.app import create_app as create_his_app


@dataclass
class HisSim:
    url: str
    state: HisState


@pytest.fixture
async def his_sim() -> AsyncIterator[HisSim]:
    state = HisState.seeded()
    app = create_his_app(
        # API tests post events themselves; the end-to-end test points this at uvicorn.
        webhook_target="http://127.0.0.1:9",
        webhook_secret=TEST_WEBHOOK_SECRET,
        api_key=TEST_HIS_API_KEY,
        state=state,
    )
    async with serve(app) as url:
        yield HisSim(url, state)


# Written at start-up from the shipped library; designer tests count their versions directly.
LIBRARY_TABLES = (
    "pathway",
    "pathway_version",
    "form_document",
    "form_version",
    "article_document",
    "article_version",
)


@dataclass
class Api:
    http: httpx.AsyncClient
    settings: Settings
    sessions: SessionFactory
    temporal: Client
    his: HisSim
    # The ASGI app itself, for tools that serve it on a port (the fuzz test).
    app: FastAPI

    async def post_event(
        self,
        event: dict[str, Any] | bytes,
        *,
        secret: str = TEST_WEBHOOK_SECRET,
        timestamp: int | None = None,
        path: str = "/webhooks/his/discharge",
    ) -> httpx.Response:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        return await self.http.post(
            path, content=body, headers=signed_headers(secret, body, now=timestamp)
        )

    async def counts(self) -> dict[str, int]:
        """Rows per table: the 'nothing half-written' check. The published library (pathways,
        forms, articles) is configuration, present before any event, and left out."""
        result: dict[str, int] = {}
        async with self.sessions() as session:
            for name, table in SQLModel.metadata.tables.items():
                if name in LIBRARY_TABLES:
                    continue
                count = await session.exec(select(func.count()).select_from(table))
                result[name] = int(count.one())
        return result


async def _api(
    settings: Settings, sessions: SessionFactory, temporal: Client, his_sim: HisSim
) -> AsyncIterator[Api]:
    his = HisClient.create(his_sim.url, TEST_HIS_API_KEY, timeout_seconds=2.0)
    container = Container.build(settings, sessions, temporal, his)
    await container.sync_library()
    app = create_app(container=container)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://carepath.test") as http:
        yield Api(http, settings, sessions, temporal, his_sim, app)
    await his.close()


@pytest.fixture
async def api(
    database_url: str,
    sessions: SessionFactory,
    dev_env: WorkflowEnvironment,
    his_sim: HisSim,
    task_queue: str,
    tmp_path: Path,
) -> AsyncIterator[Api]:
    """The API on the dev server: workflows really start (no worker unless a test runs one)."""
    settings = make_settings(
        database_url=database_url,
        his_base_url=his_sim.url,
        temporal_task_queue=task_queue,
        temporal_query_timeout_seconds=1.0,
        upload_dir=tmp_path / "uploads",
    )
    async for api in _api(settings, sessions, dev_env.client, his_sim):
        yield api


@pytest.fixture
async def skipping_api(
    database_url: str,
    sessions: SessionFactory,
    isolated_time_env: WorkflowEnvironment,
    his_sim: HisSim,
    task_queue: str,
    tmp_path: Path,
) -> AsyncIterator[Api]:
    """The API wired to the time-skipping server, for flows that span days."""
    settings = make_settings(
        database_url=database_url,
        his_base_url=his_sim.url,
        temporal_task_queue=task_queue,
        temporal_query_timeout_seconds=1.0,
        upload_dir=tmp_path / "uploads",
    )
    async for api in _api(settings, sessions, isolated_time_env.client, his_sim):
        yield api


def discharge_event(
    *,
    event_id: str | None = None,
    patient_id: str = "P0001",
    encounter_id: str | None = None,
    department_code: str = "cardiology",
    discharged_at: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A discharge of a seeded HIS patient. Event and encounter ids are fresh unless given, so
    runs left by earlier tests on the shared Temporal server are never mistaken for this one."""
    discharged = discharged_at or datetime.now(UTC) - timedelta(hours=1)
    encounter_id = encounter_id or f"ENC-{uuid.uuid4().hex[:12]}"
    return {
        "event_id": event_id or f"EVT-{uuid.uuid4().hex}",
        "event_type": "discharge",
        "occurred_at": discharged.isoformat(),
        "patient_id": patient_id,
        "encounter": {
            "encounter_id": encounter_id,
            "kind": "inpatient",
            "department_code": department_code,
            "department_name": "心内科",
            "ward": "心内科一病区",
            "bed": "12",
            "responsible_nurse": "N001",
            "admitted_at": (discharged - timedelta(days=6)).isoformat(),
            "discharged_at": discharged.isoformat(),
            "diagnoses": [{"code": "I20.000", "name": "不稳定型心绞痛"}],
        },
        **extra,
    }


# ---- a form task with photo and signature questions (upload tests, the browser test) ---------

DEMO_FORM = load_forms()["all-question-types"]


@dataclass
class FormTask:
    api: Api
    task_id: str
    token: str

    @property
    def path(self) -> str:
        return f"/p/{self.token}"

    def upload_path(self, question: str) -> str:
        return f"/p/{self.token}/uploads/{question}"

    async def upload(
        self, question: str, data: bytes, content_type: str, name: str = "image"
    ) -> httpx.Response:
        return await self.api.http.post(
            self.upload_path(question), files={"file": (name, data, content_type)}
        )

    @property
    def files(self) -> EncryptedFiles:
        return EncryptedFiles(self.api.settings.uploads_path)

    async def uploads(self) -> list[Upload]:
        async with self.api.sessions() as session:
            return list((await session.exec(select(Upload))).all())


def link_signer(api: Api) -> LinkSigner:
    return LinkSigner(api.settings.link_secret.get_secret_value())


async def add_task(api: Api, workflow_id: str, patient_id: str, step_id: str) -> str:
    now = datetime.now(UTC)
    task_id = str(uuid.uuid4())
    async with api.sessions() as session:
        session.add(
            CareTask(
                id=task_id,
                workflow_id=workflow_id,
                step_id=step_id,
                patient_id=patient_id,
                plan_id="inpatient-discharge",
                department_code="cardiology",
                title="出院随访",
                form_id=DEMO_FORM.id,
                responsible_role="nurse",
                status=TaskStatus.SENT,
                due_at=now,
                sent_at=now,
                valid_until=now + timedelta(days=2),
            )
        )
        await session.commit()
    return task_id


@pytest.fixture
async def form_task(api: Api) -> AsyncIterator[FormTask]:
    response = await api.post_event(discharge_event())
    assert response.status_code == 202, response.text
    runs = {r["plan_id"]: r["workflow_id"] for r in response.json()["runs"]}
    workflow_id = runs["inpatient-discharge"]
    # No worker runs, so the run's projection is written here: pinned to the discharge plan,
    # with the demo form beside its own.
    library = api.app.state.container.design.library
    pinned = snapshot(
        library.definitions["inpatient-discharge"], 1, library.forms, library.articles
    )
    async with api.sessions() as session:
        patient = (
            await session.exec(select(Patient).where(Patient.his_patient_id == "P0001"))
        ).one()
        patient_id = patient.id
        session.add(
            PathwayRun(
                workflow_id=workflow_id,
                plan_id="inpatient-discharge",
                plan_version=1,
                patient_id=patient_id,
                department_code="cardiology",
                anchor_at=datetime.now(UTC),
                plan_snapshot={
                    **pinned.model_dump(mode="json"),
                    "forms": {
                        **pinned.model_dump(mode="json")["forms"],
                        DEMO_FORM.id: DEMO_FORM.model_dump(mode="json"),
                    },
                },
            )
        )
        await session.commit()
    task_id = await add_task(api, workflow_id, patient_id, "upload-test")
    token = link_signer(api).issue(task_id, datetime.now(UTC) + timedelta(days=1))
    yield FormTask(api, task_id, token)
    # Leave nothing running on the shared dev server for later tests.
    for started in runs.values():
        with contextlib.suppress(RPCError):
            await api.temporal.get_workflow_handle(started).terminate("test finished")
