"""A year-long plan keeps a bounded history: the run continues as new at quiet moments, and
nothing is lost or repeated across the hand-overs."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from tests.factories import daytime
from tests.pathways.conftest import PathwayStackFactory
from workflows.pathway import HISTORY_LIMIT

YEAR_PLAN = {
    "id": "hypertension-year",
    "name": "高血压全年管理",
    "kind": "case_management",
    "plan_type": "outpatient",
    "executor_role": "care_manager",
    "anchor": "enrollment",
    "steps": [
        {
            "id": "daily",
            "title": "每日服药提醒",
            "schedule": {
                "recurrence": {"every": {"days": 1}, "count": 365},
                "time_of_day": "08:00",
            },
            "action": {
                "type": "reminder",
                "reminder_kind": "medication",
                "text": "请按时服用降压药，并测量血压",
            },
        },
        {
            "id": "monthly",
            "title": "月度随访",
            "schedule": {
                "recurrence": {"every": {"months": 1}, "start": {"months": 1}, "count": 12},
                "time_of_day": "10:00",
            },
            "action": {"type": "form", "form": "outpatient-followup"},
            "validity": {"days": 3},
            "lost_after": {"days": 5},
        },
    ],
}


async def test_a_year_of_daily_reminders_continues_as_new_with_bounded_history(
    isolated_time_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory
) -> None:
    env = isolated_time_env
    async with pathway_stack(env) as stack, stack.workers():
        headers = stack.auth("care_manager")
        assert (
            await stack.http.post("/api/pathways", json=YEAR_PLAN, headers=headers)
        ).status_code == 201
        published = await stack.http.post(
            "/api/pathways/hypertension-year/versions/1/publish", headers=headers
        )
        assert published.status_code == 200, published.text
        await stack.discharge(
            daytime(await env.get_current_time()), patient="P0002", department="orthopedics"
        )  # registers the patient
        started = await stack.http.post(
            "/api/runs",
            json={
                "pathway_id": "hypertension-year",
                "patient_id": "P0002",
                "anchor_at": (await env.get_current_time()).isoformat(),
                "department_code": "orthopedics",
            },
            headers=headers,
        )
        assert started.status_code == 201, started.text
        workflow_id = started.json()["workflow_id"]
        first_run = started.json()["run_id"]
        stack.started.append(workflow_id)
        # A month at a time: the test server's clock jumps from timer to timer in between.
        handle = env.client.get_workflow_handle(workflow_id)
        for _ in range(14):
            await env.sleep(timedelta(days=30))
            if (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED:
                break
        result = await handle.result()

        # Follow the chain of runs and measure each one's history.
        lengths = []
        run_id: str | None = first_run
        while run_id:
            history = await env.client.get_workflow_handle(
                workflow_id, run_id=run_id
            ).fetch_history()
            lengths.append(len(history.events))
            last = history.events[-1]
            attributes = last.workflow_execution_continued_as_new_event_attributes
            run_id = (
                attributes.new_execution_run_id
                if last.HasField("workflow_execution_continued_as_new_event_attributes")
                else None
            )

    assert result["status"] == "completed"
    tasks = await stack.tasks(workflow_id)
    daily = [t for k, t in tasks.items() if k.startswith("daily#")]
    assert len(daily) == 365
    assert {t.status for t in daily} == {"completed"}
    messages = await stack.messages(workflow_id)
    assert len(messages) == 365 + 12  # exactly one per occurrence across every hand-over
    assert len(lengths) >= 3
    assert max(lengths) <= HISTORY_LIMIT + 200
