"""The whole exam process under time skipping (PX-8): the personalised list drawn from the
patient's questionnaires, the doctor's review deadline passing, the booking at the vendor with
the required items only, the guide, results with an item held until staff map it, the report,
and the abnormal results opening the exam follow-up plan and alerting the doctors. A report
that never comes alerts them too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from core.models import Alert, ExamBooking, OutboundMessage, PathwayRun
from harness.waiting import eventually
from harness.workers import running_worker
from tests.exams.conftest import ExamStack


async def _booking(stack: ExamStack, booking_id: str, **expected: Any) -> ExamBooking:
    async def probe() -> ExamBooking | None:
        async with stack.api.sessions() as session:
            row = await session.get(ExamBooking, booking_id)
        if row is None or any(getattr(row, k) != v for k, v in expected.items()):
            return None
        return row

    return await eventually(probe, what=f"exam booking {expected}")


async def _alerts(stack: ExamStack, workflow_id: str) -> dict[str, str]:
    async with stack.api.sessions() as session:
        rows = (await session.exec(select(Alert).where(Alert.workflow_id == workflow_id))).all()
    return {a.kind: a.summary for a in rows}


async def test_an_exam_from_request_to_the_follow_up_of_its_abnormal_results(
    skipping_exam_stack: ExamStack, isolated_time_env: WorkflowEnvironment, record_history: Any
) -> None:
    stack, env = skipping_exam_stack, isolated_time_env
    zhang = await stack.patient()
    assert (await stack.bind(zhang)).status_code == 201
    await stack.answered(zhang, "phq-9", {"phq9": 12})
    await stack.answered(zhang, "diabetes-assessment", {"fasting_glucose": 7.4})
    day = datetime.now(UTC).astimezone(stack.api.settings.tz).date() + timedelta(days=3)
    settings = stack.api.settings
    async with running_worker(
        env.client, settings.temporal_task_queue, settings, stack.api.sessions
    ):
        asked = await stack.api.http.post(
            "/api/exams/bookings",
            json={"patient_id": zhang.id, "exam_date": day.isoformat()},
            headers=stack.auth(),
        )
        assert asked.status_code == 201, asked.text
        booking = asked.json()
        listed = {i["code"]: i for i in booking["listed"]}
        # The questionnaires speak: a high glucose adds HbA1c (required), PHQ-9 ≥ 10 offers
        # a mental-health assessment, age 70 offers the cancer screenings.
        assert listed["HBA1C"]["required"]
        assert listed["HBA1C"]["reason"] == "糖尿病自评提示血糖偏高"
        assert not listed["PSY"]["required"]
        assert not listed["GASTROSCOPY"]["required"]
        assert "BMD" not in listed  # for women over 50 only

        # Nobody reviews within 24 hours: booked with the required items, the doctors told.
        await env.sleep(timedelta(hours=24, minutes=1))
        row = await _booking(stack, booking["id"], status="booked")
        assert row.exam_no is not None
        assert row.reviewed_by == "system"
        booked = {i["code"] for i in row.booked_items}
        assert booked == {code for code, item in listed.items() if item["required"]}
        [vendor_booking] = (await stack.sim.get("/sim/bookings")).json()
        assert vendor_booking["exam_no"] == row.exam_no
        assert {i["name"] for i in vendor_booking["items"]} == {
            item["name"] for item in listed.values() if item["required"]
        }
        alerts = await _alerts(stack, row.workflow_id)
        assert (
            alerts["exam_review_overdue"]
            == "医生未在审核时限内确认个性化体检清单，已按必选项目预约"
        )
        late = await stack.api.http.post(
            f"/api/exams/bookings/{row.id}/review",
            json={"ticked": ["PSY"]},
            headers=stack.auth("doctor"),
        )
        assert late.status_code == 409

        # The vendor's guide reaches the patient; its results hold one unknown item.
        guided = await stack.push("guide", booking_id=row.id)
        assert guided["answers"][-1]["status_code"] == 200, guided
        results = await stack.push("results", booking_id=row.id)
        assert results["answers"][-1]["response"]["code"] == "501"
        assert results["answers"][-1]["response"]["message"] == "无法匹配项目。骨密度检测"
        mapped = await stack.api.http.post(
            "/api/exams/mappings",
            json={"vendor_code": "V-XYZ", "standard_code": "BMD"},
            headers=stack.auth("care_manager"),
        )
        assert mapped.json()["resaved_exams"] == [row.exam_no]
        reported = await stack.push("report", booking_id=row.id)
        assert reported["answers"][-1]["response"]["code"] == "0"

        closed = await _booking(stack, row.id, status="closed")
        assert closed.followup_workflow_id is not None

        async def followed() -> PathwayRun | None:
            async with stack.api.sessions() as session:
                return await session.get(PathwayRun, closed.followup_workflow_id)

        run = await eventually(followed, what="the exam follow-up run")
        await record_history(env.client.get_workflow_handle(row.workflow_id), "exam_v1_followup")
    assert run.plan_id == "exam-followup"
    assert "空腹血糖" in closed.abnormal_items
    assert "骨密度" in closed.abnormal_items
    alerts = await _alerts(stack, row.workflow_id)
    assert alerts["exam_abnormal"].startswith("体检报告提示异常：")
    assert alerts["exam_abnormal"].endswith("，已开启体检异常结果随访")
    async with stack.api.sessions() as session:
        [guide] = (
            await session.exec(
                select(OutboundMessage).where(OutboundMessage.template == "exam_guide")
            )
        ).all()
    assert guide.patient_id == zhang.id
    detail = (
        await stack.api.http.get(f"/api/exams/bookings/{row.id}", headers=stack.auth())
    ).json()
    by_code = {r["standard_code"]: r for r in detail["results"]}
    assert by_code["BMD"]["name"] == "骨密度"
    assert by_code["GLU"]["abnormal"]


async def test_a_report_that_never_comes_alerts_the_doctors(
    skipping_exam_stack: ExamStack, isolated_time_env: WorkflowEnvironment
) -> None:
    stack, env = skipping_exam_stack, isolated_time_env
    zhang = await stack.patient()
    assert (await stack.bind(zhang)).status_code == 201
    # The exam's date in the hospital's calendar, pushed and alerted as the same day at any hour.
    settings = stack.api.settings
    day = (datetime.now(UTC) + timedelta(days=2)).astimezone(settings.tz).date()
    async with running_worker(
        env.client, settings.temporal_task_queue, settings, stack.api.sessions
    ):
        # Booked at the vendor's own desk: the platform learns of it from the guide.
        guided = await stack.push(
            "guide",
            exam_no="TJ-DESK-1",
            account_no="TJ000101",
            customer={"name": "张建国", "sex": "1", "birth_date": "19560312"},
            exam_date=f"{day:%Y%m%d}",
        )
        assert guided["answers"][-1]["status_code"] == 200
        async with stack.api.sessions() as session:
            row = (await session.exec(select(ExamBooking))).one()
        await env.sleep(timedelta(days=33))
        closed = await _booking(stack, row.id, status="closed")
    alerts = await _alerts(stack, closed.workflow_id)
    assert alerts["exam_no_report"] == (
        f"体检（{day:%Y-%m-%d}）已超过30天未收到体检报告，请联系体检中心"
    )
