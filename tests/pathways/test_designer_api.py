"""The designer round trip through HTTP on the dev server: draft (YAML) → validate → fix →
preview → publish → live → run → adjust → migrate → end; and the refusals along the way."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import yaml
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from contracts.search import PATHWAY_ID, PATHWAY_VERSION
from core.models import AuditEntry
from tests.factories import daytime
from tests.pathways.conftest import PathwayStack, PathwayStackFactory

DRAFT = """
id: post-op-knee
name: 膝关节置换术后随访
kind: followup
plan_type: inpatient
executor_role: nurse
anchor: surgery
steps:
  - id: week1
    title: 术后第1周随访
    schedule: {offset: {weeks: 1}, time_of_day: "10:00"}
    action: {type: form, form: discharge-recovery}
    validity: {days: 3}
    lost_after: {days: 1}
    rules:
      - {when: "overall == 'poor' and pain > 3", activate: [call]}
  - id: rehab
    title: 康复锻炼打卡
    schedule: {recurrence: {every: {days: 2}, count: 4}}
    action: {type: checkin, text: 完成股四头肌练习}
    validity: {hours: 12}
"""


def _problems(response: Any) -> dict[str, str]:
    return {p["path"]: p["message"] for p in response.json()["problems"]}


async def _designer(stack: PathwayStack) -> dict[str, str]:
    return stack.auth("care_manager")


async def test_round_trip_from_draft_to_a_migrated_run(
    dev_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory
) -> None:
    async with pathway_stack(dev_env) as stack, stack.workers():
        headers = await _designer(stack)
        yaml_headers = {**headers, "Content-Type": "application/yaml"}
        schema = await stack.http.get("/api/pathways/schema", headers=headers)
        assert "steps" in schema.json()["properties"]

        checked = await stack.http.post(
            "/api/pathways/validate", content=DRAFT, headers=yaml_headers
        )
        assert checked.json()["valid"] is False
        assert _problems(checked) == {
            "steps[0].lost_after": "must not be shorter than validity",
            "steps[0].rules[0].when": "unknown names: pain (use question ids or score names)",
            "steps[0].rules[0].activate[0]": "'call' is not a step without a schedule",
        }
        body = yaml.safe_load(DRAFT)
        week1 = body["steps"][0]
        week1["lost_after"] = {"days": 5}
        week1["rules"][0]["when"] = "overall == 'poor'"
        call = {
            "id": "call",
            "title": "护士电话随访",
            "after_activation": {"hours": 1},
            "action": {"type": "staff_task", "task_kind": "phone_followup"},
            "lost_after": {"days": 1},
        }
        body["steps"].append(call)
        draft = await stack.http.post("/api/pathways", json=body, headers=headers)
        assert draft.status_code == 201, draft.text
        assert (draft.json()["version"], draft.json()["status"]) == (1, "draft")

        anchor = daytime(await dev_env.get_current_time(), hour=11)
        preview = await stack.http.post(
            "/api/pathways/post-op-knee/versions/1/preview",
            json={"anchor_at": anchor.isoformat()},
            headers=headers,
        )
        assert preview.status_code == 200, preview.text
        shown = preview.json()
        assert [(p["step_id"], p["index"]) for p in shown["timeline"]] == [
            ("rehab", 0),
            ("rehab", 1),
            ("rehab", 2),
            ("rehab", 3),
            ("week1", 0),
        ]
        assert shown["dormant"][0]["activated_by"] == ["week1.rules[0]"]

        published = await stack.http.post(
            "/api/pathways/post-op-knee/versions/1/publish", headers=headers
        )
        assert published.status_code == 200, published.text
        assert published.json()["live"] is True
        again = await stack.http.post(
            "/api/pathways/post-op-knee/versions/1/publish", headers=headers
        )
        assert again.status_code == 409
        immutable = await stack.http.put(
            "/api/pathways/post-op-knee/versions/1", json=body, headers=headers
        )
        assert immutable.status_code == 409

        # An unpublished version never runs.
        draft2 = await stack.http.post("/api/pathways", json=body, headers=headers)
        assert draft2.json()["version"] == 2
        await stack.discharge(
            anchor - timedelta(days=1), patient="P0004", department="orthopedics"
        )  # creates the patient
        unpublished = await stack.http.post(
            "/api/runs",
            json={
                "pathway_id": "post-op-knee",
                "patient_id": "P0004",
                "anchor_at": anchor.isoformat(),
                "version": 2,
                "department_code": "orthopedics",
            },
            headers=headers,
        )
        assert unpublished.status_code == 409

        started = await stack.http.post(
            "/api/runs",
            json={
                "pathway_id": "post-op-knee",
                "patient_id": "P0004",
                "anchor_at": anchor.isoformat(),
                "department_code": "orthopedics",
            },
            headers=headers,
        )
        assert started.status_code == 201, started.text
        workflow_id = started.json()["workflow_id"]
        stack.started.append(workflow_id)
        await stack.wait_projected(workflow_id)
        run = f"/api/runs/{workflow_id}"
        later = anchor + timedelta(days=9)
        moved = await stack.http.post(
            f"{run}/occurrences/week1/0/reschedule",
            json={"due_at": later.isoformat(), "reason": "患者出差"},
            headers=headers,
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["due_at"].startswith(later.astimezone().isoformat()[:10])
        no_reason = await stack.http.post(
            f"{run}/occurrences/rehab/3/skip", json={}, headers=headers
        )
        assert no_reason.status_code == 422
        reason = {"reason": "已达到康复目标"}
        skipped = await stack.http.post(
            f"{run}/occurrences/rehab/3/skip", json=reason, headers=headers
        )
        assert skipped.json()["status"] == "skipped"
        twice = await stack.http.post(
            f"{run}/occurrences/rehab/3/skip", json={"reason": "再来一次"}, headers=headers
        )
        assert twice.status_code == 409
        unknown = await stack.http.post(
            f"{run}/occurrences/nope/0/skip", json={"reason": "x"}, headers=headers
        )
        assert unknown.status_code == 409
        added = await stack.http.post(
            f"{run}/steps",
            json={
                "title": "康复科门诊复查提醒",
                "reason": "医生嘱咐",
                "action": {
                    "type": "reminder",
                    "reminder_kind": "revisit",
                    "text": "请于下周三复诊",
                },
                "due_at": (anchor + timedelta(days=20)).isoformat(),
            },
            headers=headers,
        )
        assert added.status_code == 200, added.text
        assert added.json()["key"] == "adhoc-1#0"
        paused = await stack.http.post(f"{run}/pause", json={"reason": "住院中"}, headers=headers)
        assert paused.json()["status"] == "paused"
        again_paused = await stack.http.post(f"{run}/pause", json={"reason": "x"}, headers=headers)
        assert again_paused.status_code == 409
        resumed = await stack.http.post(f"{run}/resume", json={"reason": "出院"}, headers=headers)
        assert resumed.json()["status"] == "running"

        # Version 2 (more rehab check-ins) goes live; the running patient is migrated.
        body["steps"][1]["schedule"]["recurrence"]["count"] = 6
        await stack.http.put("/api/pathways/post-op-knee/versions/2", json=body, headers=headers)
        await stack.http.post("/api/pathways/post-op-knee/versions/2/publish", headers=headers)
        live = await stack.http.put(
            "/api/pathways/post-op-knee/live", json={"version": 2}, headers=headers
        )
        assert live.json()["live_version"] == 2
        mapping = {"week1": "week1", "rehab": "rehab", "call": "call"}
        plan = await stack.http.post(
            f"{run}/migration",
            json={"to_version": 2, "mapping": mapping, "reason": "增加康复打卡", "dry_run": True},
            headers=headers,
        )
        assert plan.status_code == 200, plan.text
        assert {c["key"] for c in plan.json()["changes"] if c["change"] == "added"} == {
            "rehab#4",
            "rehab#5",
        }
        request = {"to_version": 2, "mapping": mapping, "reason": "增加康复打卡"}
        migrated = await stack.http.post(f"{run}/migration", json=request, headers=headers)
        assert migrated.status_code == 200
        # The operator's search follows the run to its new version (an upserted attribute).
        described = await dev_env.client.get_workflow_handle(workflow_id).describe()
        assert described.typed_search_attributes.get(PATHWAY_VERSION) == 2
        assert described.typed_search_attributes.get(PATHWAY_ID) == "post-op-knee"
        ended = await stack.http.post(f"{run}/end", json={"reason": "转康复医院"}, headers=headers)
        assert ended.status_code == 200, ended.text
        assert ended.json()["status"] == "ended"
        after_end = await stack.http.post(f"{run}/pause", json={"reason": "x"}, headers=headers)
        assert after_end.status_code == 409
        audit = await stack.http.get(f"{run}/audit", headers=headers)

    actions = [e["action"] for e in audit.json() if e["actor_type"] == "staff"]
    assert "run.started" in {e["action"] for e in audit.json() if e["actor_type"] == "system"}
    assert actions == [
        "pathway.run_started",
        "pathway.reschedule",
        "pathway.skip",
        "pathway.add_step",
        "pathway.pause",
        "pathway.resume",
        "pathway.migrate",
        "pathway.end",
    ]
    assert all(e["actor_id"] for e in audit.json() if e["actor_type"] == "staff")
    tasks = await stack.tasks(workflow_id)
    assert tasks["rehab#3"].status == "skipped"
    assert {t.status for k, t in tasks.items() if k != "rehab#3"} <= {
        "not_needed",
        "completed",
        "expired",
    }


async def test_excluding_a_patient_ends_all_their_runs(
    dev_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory
) -> None:
    async with pathway_stack(dev_env) as stack, stack.workers():
        discharged = daytime(await dev_env.get_current_time(), hour=10)
        response = await stack.discharge(discharged, patient="P0005", department="cardiology")
        runs = [r["workflow_id"] for r in response.json()["runs"]]
        assert len(runs) == 2
        for workflow_id in runs:
            await stack.wait_projected(workflow_id)
        patient_id = next(iter((await stack.tasks(runs[0])).values())).patient_id
        excluded = await stack.http.post(
            f"/api/patients/{patient_id}/exclusion",
            json={"reason": "患者拒绝随访"},
            headers=stack.auth("nurse"),
        )
        assert excluded.status_code == 200, excluded.text
        assert sorted(excluded.json()["ended_runs"]) == sorted(runs)
        again = await stack.discharge(discharged, patient="P0005", department="cardiology")

    assert again.json()["runs"] == []  # an excluded patient is not enrolled again
    for workflow_id in runs:
        tasks = await stack.tasks(workflow_id)
        assert {t.status for t in tasks.values()} == {"not_needed"}
        assert {t.reason for t in tasks.values()} == {"患者已排除：患者拒绝随访"}


async def test_a_pathway_is_suspended_resumed_and_retired_while_its_runs_go_on(
    dev_env: WorkflowEnvironment, pathway_stack: PathwayStackFactory
) -> None:
    plan = "outpatient-visit"
    async with pathway_stack(dev_env) as stack, stack.workers():
        designer = stack.auth("care_manager")

        async def change(verb: str, reason: str = "随访方案调整") -> httpx.Response:
            return await stack.http.post(
                f"/api/pathways/{plan}/{verb}", json={"reason": reason}, headers=designer
            )

        async def visit_runs() -> list[str]:
            now = await dev_env.get_current_time()
            response = await stack.visit(now, patient="P0002", department="cardiology")
            assert response.status_code == 202, response.text
            return [r["plan_id"] for r in response.json()["runs"]]

        before = await visit_runs()
        running = next(w for w in stack.started if f":{plan}:" in w)
        suspended = await change("suspend")
        while_suspended = await visit_runs()
        again = await change("suspend")
        no_reason = await stack.http.post(
            f"/api/pathways/{plan}/suspend", json={}, headers=designer
        )
        by_nurse = await stack.http.post(
            f"/api/pathways/{plan}/resume", json={"reason": "x"}, headers=stack.auth("nurse")
        )
        resumed = await change("resume")
        after_resume = await visit_runs()
        retired = await change("retire", "已由新方案替代")
        resume_retired = await change("resume")
        by_hand = await stack.http.post(
            "/api/runs",
            json={
                "pathway_id": plan,
                "patient_id": "P0002",
                "department_code": "cardiology",
                "anchor_at": (await dev_env.get_current_time()).isoformat(),
            },
            headers=stack.auth("nurse"),
        )
        listed = await stack.http.get("/api/pathways", headers=designer)
        # The run started before the suspension went on all along.
        progress = await stack.progress(running)
        async with stack.sessions() as session:
            trail = (
                await session.exec(
                    select(AuditEntry)
                    .where(AuditEntry.target_id == plan)
                    .order_by(col(AuditEntry.at))
                )
            ).all()

    assert plan in before
    assert (suspended.status_code, suspended.json()["availability"]) == (200, "suspended")
    assert plan not in while_suspended
    assert again.status_code == 409
    assert no_reason.status_code == 422
    assert no_reason.json()["detail"][0]["loc"] == ["body", "reason"]
    assert by_nurse.status_code == 403
    assert (resumed.status_code, resumed.json()["availability"]) == (200, "active")
    assert plan in after_resume
    assert retired.json()["availability"] == "retired"
    assert resume_retired.status_code == 409
    assert by_hand.status_code == 409
    assert {p["id"]: p["availability"] for p in listed.json()}[plan] == "retired"
    assert progress.status == "running"
    assert [(e.action, e.detail["reason"]) for e in trail] == [
        ("pathway.suspended", "随访方案调整"),
        ("pathway.resumed", "随访方案调整"),
        ("pathway.retired", "已由新方案替代"),
    ]
