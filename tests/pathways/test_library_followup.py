"""The library's follow-up plans over their whole length, under the time-skipping server:
sends at the right local time, answers, branches, loss, staff tasks."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from tests.factories import BEIJING, daytime
from tests.pathways.conftest import DAY, PathwayStackFactory

NORMAL = {"overall": "good", "symptoms": ["none"], "medication": "on_time"}
POORLY = {"overall": "poor", "symptoms": ["chest"], "medication": "on_time"}


async def _skip_to(env: WorkflowEnvironment, moment: datetime) -> None:
    now = await env.get_current_time()
    if moment > now:
        await env.sleep(moment - now)


async def test_inpatient_discharge_plan_from_day_3_to_day_30(
    isolated_time_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory
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

    assert result["status"] == "completed"
    tasks = await stack.tasks(workflow_id)
    assert {k: t.status for k, t in tasks.items()} == {
        "day3#0": "abnormal", "nurse-call#0": "completed", "day7#0": "lost",
        "day30#0": "completed",
    }  # fmt: skip
    sent = {m.task_id: m.sent_at for m in await stack.messages(workflow_id) if m.sent_at}
    for key, days in (("day3#0", 3), ("day7#0", 7), ("day30#0", 30)):
        local = sent[tasks[key].id].astimezone(BEIJING)
        assert (local.hour, local.minute) == (10, 0), key
        assert (local.date() - discharged.astimezone(BEIJING).date()).days == days
    alerts = await stack.alerts(workflow_id)
    assert [(a.role, a.level) for a in alerts] == [("nurse", "high")]
    assert "胸闷" in alerts[0].summary
    assert tasks["day3#0"].risk_level == "high"
