"""Staff API: token auth, department scope, work queues, alerts, run progress, messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import yaml
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from activities.pathway_records import PathwayRecordActivities
from contracts.pathway import (
    AnswersRecorded,
    FiredAlert,
    Occurrence,
    OccurrencesChanged,
    RunInput,
    RunOpened,
    pathway_task_id,
    pathway_workflow_id,
)
from contracts.runs import FindingRecord
from core.db import SessionFactory, transaction
from core.models import AuditEntry, CareTask, OutboundMessage, StaffRole
from harness.staff import add_person, add_staff
from harness.waiting import eventually
from harness.workers import running_worker
from integrations.his import HisClient
from pathways.definition import PathwayDefinition
from pathways.library import LIBRARY_ROOT, load_articles, load_forms, snapshot
from pathways.timeline import timeline, zone
from tests.api.conftest import Api, discharge_event
from tests.factories import BEIJING, add_patient

DAY = timedelta(days=1)
PLAN = "inpatient-discharge"


@dataclass(frozen=True)
class ProjectedRun:
    """A discharge follow-up run written through the real projection activities, as the
    pathway workflow writes it, without running the workflow."""

    workflow_id: str
    patient_id: str
    occurrences: dict[str, Occurrence]  # by step id (first occurrence)
    records: PathwayRecordActivities

    @property
    def tasks(self) -> dict[str, str]:
        return {step: occ.task_id for step, occ in self.occurrences.items()}

    async def change(self, step_id: str, **changes: object) -> Occurrence:
        occ = self.occurrences[step_id].model_copy(update=changes)
        await self.records.occurrences(
            OccurrencesChanged(
                workflow_id=self.workflow_id,
                patient_id=self.patient_id,
                department_code="cardiology",
                plan_id=PLAN,
                occurrences=[occ],
                at=datetime.now(UTC),
            )
        )
        return occ


async def project_run(
    sessions: SessionFactory, department_code: str, anchor: datetime, name: str = "张建国"
) -> ProjectedRun:
    patient, encounter = await add_patient(sessions, department_code=department_code, name=name)
    workflow_id = pathway_workflow_id(PLAN, patient.his_patient_id, encounter.his_encounter_id)
    raw = yaml.safe_load((LIBRARY_ROOT / "library" / f"{PLAN}.yaml").read_text(encoding="utf-8"))
    definition = PathwayDefinition.model_validate(raw)
    pinned = snapshot(definition, 1, load_forms(), load_articles())
    occurrences = {}
    for planned in timeline(definition, anchor, zone("Asia/Shanghai")):
        step = definition.step(planned.step_id)
        assert step is not None
        key = f"{planned.step_id}#{planned.index}"
        occurrences[planned.step_id] = Occurrence(
            key=key,
            step_id=planned.step_id,
            index=planned.index,
            task_id=pathway_task_id(workflow_id, key),
            title=step.title,
            action_type=step.action.type,
            role=step.action.role or definition.executor_role,
            due_at=planned.due_at,
            plan_version=1,
        )
    # The projection never calls the HIS: a client that points nowhere is enough.
    records = PathwayRecordActivities(
        sessions, HisClient.create("http://127.0.0.1:9", "unused", 1.0)
    )
    await records.run_opened(
        RunOpened(
            workflow_id=workflow_id,
            input=RunInput(
                patient_id=patient.id,
                encounter_id=encounter.id,
                department_code=department_code,
                anchor_at=anchor,
                anchor_event="discharge",
                snapshot=pinned,
            ),
            occurrences=list(occurrences.values()),
            started_at=anchor,
        )
    )
    return ProjectedRun(workflow_id, patient.id, occurrences, records)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_front_door_leads_to_the_api_documentation(api: Api) -> None:
    response = await api.http.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/docs"


async def test_staff_endpoints_need_a_valid_token(api: Api) -> None:
    for path in ("/api/tasks", "/api/alerts", "/api/runs", "/api/messages"):
        missing = await api.http.get(path)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await api.http.get(path, headers=auth("forged-token"))
        assert wrong.status_code == 401, path


async def test_work_queue_is_scoped_to_the_nurses_department(api: Api) -> None:
    now = datetime.now(UTC)
    cardio_run = (await project_run(api.sessions, "cardiology", now - 3 * DAY)).workflow_id
    ortho = await project_run(api.sessions, "orthopedics", now - 3 * DAY, name="李秀英")
    ortho_run = ortho.workflow_id
    nurse = await add_staff(api.sessions, StaffRole.NURSE, "cardiology")
    admin = await add_staff(api.sessions, StaffRole.ADMIN, None, name="管理员")

    mine = (await api.http.get("/api/tasks", headers=auth(nurse))).json()
    everything = (await api.http.get("/api/tasks", headers=auth(admin))).json()

    assert {t["workflow_id"] for t in mine["items"]} == {cardio_run}
    assert mine["total"] == 3  # day 3, 7 and 30; the dormant call task is not a task yet
    assert {t["workflow_id"] for t in everything["items"]} == {cardio_run, ortho_run}
    task = mine["items"][0]
    assert task["patient"]["name"] == "张建国"
    assert task["patient"]["phone_masked"] == "138****8001"
    # An administrator's list names nobody in full (SEC-3: not needed for their work).
    assert {t["patient"]["name"] for t in everything["items"]} == {"张**", "李**"}
    # Another department's run is invisible, not forbidden: its existence is not disclosed.
    hidden = await api.http.get(f"/api/runs/{ortho_run}", headers=auth(nurse))
    assert hidden.status_code == 404


async def test_work_queue_filters_by_status_and_due_date(api: Api) -> None:
    now = datetime.now(UTC)
    # Discharged three days ago: day 3 is due today, day 7 in four days.
    run = await project_run(api.sessions, "cardiology", now - 3 * DAY)
    await run.change("day7", status="expired")
    nurse = await add_staff(api.sessions)

    async def ids(query: str) -> set[str]:
        response = await api.http.get(f"/api/tasks?{query}", headers=auth(nurse))
        assert response.status_code == 200, response.text
        return {t["step_id"] for t in response.json()["items"]}

    assert await ids("due=today") == {"day3"}
    assert await ids("status=expired") == {"day7"}
    assert await ids("status=pending&status=expired") == {"day3", "day7", "day30"}
    assert await ids("status=lost") == set()
    bad = await api.http.get("/api/tasks?status=bogus", headers=auth(nurse))
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "status", 0]


async def test_a_write_landing_after_its_run_ended_never_puts_a_task_back_on_the_queue(
    api: Api,
) -> None:
    """A run that ends abandons the projection write it has in flight (workflows/local_steps.py),
    which may then land after the end's own write."""
    now = datetime.now(UTC)
    run = await project_run(api.sessions, "cardiology", now - 3 * DAY)
    await run.change("day3", status="not_needed", reason="患者转院", closed_at=now)
    await run.change("day3", status="sent")
    nurse = await add_staff(api.sessions)

    response = await api.http.get("/api/tasks?status=pending&status=sent", headers=auth(nurse))
    assert {t["step_id"] for t in response.json()["items"]} == {"day7", "day30"}
    detail = await api.http.get(f"/api/tasks/{run.tasks['day3']}", headers=auth(nurse))
    assert detail.json()["status"] == "not_needed"


