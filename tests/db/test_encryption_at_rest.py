"""Encryption at rest (SEC-4): after real flows, a dump of the whole database holds none of the
seeded patients' names, phone numbers, ID-card numbers or addresses, on PostgreSQL (pg_dump)
and SQLite (the equivalent of ``sqlite3 .dump``); lookups by phone still find them; and a
database written in plain text at revision 0008 is converted by the 0009 upgrade."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from core.crypto import CryptoError, configure_from_settings, current_keyring
from core.db import SessionFactory, create_engine, session_factory, transaction
from core.migrate import downgrade, upgrade
from core.models import (
    CareTask,
    DataScope,
    FormResponse,
    OutboundMessage,
    PathwayRun,
    Patient,
    Prescription,
    StaffRole,
)
from harness.databases import clone_database, drop_database
from harness.postgres import PostgresServer
from harness.servers import serve
from harness.settings import TEST_HIS_API_KEY, TEST_WEBHOOK_SECRET, make_settings
from harness.staff import add_staff
from services.patients import patient_by_id_number, patients_by_phone
from services.staff import StaffPrincipal
from services.staff_lists import MessageFilter, list_messages
from simulators.his.app import SEED_FILE, HisState
from simulators.his.app import create_app as create_his_app
from tests.api.conftest import Api, HisSim, _api, discharge_event

SEEDED = yaml.safe_load(SEED_FILE.read_text())["patients"]
# Every name, phone number (as the HIS spells it and in its digits), ID-card number and
# address of the HIS simulator's seeded patients.
SECRETS = sorted(
    {p["name"] for p in SEEDED}
    | {p["phone"] for p in SEEDED}
    | {"".join(c for c in p["phone"] if c.isdigit())[-11:] for p in SEEDED}
    | {p["id_number"] for p in SEEDED}
    | {p["address"] for p in SEEDED}
)


@pytest.fixture
async def his_sim() -> AsyncIterator[HisSim]:
    state = HisState.seeded()
    app = create_his_app(
        webhook_target="http://127.0.0.1:9",
        webhook_secret=TEST_WEBHOOK_SECRET,
        api_key=TEST_HIS_API_KEY,
        state=state,
    )
    async with serve(app) as url:
        yield HisSim(url, state)


async def _sqlite_sessions(path: Path) -> tuple[str, SessionFactory, AsyncEngine]:
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    return url, session_factory(engine), engine


async def _run_flows(api: Api) -> None:
    """Discharges of seeded patients through the webhook, messages pushed through the API (one
    naming the patient, one to a bare number with another patient's name in its text), and the
    rows other flows write: a form response with free text and a prescription's delivery."""
    for his_id in ("P0001", "P0002", "P0005"):
        response = await api.post_event(discharge_event(patient_id=his_id))
        assert response.status_code == 202, response.text
    token = await add_staff(api.sessions, StaffRole.NURSE)
    auth = {"Authorization": f"Bearer {token}"}
    risk = await api.http.post(
        "/api/messages",
        headers=auth,
        json={
            "idempotency_key": f"k-{uuid.uuid4().hex}",
            "to": {"patient_id": "P0001"},
            "template": "risk_notice",
            "variables": {"step_title": "出院第3天随访", "advice": "请尽快复诊"},
        },
    )
    assert risk.status_code == 202, risk.text
    notice = await api.http.post(
        "/api/messages",
        headers=auth,
        json={
            "idempotency_key": f"k-{uuid.uuid4().hex}",
            "to": {"phone": "+86 139 0013 9002"},
            "template": "notice_generic",
            "variables": {"title": "复诊提醒", "content": "李秀英您好，请于周五上午复诊。"},
        },
    )
    assert notice.status_code == 202, notice.text
    async with transaction(api.sessions) as session:
        patient = (await patients_by_phone(session, "13800138001"))[0]
        now = datetime.now(UTC)
        run = PathwayRun(
            workflow_id=f"wf-{uuid.uuid4().hex}",
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
            step_id="day3",
            patient_id=patient.id,
            plan_id=run.plan_id,
            department_code="cardiology",
            title="出院第3天随访",
            responsible_role="nurse",
            due_at=now,
        )
        session.add(task)
        await session.flush()
        session.add(
            FormResponse(
                task_id=task.id,
                workflow_id=run.workflow_id,
                form_id="discharge-followup",
                answers={"note": ["我是张建国，电话13800138001，住西昌市长安街道胜利路18号"]},
                submitted_at=now,
            )
        )
        session.add(
            Prescription(
                hospital_code="default",
                prescription_no=f"RX-{uuid.uuid4().hex[:8]}",
                workflow_id=f"rx-{uuid.uuid4().hex}",
                patient_id=patient.id,
                department_code="cardiology",
                department_name="心内科",
                doctor_id="D001",
                doctor_name="赵医生",
                doses=7,
                delivery={
                    "mode": "delivery",
                    "address": {
                        "receiver": "张建国",
                        "phone": "13800138001",
                        "district": "西昌市",
                        "detail": "长安街道胜利路18号",
                    },
                },
                submitted_at=now,
            )
        )


async def _check_reads_and_lookups(api: Api) -> None:
    """The services still see plain values, and exact lookups go through the blind indexes."""
    async with api.sessions() as session:
        found = await patients_by_phone(session, "+86 138-0013-8001")
        assert [(p.his_patient_id, p.name) for p in found] == [("P0001", "张建国")]
        assert found[0].id_number == "513401195803120115"
        assert found[0].address == "西昌市长安街道胜利路18号"
        # P0005's number came from the HIS as '+86 135 0013 5005'.
        assert [p.his_patient_id for p in await patients_by_phone(session, "13500135005")] == [
            "P0005"
        ]
        by_id = await patient_by_id_number(session, "51340119880516051x")
        assert by_id is not None
        assert by_id.name == "陈晓明"
        assert await patients_by_phone(session, "13300000000") == []
        admin = StaffPrincipal(
            id="s",
            name="管理员",
            role=StaffRole.ADMIN,
            department_code=None,
            data_scope=DataScope.ORGANISATION,
        )
        messages, total = await list_messages(
            session, admin, MessageFilter(receiver="139 0013 9002"), limit=10, offset=0
        )
        assert total == 1
        assert "李秀英您好" in messages[0].body
        assert messages[0].recipient_phone == "+8613900139002"
        response = (await session.exec(select(FormResponse))).one()
        assert response.answers["note"][0].startswith("我是张建国")


def _leaks(dump: str) -> list[str]:
    return [s for s in SECRETS if s in dump]


async def test_a_postgresql_dump_holds_no_patient_name_or_number(
    postgres: PostgresServer,
    database_url: str,
    sessions: SessionFactory,
    dev_env: WorkflowEnvironment,
    his_sim: HisSim,
    task_queue: str,
) -> None:
    settings = make_settings(
        database_url=database_url, his_base_url=his_sim.url, temporal_task_queue=task_queue
    )
    async for api in _api(settings, sessions, dev_env.client, his_sim):
        await _run_flows(api)
        await _check_reads_and_lookups(api)
    database = database_url.rsplit("/", 1)[1]
    dumped = await asyncio.to_thread(
        subprocess.run,
        [str(postgres.bin_dir / "pg_dump"), "--no-owner", postgres.dsn(database)],
        capture_output=True,
        text=True,
        check=True,
    )
    dump = dumped.stdout
    # The flows did write what the check looks for (in encrypted form).
    assert "COPY public.patient " in dump
    assert "v1:t1:" in dump
    assert _leaks(dump) == []


async def test_a_sqlite_dump_holds_no_patient_name_or_number(
    tmp_path: Path, dev_env: WorkflowEnvironment, his_sim: HisSim, task_queue: str
) -> None:
    path = tmp_path / "carepath.db"
    url, sessions, engine = await _sqlite_sessions(path)
    settings = make_settings(
        database_url=url, his_base_url=his_sim.url, temporal_task_queue=task_queue
    )
    try:
        async for api in _api(settings, sessions, dev_env.client, his_sim):
            await _run_flows(api)
            await _check_reads_and_lookups(api)
    finally:
        await engine.dispose()
    connection = sqlite3.connect(path)
    try:
        dump = "\n".join(connection.iterdump())
    finally:
        connection.close()
    assert 'INSERT INTO "patient"' in dump
    assert "v1:t1:" in dump
    assert _leaks(dump) == []


async def test_a_value_moved_to_another_column_or_row_does_not_decrypt(
    sessions: SessionFactory,
) -> None:
    async with transaction(sessions) as session:
        session.add(Patient(id="p1", his_patient_id="H1", name="张建国", phone="13800138001"))
        session.add(Patient(id="p2", his_patient_id="H2", name="李秀英", phone="13900139002"))
    async with transaction(sessions) as session:
        # Another patient's phone envelope copied into this patient's name: the associated
        # data (the column) no longer matches, so it is refused rather than shown as a name.
        connection = await session.connection()
        await connection.execute(
            sa.text(
                "UPDATE patient SET name = (SELECT phone FROM patient WHERE id = 'p2') "
                "WHERE id = 'p1'"
            )
        )
    async with sessions() as session:
        with pytest.raises(CryptoError, match=r"patient\.name"):
            await session.get(Patient, "p1")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_upgrade_to_0009_encrypts_plain_rows_and_downgrade_decrypts_them(
    backend: str, tmp_path: Path, postgres: PostgresServer
) -> None:
    configure_from_settings(make_settings())
    name = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'plain.db'}"
    else:
        name = await clone_database(postgres, template="template0")
        url = postgres.url(name)
    engine = create_engine(url)
    try:
        await asyncio.to_thread(upgrade, url, "0008")
        async with engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO patient (id, his_patient_id, name, phone, excluded, "
                    "message_opt_outs, created_at, updated_at) VALUES ('p1', 'P0001', '张建国', "
                    "'13800138001', false, '[]', :now, :now)"
                ),
                {"now": datetime.now(UTC)},
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO outbound_message (id, idempotency_key, category, template, "
                    "hospital_code, sender, patient_id, recipient_phone, urgent, variables, body, "
                    "wechat_payload, status, scheduled_for, created_at, updated_at) VALUES "
                    "('m1', 'k1', 'notice', 'notice_generic', 'default', 'system', 'p1', "
                    "'+8613800138001', false, '{\"content\": \"张建国您好\"}', "
                    "'【示例医院】张建国您好', NULL, 'sent', :now, :now, :now)"
                ),
                {"now": datetime.now(UTC)},
            )
        await asyncio.to_thread(upgrade, url, "0009")
        async with engine.connect() as connection:
            raw = (
                await connection.execute(
                    sa.text("SELECT name, phone, phone_index FROM patient WHERE id = 'p1'")
                )
            ).one()
            message = (
                await connection.execute(
                    sa.text(
                        "SELECT body, variables, recipient_phone, recipient_phone_index "
                        "FROM outbound_message"
                    )
                )
            ).one()
        assert all(str(v).startswith("v1:t1:") for v in (*raw[:2], *message[:3]))
        keyring = current_keyring()
        assert keyring.decrypt(raw[0], "patient.name") == "张建国"
        assert raw[2] == keyring.blind_index("phone", "13800138001") == message[3]
        async with session_factory(engine)() as session:
            patient = await session.get(Patient, "p1")
            stored = await session.get(OutboundMessage, "m1")
            found = await patients_by_phone(session, "138 0013 8001")
        assert patient is not None
        assert (patient.name, patient.phone) == ("张建国", "13800138001")
        assert [p.id for p in found] == ["p1"]
        assert stored is not None
        assert (stored.body, stored.variables) == (
            "【示例医院】张建国您好",
            {"content": "张建国您好"},
        )
        assert stored.wechat_payload is None

        await asyncio.to_thread(downgrade, url, "0008")
        async with engine.connect() as connection:
            plain = (await connection.execute(sa.text("SELECT name, phone FROM patient"))).one()
            body = (await connection.execute(sa.text("SELECT body FROM outbound_message"))).one()
        assert tuple(plain) == ("张建国", "13800138001")
        assert body[0] == "【示例医院】张建国您好"
    finally:
        await engine.dispose()
        if name:
            await drop_database(postgres, name)
