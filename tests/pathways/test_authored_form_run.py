"""A form authored through the designer API reaches a patient: a care manager writes it,
previews and publishes it, uses it in a new pathway, previews and publishes that, and a run on
the time-skipping server sends the form at its time; the patient's page is the authored form
(the version the pathway pinned), and their answers complete the step."""

from __future__ import annotations

from datetime import timedelta

import yaml
from temporalio.testing import WorkflowEnvironment

from tests.factories import daytime
from tests.pathways.conftest import PathwayStackFactory

FORM = """
id: hf-weekly
title: 心衰患者每周自评
questions:
  - {id: weight, type: number, text: 今天早晨空腹体重, unit: kg, minimum: 20, maximum: 250}
  - {id: swelling, type: yes_no, text: 脚踝或小腿是否有浮肿？}
  - {id: swelling_since, type: date, text: 浮肿从哪天开始？, show_if: "swelling == 'yes'"}
"""
PATHWAY = {
    "id": "hf-home",
    "name": "心衰居家管理",
    "kind": "followup",
    "plan_type": "inpatient",
    "executor_role": "nurse",
    "anchor": "discharge",
    "steps": [
        {
            "id": "week1",
            "title": "出院第1周自评",
            "schedule": {"offset": {"days": 7}, "time_of_day": "09:00"},
            "action": {"type": "form", "form": "hf-weekly"},
            "validity": {"days": 3},
        }
    ],
}


async def test_an_authored_form_is_sent_by_a_time_skipped_run(
    isolated_time_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory
) -> None:
    env = isolated_time_env
    async with pathway_stack(env) as stack, stack.workers():
        headers = stack.auth("care_manager")
        form = await stack.http.post(
            "/api/forms", content=FORM, headers={**headers, "Content-Type": "application/yaml"}
        )
        assert form.status_code == 201, form.text
        preview = await stack.http.get("/api/forms/hf-weekly/versions/1/preview", headers=headers)
        assert "今天早晨空腹体重" in preview.text
        published = await stack.http.post(
            "/api/forms/hf-weekly/versions/1/publish", headers=headers
        )
        assert published.status_code == 200, published.text
        # A later draft, never published, is not what the pathway pins.
        draft2 = yaml.safe_load(FORM)
        draft2["questions"].append({"id": "note", "type": "text", "text": "草稿中的题目"})
        assert (
            await stack.http.post("/api/forms", json=draft2, headers=headers)
        ).status_code == 201

        pathway = await stack.http.post("/api/pathways", json=PATHWAY, headers=headers)
        assert pathway.status_code == 201, pathway.text
        now = await env.get_current_time()
        plan = await stack.http.post(
            "/api/pathways/hf-home/versions/1/preview",
            json={"anchor_at": now.isoformat()},
            headers=headers,
        )
        assert plan.status_code == 200, plan.text
        live = await stack.http.post("/api/pathways/hf-home/versions/1/publish", headers=headers)
        assert live.status_code == 200, live.text

        anchor = daytime(now, hour=10)
        await stack.discharge(anchor - timedelta(days=1), patient="P0002")  # the patient
        started = await stack.http.post(
            "/api/runs",
            json={
                "pathway_id": "hf-home",
                "patient_id": "P0002",
                "anchor_at": anchor.isoformat(),
                "department_code": "cardiology",
            },
            headers=headers,
        )
        assert started.status_code == 201, started.text
        workflow_id = started.json()["workflow_id"]
        stack.started.append(workflow_id)
        tasks = await stack.wait_projected(workflow_id)
        due = tasks["week1#0"].due_at
        await env.sleep(due - await env.get_current_time() + timedelta(minutes=1))
        await stack.wait_step(workflow_id, "week1", ("sent",))

        page = await stack.http.get(await stack.link(workflow_id, "week1"))
        assert page.status_code == 200
        assert "心衰患者每周自评" in page.text
        assert "浮肿从哪天开始？" in page.text
        assert "草稿中的题目" not in page.text
        answered = await stack.answer(workflow_id, "week1", {"weight": "71.5", "swelling": "no"})
        assert answered.status_code == 200, answered.text
        await stack.wait_step(workflow_id, "week1", ("completed",))
