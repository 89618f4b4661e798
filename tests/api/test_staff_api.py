"""Staff API: token auth, department scope, work queues, alerts, run progress, messages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from activities.records import RecordActivities
from core.db import SessionFactory, transaction
from core.models import AuditEntry, CareTask, OutboundMessage, StaffRole
from pathways.catalog import load_catalog
from tests.api.conftest import Api, discharge_event
from tests.factories import BEIJING, add_patient, add_staff, eventually, running_worker
from workflows.contracts import (
    AnswersReceived,
    FindingRecord,
    PlannedTask,
    RunStarted,
    StepChanged,
    task_id_for,
)

DAY = timedelta(days=1)


async def project_run(
    sessions: SessionFactory, department_code: str, anchor: datetime, name: str = "张建国"
) -> tuple[str, dict[str, str]]:
    """A run written through the real projection activities, as the workflow would."""
    patient, encounter = await add_patient(sessions, department_code=department_code, name=name)
    workflow_id = (
        f"followup:inpatient-discharge:{patient.his_patient_id}:{encounter.his_encounter_id}"
    )
    snapshot = load_catalog().snapshot("inpatient-discharge")
    tasks = {s.id: task_id_for(workflow_id, s.id) for s in snapshot.plan.steps}
    await RecordActivities(sessions).run_started(
        RunStarted(
            workflow_id=workflow_id,
            patient_id=patient.id,
            encounter_id=encounter.id,
            department_code=department_code,
            responsible_role="nurse",
            snapshot=snapshot,
            anchor_at=anchor,
            clock_speedup=1.0,
            started_at=anchor,
            tasks=[
                PlannedTask(
                    task_id=tasks[s.id],
                    step_id=s.id,
                    occurrence=0,
                    title=s.title,
                    form_id=s.form,
                    due_at=anchor + s.offset.to_timedelta(),
                )
                for s in snapshot.plan.steps
            ],
        )
    )
    return workflow_id, tasks


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_staff_endpoints_need_a_valid_token(api: Api) -> None:
    for path in ("/api/tasks", "/api/alerts", "/api/runs", "/api/messages"):
        missing = await api.http.get(path)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await api.http.get(path, headers=auth("forged-token"))
        assert wrong.status_code == 401, path


async def test_work_queue_is_scoped_to_the_nurses_department(api: Api) -> None:
    now = datetime.now(UTC)
    cardio_run, _ = await project_run(api.sessions, "cardiology", now - 3 * DAY)
    ortho_run, _ = await project_run(api.sessions, "orthopedics", now - 3 * DAY, name="李秀英")
    nurse = await add_staff(api.sessions, StaffRole.NURSE, "cardiology")
    admin = await add_staff(api.sessions, StaffRole.ADMIN, None, name="管理员")

    mine = (await api.http.get("/api/tasks", headers=auth(nurse))).json()
    everything = (await api.http.get("/api/tasks", headers=auth(admin))).json()

    assert {t["workflow_id"] for t in mine["items"]} == {cardio_run}
    assert mine["total"] == 2
    assert {t["workflow_id"] for t in everything["items"]} == {cardio_run, ortho_run}
    task = mine["items"][0]
    assert task["patient"]["name"] == "张建国"
    assert task["patient"]["phone_masked"] == "138****8001"
    # Another department's run is invisible, not forbidden: its existence is not disclosed.
    hidden = await api.http.get(f"/api/runs/{ortho_run}", headers=auth(nurse))
    assert hidden.status_code == 404


async def test_work_queue_filters_by_status_and_due_date(api: Api) -> None:
    now = datetime.now(UTC)
    # Discharged three days ago: day 3 is due today, day 7 in four days.
    _workflow_id, tasks = await project_run(api.sessions, "cardiology", now - 3 * DAY)
    await RecordActivities(api.sessions).step_changed(
        StepChanged(task_id=tasks["day7"], status="expired", at=now)
    )
    nurse = await add_staff(api.sessions)

    async def ids(query: str) -> set[str]:
        response = await api.http.get(f"/api/tasks?{query}", headers=auth(nurse))
        assert response.status_code == 200, response.text
        return {t["step_id"] for t in response.json()["items"]}

    assert await ids("due=today") == {"day3"}
    assert await ids("status=expired") == {"day7"}
    assert await ids("status=pending&status=expired") == {"day3", "day7"}
    assert await ids("status=lost") == set()
    bad = await api.http.get("/api/tasks?status=bogus", headers=auth(nurse))
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "status", 0]


async def test_alert_is_listed_acknowledged_and_audited(api: Api) -> None:
    now = datetime.now(UTC)
    workflow_id, tasks = await project_run(api.sessions, "cardiology", now - 3 * DAY)
    records = RecordActivities(api.sessions)
    await records.answers_received(
        AnswersReceived(
            task_id=tasks["day3"],
            workflow_id=workflow_id,
            form_id="discharge-recovery",
            answers={"overall": ["poor"], "symptoms": ["none"], "medication": ["on_time"]},
            findings=[
                FindingRecord(
                    question_id="overall", question="整体感觉", value="poor", label="较差"
                )
            ],
            submitted_at=now,
            recorded_at=now,
            step_title="出院第3天随访",
        )
    )
    nurse = await add_staff(api.sessions)
    other_ward = await add_staff(api.sessions, department_code="orthopedics", name="骨科护士")
    admin = await add_staff(api.sessions, StaffRole.ADMIN, None, name="管理员")

    listed = (await api.http.get("/api/alerts?status=open", headers=auth(nurse))).json()
    assert listed["total"] == 1
    alert = listed["items"][0]
    assert alert["kind"] == "abnormal_answer"
    assert alert["details"][0]["label"] == "较差"
    assert (await api.http.get("/api/alerts", headers=auth(other_ward))).json()["total"] == 0

    read_only = await api.http.post(
        f"/api/alerts/{alert['id']}/acknowledge", json={}, headers=auth(admin)
    )
    assert read_only.status_code == 403
    assert "nurse" in read_only.json()["detail"]
    foreign = await api.http.post(
        f"/api/alerts/{alert['id']}/acknowledge", json={}, headers=auth(other_ward)
    )
    assert foreign.status_code == 404
    done = await api.http.post(
        f"/api/alerts/{alert['id']}/acknowledge", json={"note": "已电话回访"}, headers=auth(nurse)
    )
    assert done.status_code == 200
    assert done.json()["status"] == "acknowledged"
    assert (await api.http.get("/api/alerts?status=open", headers=auth(nurse))).json()["total"] == 0
    async with api.sessions() as session:
        entry = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "alert.acknowledged"))
        ).one()
    assert entry.target_id == alert["id"]
    assert entry.detail == {"note": "已电话回访"}

    detail = (await api.http.get(f"/api/tasks/{tasks['day3']}", headers=auth(nurse))).json()
    assert detail["status"] == "abnormal"
    assert detail["response"]["answers"]["overall"] == ["poor"]


async def test_run_progress_comes_from_the_workflow_or_else_the_projection(
    api: Api, dev_env: WorkflowEnvironment
) -> None:
    nurse = await add_staff(api.sessions)
    event = discharge_event(
        discharged_at=datetime.now(UTC) - timedelta(hours=2), department_code="cardiology"
    )
    response = await api.post_event(event)
    runs = {r["plan_id"]: r["workflow_id"] for r in response.json()["runs"]}
    workflow_id = runs["inpatient-discharge"]
    async with running_worker(
        dev_env.client, api.settings.temporal_task_queue, api.settings, api.sessions
    ):

        async def projected() -> bool:
            got = await api.http.get(f"/api/runs/{workflow_id}", headers=auth(nurse))
            return got.status_code == 200

        await eventually(projected, what="the run to be projected")
        live = (await api.http.get(f"/api/runs/{workflow_id}", headers=auth(nurse))).json()

    assert live["source"] == "workflow"
    assert live["status"] == "running"
    assert [s["step_id"] for s in live["steps"]] == ["day3", "day7", "day30"]
    assert {s["status"] for s in live["steps"]} == {"pending"}
    anchor = datetime.fromisoformat(event["encounter"]["discharged_at"]).astimezone(BEIJING)
    due = datetime.fromisoformat(live["steps"][0]["due_at"]).astimezone(BEIJING)
    assert (due.date() - anchor.date(), due.hour) == (3 * DAY, 10)
    assert live["temporal_ui_url"].endswith(
        "/namespaces/default/workflows/" + workflow_id.replace(":", "%3A")
    )

    # No worker now: the API answers from the database rather than hanging.
    fallback = (await api.http.get(f"/api/runs/{workflow_id}", headers=auth(nurse))).json()
    assert fallback["source"] == "projection"
    assert [s["step_id"] for s in fallback["steps"]] == ["day3", "day7", "day30"]
    listed = (await api.http.get("/api/runs?status=running", headers=auth(nurse))).json()
    assert sorted(r["workflow_id"] for r in listed["items"]) == sorted(runs.values())


async def test_messages_list_masks_the_recipient(api: Api) -> None:
    now = datetime.now(UTC)
    workflow_id, tasks = await project_run(api.sessions, "cardiology", now)
    async with transaction(api.sessions) as session:
        task = await session.get(CareTask, tasks["day3"])
        assert task is not None
        session.add(
            OutboundMessage(
                idempotency_key=f"{workflow_id}/day3/0/invite/{uuid.uuid4()}",
                channel="outbox",
                category="followup",
                template="followup_invite",
                patient_id=task.patient_id,
                task_id=task.id,
                workflow_id=workflow_id,
                recipient_phone="+8613800138001",
                department_code="cardiology",
                body="【示例医院】测试 http://patient.test/p/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
                status="sent",
                scheduled_for=now,
            )
        )
    nurse = await add_staff(api.sessions)
    listed = (await api.http.get("/api/messages", headers=auth(nurse))).json()
    assert listed["total"] == 1
    assert listed["items"][0]["recipient_masked"] == "138****8001"
    assert "recipient" not in listed["items"][0]
    assert (
        listed["items"][0]["body"]
        == "【示例医院】测试 http://patient.test/p/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    )
    # In production the link, a credential of the patient's, is not shown to staff.
    api.settings.environment = "production"
    hidden = (await api.http.get("/api/messages", headers=auth(nurse))).json()
    assert hidden["items"][0]["body"] == "【示例医院】测试 http://patient.test/p/<token>"