async def test_alert_is_listed_acknowledged_and_audited(api: Api) -> None:
    now = datetime.now(UTC)
    run = await project_run(api.sessions, "cardiology", now - 3 * DAY)
    tasks = run.tasks
    finding = FindingRecord(question_id="overall", question="整体感觉", value="poor", label="较差")
    answered = run.occurrences["day3"].model_copy(
        update={"status": "abnormal", "answered_at": now, "findings": [finding]}
    )
    await run.records.answers(
        AnswersRecorded(
            workflow_id=run.workflow_id,
            patient_id=run.patient_id,
            department_code="cardiology",
            plan_id=PLAN,
            occurrence=answered,
            form_id="discharge-recovery",
            answers={"overall": ["poor"], "symptoms": ["none"], "medication": ["on_time"]},
            scores={},
            alerts=[
                FiredAlert(
                    rule=0,
                    level="high",
                    roles=["nurse"],
                    message="患者自评状况较差或胸闷气短，请电话随访（异常回答：较差）",
                )
            ],
            submitted_at=now,
            recorded_at=now,
        )
    )
    nurse = await add_staff(api.sessions)
    other_ward = await add_staff(api.sessions, department_code="orthopedics", name="骨科护士")
    admin = await add_staff(api.sessions, StaffRole.ADMIN, None, name="管理员")

    listed = (await api.http.get("/api/alerts?status=open", headers=auth(nurse))).json()
    assert listed["total"] == 1
    alert = listed["items"][0]
    assert alert["kind"] == "rule:0:nurse"
    assert alert["summary"].startswith("患者自评状况较差")
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
    # Acknowledging again with no body at all: an empty request is enough, and changes nothing.
    bare = await api.http.post(f"/api/alerts/{alert['id']}/acknowledge", headers=auth(nurse))
    assert bare.status_code == 200, bare.text
    assert bare.json()["acknowledged_at"] == done.json()["acknowledged_at"]
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
            # Every run the discharge started, not only the one inspected: the list below
            # shows them all.
            for started in runs.values():
                got = await api.http.get(f"/api/runs/{started}", headers=auth(nurse))
                if got.status_code != 200:
                    return False
            return True

        await eventually(projected, what="the runs to be projected")
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
    run = await project_run(api.sessions, "cardiology", now)
    workflow_id, tasks = run.workflow_id, run.tasks
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
    # In production the link, a credential of the patient's, is not shown to staff (who sign in
    # there: a person's static token is refused in production, SEC-5).
    await add_person(api.sessions, api.settings, username="wang", password="correct-horse-battery")
    api.settings.environment = "production"
    signed = await api.http.post(
        "/api/auth/sign-in", json={"username": "wang", "password": "correct-horse-battery"}
    )
    hidden = (await api.http.get("/api/messages", headers=auth(signed.json()["token"]))).json()
    assert hidden["items"][0]["body"] == "【示例医院】测试 http://patient.test/p/<token>"
