"""The diabetes case-management pathway over its six months, under the time-skipping server:
enrolment with consent, baseline, monthly scale with risk thresholds (alerts, patient notice,
the doctor's call), weekly medication reminders, revisits met and missed, a mid-run migration
to a new version (dry run, then applied), and the 3- and 6-month outcome comparison."""

from __future__ import annotations

import calendar
import copy
import itertools
from datetime import date, datetime, timedelta
from typing import Any

from temporalio.testing import WorkflowEnvironment

from tests.factories import BEIJING, daytime
from tests.pathways.conftest import PathwayStack, PathwayStackFactory

PATHWAY = "diabetes-management"


def _six_months_later(day: date) -> date:
    year, month = divmod(day.month - 1 + 6, 12)
    year, month = day.year + year, month + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


async def _skip_to(env: WorkflowEnvironment, moment: datetime) -> None:
    now = await env.get_current_time()
    if moment > now:
        await env.sleep(moment - now)


async def _due(stack: PathwayStack, workflow_id: str, step_id: str, index: int) -> datetime:
    progress = await stack.progress(workflow_id)
    return next(s.due_at for s in progress.steps if s.step_id == step_id and s.occurrence == index)


async def _enrol(stack: PathwayStack, env: WorkflowEnvironment) -> str:
    visited = daytime(await env.get_current_time(), hour=9)
    response = await stack.visit(visited, patient="P0003")
    assert response.status_code == 202, response.text
    assert response.json()["candidates"] == [PATHWAY]
    listed = await stack.http.get(
        f"/api/enrollment-candidates?pathway_id={PATHWAY}", headers=stack.auth("care_manager")
    )
    [candidate] = listed.json()
    url = f"/api/enrollment-candidates/{candidate['id']}/enrol"
    no_consent = await stack.http.post(url, json={}, headers=stack.auth("care_manager"))
    assert no_consent.status_code == 422
    assert no_consent.json()["detail"][0]["loc"] == ["body", "consent"]
    consent = {
        "method": "e_signature",
        "reference": "ESIGN-2026-0001",
        "signed_at": (await env.get_current_time()).isoformat(),
    }
    enrolled = await stack.http.post(
        url,
        json={"consent": consent, "start_at": (await env.get_current_time()).isoformat()},
        headers=stack.auth("care_manager"),
    )
    assert enrolled.status_code == 200, enrolled.text
    workflow_id: str = enrolled.json()["workflow_id"]
    stack.started.append(workflow_id)
    return workflow_id


def _version_two(body: dict[str, Any]) -> dict[str, Any]:
    """The care team lengthens the monthly scale's window and adds a diet article."""
    changed = copy.deepcopy(body)
    for step in changed["steps"]:
        if step["id"] == "monthly":
            step["validity"] = {"days": 7}
    changed["steps"].append(
        {
            "id": "diet-education",
            "title": "糖尿病饮食宣教",
            "schedule": {"offset": {"months": 3}, "time_of_day": "09:00"},
            "action": {"type": "article", "article": "chd-diet"},
            "validity": {"days": 7},
        }
    )
    return changed


