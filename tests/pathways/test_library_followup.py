"""The library's follow-up plans over their whole length, under the time-skipping server:
sends at the right local time, answers, branches, loss, staff tasks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from core.models import StaffRole
from harness.staff import add_staff
from harness.waiting import eventually
from tests.factories import BEIJING, daytime
from tests.pathways.conftest import DAY, PathwayStackFactory

NORMAL = {"overall": "good", "symptoms": ["none"], "medication": "on_time"}
POORLY = {"overall": "poor", "symptoms": ["chest"], "medication": "on_time"}


async def _skip_to(env: WorkflowEnvironment, moment: datetime) -> None:
    now = await env.get_current_time()
    if moment > now:
        await env.sleep(moment - now)


async def test_inpatient_discharge_plan_from_day_3_to_day_30(
    isolated_time_env: WorkflowEnvironment,
    pathway_stack: PathwayStackFactory,
    record_history: Any,
) -> None:
    env = isolated_time_env
    async with pathway_stack(env) as stack, stack.workers():
        discharged = daytime(await env.get_current_time(), hour=15)
        response = await stack.discharge(discharged, department="orthopedics")
        assert response.status_code == 202, response.text
        [run] = response.json()["runs"]
        assert run["plan_id"] == "inpatient-discharge"
        workflow_id = run["workflow_id"]

        # Day 3 at 10:00 local: the questionnaire goes out; the patient feels poorly.
        day3 = (discharged.astimezone(BEIJING) + 3 * DAY).replace(hour=10, minute=0)
        await _skip_to(env, day3 + timedelta(minutes=1))
        await stack.wait_step(workflow_id, "day3", ("sent",))
        answered = await stack.answer(workflow_id, "day3", POORLY)
        assert answered.status_code == 200
        await stack.wait_step(workflow_id, "day3", ("abnormal",))
        # The rule fired: the nurse is alerted and a phone call is due two hours later.
        progress = await stack.wait_step(workflow_id, "nurse-call", ("pending",))
        call = next(s for s in progress.steps if s.step_id == "nurse-call")
        await _skip_to(env, call.due_at + timedelta(minutes=1))
        await stack.wait_step(workflow_id, "nurse-call", ("sent",))
        tasks = await stack.tasks(workflow_id)
        done = await stack.http.post(
            f"/api/tasks/{tasks['nurse-call#0'].id}/complete",
            json={"outcome": "completed", "reason": "已电话随访，建议门诊复查"},
            headers=stack.auth("ortho_nurse"),
        )
        assert done.status_code == 200, done.text

        # Day 7 goes unanswered: expired after 5 days, lost after 7.
        await _skip_to(env, day3 + 4 * DAY + timedelta(minutes=1))
        await stack.wait_step(workflow_id, "day7", ("sent",))
        await _skip_to(env, day3 + 4 * DAY + 7 * DAY + timedelta(minutes=2))
        await stack.wait_step(workflow_id, "day7", ("lost",))

        # Day 30 is answered normally and the run ends.
        day30 = day3 + 27 * DAY
        await _skip_to(env, day30 + timedelta(minutes=1))
        await stack.wait_step(workflow_id, "day30", ("sent",))
        await stack.answer(workflow_id, "day30", NORMAL)
        result = await env.client.get_workflow_handle(workflow_id).result()
        await record_history(env.client.get_workflow_handle(workflow_id), "pathway_v4_inpatient")

    assert result["status"] == "completed"
    tasks = await stack.tasks(workflow_id)
    assert {k: t.status for k, t in tasks.items()} == {
        "day3#0": "abnormal",
        "nurse-call#0": "completed",
        "day7#0": "lost",
        "day30#0": "completed",
    }
    sent = {m.task_id: m.sent_at for m in await stack.messages(workflow_id) if m.sent_at}
    for key, days in (("day3#0", 3), ("day7#0", 7), ("day30#0", 30)):
        local = sent[tasks[key].id].astimezone(BEIJING)
        assert (local.hour, local.minute) == (10, 0), key
        assert (local.date() - discharged.astimezone(BEIJING).date()).days == days
    alerts = await stack.alerts(workflow_id)
    assert [(a.role, a.level) for a in alerts] == [("nurse", "high")]
    assert "胸闷" in alerts[0].summary
    assert tasks["day3#0"].risk_level == "high"


async def test_education_articles_rereads_and_checkins(
    isolated_time_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory
) -> None:
    env = isolated_time_env
    async with pathway_stack(env) as stack, stack.workers():
        discharged = daytime(await env.get_current_time(), hour=15)
        response = await stack.discharge(discharged, department="cardiology")
        runs = {r["plan_id"]: r["workflow_id"] for r in response.json()["runs"]}
        assert set(runs) == {"inpatient-discharge", "cardiac-education"}  # several plans at once
        workflow_id = runs["cardiac-education"]
        start = discharged.astimezone(BEIJING).replace(hour=9, minute=0)

        # Day 1: the diet article is read at once; the walk is checked in.
        await _skip_to(env, start + DAY + timedelta(minutes=1))
        await stack.wait_step(workflow_id, "diet", ("sent",))
        page = await stack.http.get(await stack.link(workflow_id, "diet"))
        assert page.status_code == 200
        assert "冠心病患者出院后的饮食" in page.text
        await stack.wait_step(workflow_id, "diet", ("read",))
        await _skip_to(env, start + DAY + timedelta(hours=7, minutes=1))
        await stack.wait_step(workflow_id, "walk", ("sent",))
        checked = await stack.http.post(await stack.link(workflow_id, "walk"))
        assert "打卡成功" in checked.text
        await stack.wait_step(workflow_id, "walk", ("completed",))

        # The medication article (day 3) is never read: re-pushed on day 5 and day 7, then
        # it expires unread on day 10.
        await _skip_to(env, start + 10 * DAY + timedelta(hours=1))
        await stack.wait_step(workflow_id, "medication", ("expired",))
        # Skip to the end of the plan; the exercise article (day 7) is read on its last day.
        await stack.wait_step(workflow_id, "exercise", ("sent",))
        await stack.http.get(await stack.link(workflow_id, "exercise"))
        await _skip_to(env, start + 15 * DAY)
        result = await env.client.get_workflow_handle(workflow_id).result()
        stats = await stack.http.get(
            "/api/pathways/cardiac-education/stats", headers=stack.auth("nurse")
        )

    assert result["status"] == "completed"
    tasks = await stack.tasks(workflow_id)
    assert tasks["diet#0"].status == "read"
    assert tasks["medication#0"].status == "expired"
    assert tasks["exercise#0"].status == "read"
    assert [tasks[f"walk#{n}"].status for n in range(7)] == ["completed"] + ["expired"] * 6
    medication_messages = [
        m for m in await stack.messages(workflow_id) if m.task_id == tasks["medication#0"].id
    ]
    assert [m.template for m in medication_messages] == [
        "education_article",
        "education_reread",
        "education_reread",
    ]
    reminded = [m.sent_at.astimezone(BEIJING).day for m in medication_messages if m.sent_at]
    first = medication_messages[0].sent_at
    assert first is not None
    assert [(d - first.astimezone(BEIJING).day) % 31 for d in reminded] == [0, 2, 4]
    figures = stats.json()
    assert (figures["read"], figures["unread"], figures["read_rate"]) == (2, 1, 0.667)


async def test_satisfaction_survey_for_a_sample_of_visits(
    isolated_time_env: WorkflowEnvironment,
    pathway_stack: PathwayStackFactory,
    record_history: Any,
) -> None:
    from pathways.membership import in_sample

    env = isolated_time_env
    async with pathway_stack(env) as stack, stack.workers():
        visited = daytime(await env.get_current_time(), hour=9)
        # 30 % of visits are surveyed, decided reproducibly per patient and visit.
        chosen = next(
            f"EVT-SAT-{n}"
            for n in range(100)
            if in_sample("outpatient-satisfaction", "P0002", f"OPX{n}", 0.3)
        )
        encounter = "OPX" + chosen.rsplit("-", 1)[1]
        body = {
            "event_id": chosen,
            "event_type": "visit",
            "occurred_at": visited.isoformat(),
            "patient_id": "P0002",
            "encounter": {
                "encounter_id": encounter,
                "kind": "outpatient",
                "department_code": "orthopedics",
                "department_name": "骨科",
            },
        }
        response = await stack.event("/webhooks/his/events", body)
        assert [r["plan_id"] for r in response.json()["runs"]] == ["outpatient-satisfaction"]
        workflow_id = response.json()["runs"][0]["workflow_id"]
        await _skip_to(env, visited + timedelta(hours=2, minutes=1))
        await stack.wait_step(workflow_id, "survey", ("sent",))
        low = {
            "registration": "s2",
            "waiting": "s1",
            "doctor": "s3",
            "pharmacy": "s2",
            "environment": "s4",
            "comment": "候诊时间太长",
        }
        assert (await stack.answer(workflow_id, "survey", low)).status_code == 200
        await stack.wait_step(workflow_id, "survey", ("abnormal",))
        # Statistics read the projection, which the workflow writes just after it decides.
        await stack.wait_task(workflow_id, "survey#0", "abnormal")
        stats = await stack.http.get(
            "/api/pathways/outpatient-satisfaction/stats", headers=stack.auth("admin")
        )

        # The low score opened a complaint case for the visit's department (SAT-3), quoting
        # the patient; its workflow runs on, and the department's nurse has it in their queue.
        async def opened() -> list[dict[str, Any]] | None:
            queue = await stack.http.get("/api/complaints", headers=stack.auth("ortho_nurse"))
            cases: list[dict[str, Any]] = queue.json()["items"]
            return cases if cases and cases[0]["steps"] else None

        [case] = await eventually(opened, what="the case opened by the survey")
        described = await env.client.get_workflow_handle(f"complaint:{case['id']}").describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
        elsewhere = await stack.http.get("/api/complaints", headers=stack.auth("nurse"))
        await record_history(env.client.get_workflow_handle(workflow_id), "pathway_v2_complaint")

    tasks = await stack.tasks(workflow_id)
    assert tasks["survey#0"].score == 2.4
    assert stats.json()["average_score"] == 2.4
    [alert] = await stack.alerts(workflow_id)
    assert "满意度较低" in alert.summary
    assert (case["source"], case["category"], case["department_code"]) == (
        "survey",
        "other",
        "orthopedics",
    )
    assert (case["task_id"], case["status"], case["opened_by"]) == (
        tasks["survey#0"].id,
        "open",
        "system",
    )
    assert case["summary"] == (
        "门诊满意度调查评分偏低（「门诊就医满意度调查」；评分 2.4）患者原话：「候诊时间太长」"
    )
    assert [s["kind"] for s in case["steps"]] == ["opened"]
    assert elsewhere.json()["items"] == []  # cardiology's nurse does not see orthopedics' case


async def test_outpatient_visit_follow_up_and_the_doctors_queue(
    isolated_time_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory
) -> None:
    env = isolated_time_env
    async with pathway_stack(env) as stack, stack.workers():
        visited = daytime(await env.get_current_time(), hour=9)
        response = await stack.visit(
            visited,
            patient="P0004",
            department="cardiology",
            diagnoses=[{"code": "I10", "name": "高血压"}],
        )
        runs = {r["plan_id"]: r["workflow_id"] for r in response.json()["runs"]}
        workflow_id = runs["outpatient-visit"]
        day1 = visited.astimezone(BEIJING).replace(hour=18) + DAY
        await _skip_to(env, day1 + timedelta(minutes=1))
        await stack.wait_step(workflow_id, "day1", ("sent",))
        answers = {"better": "same", "medication": "as_prescribed", "revisit": "wanted"}
        assert (await stack.answer(workflow_id, "day1", answers)).status_code == 200
        await stack.wait_step(workflow_id, "day1", ("completed",))
        await _skip_to(env, day1 + 6 * DAY + timedelta(minutes=1))
        await stack.wait_step(workflow_id, "day7", ("sent",))
        doctor = await add_staff(stack.sessions, StaffRole.DOCTOR, "cardiology", "赵医生")
        queue = await stack.http.get(
            "/api/tasks?mine=true&status=sent", headers={"Authorization": f"Bearer {doctor}"}
        )
        nurse_queue = await stack.http.get(
            "/api/tasks?mine=true&status=sent", headers=stack.auth("nurse")
        )
        await _skip_to(env, day1 + 6 * DAY + 5 * DAY + timedelta(minutes=5))
        result = await env.client.get_workflow_handle(workflow_id).result()

    assert result["status"] == "completed"
    tasks = await stack.tasks(workflow_id)
    assert (tasks["day1#0"].status, tasks["day7#0"].status) == ("completed", "lost")
    # The wish to come back is an alert for the doctor, not an abnormal result.
    [alert] = await stack.alerts(workflow_id)
    assert (alert.role, alert.level) == ("doctor", "info")
    assert [t["step_id"] for t in queue.json()["items"]] == ["day7"]
    assert nurse_queue.json()["total"] == 0
