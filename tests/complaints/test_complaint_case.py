"""A complaint as a Temporal workflow, on the time-skipping server with the platform's workers
and the real API: opened by staff, escalated to the department head when nobody acknowledges
it within 24 hours, escalated again to the quality office past five working days, resolved,
the patient told the outcome and rating it on their phone page, closed; every step audited and
counted in the statistics. Praise closes once acknowledged; a step that does not apply is a
409 with the reason; a reassignment restarts the acknowledgement window elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from core.models import AuditEntry, Complaint, OutboundMessage, StaffRole
from harness.staff import add_staff
from harness.waiting import eventually
from harness.workers import running_worker
from tests.api.conftest import Api, link_signer
from tests.factories import add_patient


async def _case(api: Api, complaint_id: str, **expected: Any) -> Complaint:
    async def probe() -> Complaint | None:
        async with api.sessions() as session:
            row = await session.get(Complaint, complaint_id)
        if row is None or any(getattr(row, k) != v for k, v in expected.items()):
            return None
        return row

    return await eventually(probe, what=f"complaint {expected}")


async def _open(api: Api, headers: dict[str, str], patient_id: str, **body: Any) -> dict[str, Any]:
    response = await api.http.post(
        "/api/complaints",
        json={
            "patient_id": patient_id,
            "category": "waiting",
            "summary": "复诊候诊两个多小时，没有人解释原因。",
            "idempotency_key": f"open-{patient_id}-{body.get('kind', 'complaint')}",
            **body,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_a_complaint_escalates_twice_and_closes_with_the_patients_rating(
    skipping_api: Api, isolated_time_env: WorkflowEnvironment, record_history: Any
) -> None:
    api, env = skipping_api, isolated_time_env
    patient, _ = await add_patient(api.sessions)
    nurse = {"Authorization": f"Bearer {await add_staff(api.sessions, StaffRole.NURSE)}"}
    office = {
        "Authorization": "Bearer "
        + await add_staff(api.sessions, StaffRole.ADMIN, department_code=None, name="质控办")
    }
    async with running_worker(
        env.client, api.settings.temporal_task_queue, api.settings, api.sessions
    ):
        opened = await _open(api, nurse, patient.id)
        assert opened["case_no"].startswith("TS")
        again = await api.http.post(
            "/api/complaints",
            json={
                "patient_id": patient.id,
                "category": "waiting",
                "summary": "复诊候诊两个多小时，没有人解释原因。",
                "idempotency_key": f"open-{patient.id}-complaint",
            },
            headers=nurse,
        )
        assert again.status_code == 200  # the retried request finds the same case
        assert again.json()["id"] == opened["id"]
        case_id = opened["id"]
        await _case(api, case_id, status="open", version=1)

        # Nobody acknowledges it for a day: the department head has it.
        await env.sleep(timedelta(hours=25))
        row = await _case(api, case_id, escalation="department_head")
        assert [s["kind"] for s in row.steps] == ["opened", "escalated"]
        assert "24小时内未受理" in (row.steps[1]["note"] or "")
        head_queue = await api.http.get(
            "/api/complaints", params={"escalation": "department_head"}, headers=nurse
        )
        assert [c["id"] for c in head_queue.json()["items"]] == [case_id]

        too_early = await api.http.post(
            f"/api/complaints/{case_id}/resolve", json={"outcome": "已致歉"}, headers=nurse
        )
        assert too_early.status_code == 409
        assert too_early.json()["detail"] == "请先受理该投诉"
        acknowledged = await api.http.post(
            f"/api/complaints/{case_id}/acknowledge", json={"note": "已联系门诊办"}, headers=nurse
        )
        assert acknowledged.status_code == 200, acknowledged.text
        assert acknowledged.json()["status"] == "acknowledged"

        # Five working days pass without an outcome: the quality office has it.
        await env.sleep(timedelta(days=8))
        row = await _case(api, case_id, escalation="quality_office")
        office_queue = await api.http.get(
            "/api/complaints", params={"escalation": "quality_office"}, headers=office
        )
        assert [c["id"] for c in office_queue.json()["items"]] == [case_id]

        resolved = await api.http.post(
            f"/api/complaints/{case_id}/resolve",
            json={"outcome": "已向您致歉，门诊已增加下午号源并安排专人解释候诊情况。"},
            headers=office,
        )
        assert resolved.status_code == 200, resolved.text
        row = await _case(api, case_id, status="resolved")

        # The patient is told the outcome, with a link to rate it.
        async def told() -> OutboundMessage | None:
            async with api.sessions() as session:
                found = await session.exec(
                    select(OutboundMessage).where(
                        OutboundMessage.template == "complaint_outcome",
                        OutboundMessage.patient_id == patient.id,
                    )
                )
                return found.first()

        message = await eventually(told, what="the outcome message")
        assert row.case_no in message.body
        assert "/c/" in message.body

        token = link_signer(api).issue(case_id, datetime.now(UTC) + timedelta(days=1))
        page = await api.http.get(f"/c/{token}")
        assert page.status_code == 200
        assert "门诊已增加下午号源" in page.text
        assert 'name="stars"' in page.text
        refused = await api.http.post(f"/c/{token}", data={"stars": "9"})
        assert refused.status_code == 422
        rated = await api.http.post(f"/c/{token}", data={"stars": "4", "comment": "处理及时"})
        assert rated.status_code == 200, rated.text
        assert "感谢您的评价" in rated.text
        row = await _case(api, case_id, status="closed", rating_stars=4)
        assert row.rating_comment == "处理及时"
        twice = await api.http.post(f"/c/{token}", data={"stars": "5"})
        assert twice.status_code == 409
        await record_history(
            env.client.get_workflow_handle(row.workflow_id), "complaint_v1_escalated"
        )

    assert [s["kind"] for s in row.steps] == [
        "opened",
        "escalated",
        "acknowledged",
        "escalated",
        "resolved",
        "rated",
        "closed",
    ]
    async with api.sessions() as session:
        audited = (
            await session.exec(
                select(AuditEntry.action)
                .where(AuditEntry.target_id == case_id)
                .order_by(col(AuditEntry.seq))
            )
        ).all()
    assert list(audited) == [f"complaint.{s['kind']}" for s in row.steps]
    stats = await api.http.get(
        "/api/complaints/stats",
        params={
            "opened_from": (row.opened_at - timedelta(days=1)).isoformat(),
            "opened_to": (row.opened_at + timedelta(days=1)).isoformat(),
        },
        headers=office,
    )
    figures = stats.json()
    assert figures["total"] == 1
    assert figures["by_category"][0]["category"] == "waiting"
    assert figures["escalated"] == {"quality_office": 1}
    assert figures["mean_rating"] == 4
    assert figures["median_hours_to_close"] > 24 * 8


async def test_praise_closes_when_acknowledged_and_a_reassignment_restarts_the_window(
    skipping_api: Api, isolated_time_env: WorkflowEnvironment
) -> None:
    api, env = skipping_api, isolated_time_env
    patient, _ = await add_patient(api.sessions)
    nurse = {"Authorization": f"Bearer {await add_staff(api.sessions, StaffRole.NURSE)}"}
    async with running_worker(
        env.client, api.settings.temporal_task_queue, api.settings, api.sessions
    ):
        praise = await _open(api, nurse, patient.id, kind="praise", category="attitude")
        done = await api.http.post(
            f"/api/complaints/{praise['id']}/acknowledge", json={}, headers=nurse
        )
        assert done.json()["status"] == "closed"
        await _case(api, praise["id"], status="closed")

        complaint = await _open(api, nurse, patient.id)
        case_id = complaint["id"]
        await env.sleep(timedelta(hours=20))
        moved = await api.http.post(
            f"/api/complaints/{case_id}/reassign",
            json={"department_code": "orthopaedics", "reason": "涉及骨科门诊"},
            headers=nurse,
        )
        assert moved.status_code == 200, moved.text
        # 20 + 20 hours: past the first window, inside the one the reassignment opened.
        await env.sleep(timedelta(hours=20))
        row = await _case(api, case_id, department_code="orthopaedics", version=2)
        assert row.escalation == "department"
        await env.sleep(timedelta(hours=5))
        row = await _case(api, case_id, escalation="department_head")
        # Out of the cardiology nurse's scope now: the case belongs to orthopaedics.
        hidden = await api.http.get(f"/api/complaints/{case_id}", headers=nurse)
        assert hidden.status_code == 404