async def test_six_months_of_diabetes_case_management(
    isolated_time_env: WorkflowEnvironment,
    pathway_stack: PathwayStackFactory,
    record_history: Any,
) -> None:
    env = isolated_time_env
    async with pathway_stack(env) as stack, stack.workers():
        workflow_id = await _enrol(stack, env)
        baseline_due = await _due(stack, workflow_id, "baseline", 0)
        await _skip_to(env, baseline_due + timedelta(minutes=1))
        await stack.wait_step(workflow_id, "baseline", ("sent",))
        await stack.answer(
            workflow_id, "baseline", {"hba1c": "8.5", "fasting_glucose": "9.0", "weight": "72"}
        )
        await stack.wait_step(workflow_id, "baseline", ("completed",))

        # Month 1: a dangerous glucose. The doctor and case manager are alerted, the patient
        # told what to do, and the doctor's call is opened; nobody makes it within 3 days.
        month1 = await _due(stack, workflow_id, "monthly", 0)
        await _skip_to(env, month1 + timedelta(minutes=1))
        await stack.wait_step(workflow_id, "monthly", ("sent",))
        await stack.answer(
            workflow_id,
            "monthly",
            {
                "fasting_glucose": "14.5",
                "hypoglycemia": "none",
                "adherence": "sometimes",
                "symptoms": ["thirst"],
            },
        )
        await stack.wait_step(workflow_id, "monthly", ("abnormal",))
        # The revisit (no time of day: due at the minute of enrolment, before or after the
        # monthly form's 10:00): registered at the clinic three days after it fell due.
        revisit1 = await _due(stack, workflow_id, "revisit", 0)
        await _skip_to(env, revisit1 + timedelta(minutes=1))
        await stack.wait_step(workflow_id, "revisit", ("sent",))
        await _skip_to(env, revisit1 + timedelta(days=3))
        registered = await stack.registration(
            await env.get_current_time(), patient="P0003", department="endocrinology"
        )
        assert registered.status_code == 202
        await stack.wait_step(workflow_id, "revisit", ("completed",))
        await _skip_to(env, max(month1, revisit1) + timedelta(days=4))
        await stack.wait_step(workflow_id, "doctor-call", ("lost",))

        # Month 2: the plan moves to version 2, after a dry run shows what would change.
        designer = stack.auth("care_manager")
        versions = await stack.http.get(f"/api/pathways/{PATHWAY}/versions", headers=designer)
        body = versions.json()[-1]["body"]
        draft = await stack.http.post("/api/pathways", json=_version_two(body), headers=designer)
        assert draft.status_code == 201, draft.text
        v2 = draft.json()["version"]
        published = await stack.http.post(
            f"/api/pathways/{PATHWAY}/versions/{v2}/publish", headers=designer
        )
        assert published.status_code == 200, published.text
        month2 = await _due(stack, workflow_id, "monthly", 1)
        await _skip_to(env, month2 - timedelta(days=2))
        steps = [
            "baseline",
            "monthly",
            "medication",
            "revisit",
            "assess-3m",
            "assess-6m",
            "doctor-call",
        ]
        incomplete = await stack.http.post(
            f"/api/runs/{workflow_id}/migration",
            json={
                "to_version": v2,
                "mapping": {"monthly": "monthly"},
                "reason": "延长填写期",
                "dry_run": True,
            },
            headers=designer,
        )
        assert incomplete.status_code == 409
        assert "映射不完整" in incomplete.json()["detail"]
        request = {
            "to_version": v2,
            "mapping": {s: s for s in steps},
            "reason": "延长月度量表填写期",
        }
        dry = await stack.http.post(
            f"/api/runs/{workflow_id}/migration",
            json={**request, "dry_run": True},
            headers=designer,
        )
        assert dry.status_code == 200, dry.text
        changes = {(c["change"], c["key"]) for c in dry.json()["changes"]}
        assert ("rescheduled", "monthly#1") in changes
        assert ("added", "diet-education#0") in changes
        assert (await stack.progress(workflow_id)).plan_version == 1  # the dry run changed nothing
        applied = await stack.http.post(
            f"/api/runs/{workflow_id}/migration", json=request, headers=designer
        )
        assert applied.status_code == 200, applied.text
        assert (await stack.progress(workflow_id)).plan_version == v2

        # Month 2 on version 2: no answer, and no revisit → a potential loss.
        await _skip_to(env, month2 + timedelta(days=8))
        await stack.wait_step(workflow_id, "revisit", ("lost",), index=1)
        await stack.wait_task(workflow_id, "revisit#1", "lost")
        losses = await stack.http.get(
            f"/api/pathways/{PATHWAY}/potential-losses", headers=stack.auth("care_manager")
        )
        assert [loss["title"] for loss in losses.json()] == ["每月复诊"]

        # The 3- and 6-month assessments.
        for step, hba1c in (("assess-3m", "7.6"), ("assess-6m", "6.9")):
            due = await _due(stack, workflow_id, step, 0)
            await _skip_to(env, due + timedelta(minutes=1))
            await stack.wait_step(workflow_id, step, ("sent",))
            values = {"hba1c": hba1c, "fasting_glucose": "7.2", "weight": "68"}
            await stack.answer(workflow_id, step, values)
            await stack.wait_step(workflow_id, step, ("completed",))
        end = max(s.due_at for s in (await stack.progress(workflow_id)).steps)
        await _skip_to(env, end + timedelta(days=15))
        result = await env.client.get_workflow_handle(workflow_id).result()
        await record_history(env.client.get_workflow_handle(workflow_id), "pathway_v1_migrated")
        outcomes = await stack.http.get(
            f"/api/runs/{workflow_id}/outcomes", headers=stack.auth("care_manager")
        )
        audit = await stack.http.get(
            f"/api/runs/{workflow_id}/audit", headers=stack.auth("care_manager")
        )
        await env.client.get_workflow_handle(workflow_id).fetch_history()

    assert result["status"] == "completed"
    tasks = await stack.tasks(workflow_id)
    medication = sorted(
        (t for k, t in tasks.items() if k.startswith("medication#")), key=lambda t: t.due_at
    )
    # Weekly from day 7 up to the six-month date (clamped to the month's end): 25 or 26
    # reminders depending on the calendar months the plan spans.
    enrolled = medication[0].due_at.astimezone(BEIJING).date() - timedelta(days=7)
    assert len(medication) == (_six_months_later(enrolled) - enrolled).days // 7
    assert all(b.due_at - a.due_at == timedelta(days=7) for a, b in itertools.pairwise(medication))
    assert {t.status for t in medication} == {"completed"}
    assert {t.due_at.astimezone(BEIJING).hour for t in medication} == {8}
    alerts = await stack.alerts(workflow_id)
    assert sorted(a.role for a in alerts if a.level == "high") == ["care_manager", "doctor"]
    assert any("医生电话干预" in a.summary for a in alerts)  # the call nobody made
    notices = [m for m in await stack.messages(workflow_id) if m.template == "risk_notice"]
    assert len(notices) == 1
    assert "三日内到内分泌科门诊复诊" in notices[0].body
    # After the migration the monthly links work for 7 days instead of 5.
    month3 = tasks["monthly#2"]
    assert month3.plan_version == 2
    assert month3.valid_until is not None
    assert month3.sent_at is not None
    assert abs(month3.valid_until - month3.sent_at - timedelta(days=7)) < timedelta(seconds=1)
    assert tasks["diet-education#0"].plan_version == 2
    [hba1c, _] = outcomes.json()
    assert hba1c["baseline"] == 8.5
    assert [(p["at"], p["value"], p["change"]) for p in hba1c["points"]] == [
        ("3个月", 7.6, -0.9),
        ("6个月", 6.9, -1.6),
    ]
    # Staff changes, in order; the workflow's own entries (run started, ended) are the system's.
    entries = [e for e in audit.json() if e["actor_type"] == "staff"]
    assert [e["action"] for e in entries] == ["pathway.run_started", "pathway.migrate"]
    assert "run.started" in {e["action"] for e in audit.json() if e["actor_type"] == "system"}
    assert entries[1]["detail"]["reason"] == "延长月度量表填写期"
    assert entries[1]["actor_id"]
