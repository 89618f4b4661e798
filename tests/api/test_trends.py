"""One patient's numbers over time (FORM-4), for staff as a series and an SVG chart and for the
patient on the page after they submit: read from every submitted form of theirs, with the form
version each run pinned, abnormal values marked; outside the caller's scope it is not there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from sqlmodel import select

from core.db import transaction
from core.models import AuditEntry, CareTask, FormResponse, StaffRole
from harness.staff import add_staff
from tests.api.conftest import FormTask, add_task
from tests.api.test_uploads import ANSWERS, SIGNATURE

T0 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


async def _earlier_answers(form_task: FormTask, pains: list[str]) -> str:
    """Earlier submissions of the demo form by the same patient, a day apart."""
    api = form_task.api
    async with api.sessions() as session:
        task = await session.get(CareTask, form_task.task_id)
        assert task is not None
    for day, pain in enumerate(pains):
        other = await add_task(api, task.workflow_id, task.patient_id, f"earlier-{day}")
        async with transaction(api.sessions) as session:
            session.add(
                FormResponse(
                    task_id=other,
                    workflow_id=task.workflow_id,
                    form_id="all-question-types",
                    answers={"pain": [pain], "overall": ["good"]},
                    submitted_at=T0 + timedelta(days=day),
                )
            )
    return task.patient_id


async def test_staff_read_a_series_and_its_chart(form_task: FormTask) -> None:
    api = form_task.api
    patient_id = await _earlier_answers(form_task, ["3", "8", "5"])
    token = await add_staff(api.sessions, StaffRole.NURSE, department_code="cardiology")
    headers = {"Authorization": f"Bearer {token}"}

    listed = await api.http.get(f"/api/patients/{patient_id}/trends", headers=headers)
    assert listed.status_code == 200, listed.text
    [pain] = listed.json()
    assert (pain["name"], pain["label"]) == (
        "pain",
        "您目前的疼痛程度是几分？（0分无痛，10分最痛）",
    )
    assert pain["limits"] == [[7, "≥7 异常"]]
    assert [(p["value"], p["abnormal"]) for p in pain["points"]] == [
        (3, False),
        (8, True),
        (5, False),
    ]

    chart = await api.http.get(f"/api/patients/{patient_id}/trends/pain/chart", headers=headers)
    assert chart.status_code == 200
    assert chart.headers["content-type"] == "image/svg+xml"
    circles = ElementTree.fromstring(chart.text).findall(f"{SVG}circle")
    assert len(circles) == 3
    missing = await api.http.get(
        f"/api/patients/{patient_id}/trends/temperature/chart", headers=headers
    )
    assert missing.status_code == 404

    elsewhere = await add_staff(api.sessions, StaffRole.NURSE, department_code="orthopaedics")
    hidden = await api.http.get(
        f"/api/patients/{patient_id}/trends", headers={"Authorization": f"Bearer {elsewhere}"}
    )
    assert hidden.status_code == 404
    async with api.sessions() as session:
        viewed = (
            await session.exec(
                select(AuditEntry).where(AuditEntry.action == "patient.trends_viewed")
            )
        ).all()
    assert len(viewed) == 3  # each read in scope (the list and two charts), not the hidden one


async def test_the_patient_sees_their_numbers_after_submitting(form_task: FormTask) -> None:
    await _earlier_answers(form_task, ["6", "4"])
    signature = await form_task.upload("signature", SIGNATURE, "image/png")
    sent = await form_task.api.http.post(
        form_task.path, data={**ANSWERS, "signature": signature.json()["reference"]}
    )
    assert sent.status_code == 200, sent.text
    assert "提交成功" in sent.text
    assert "您的记录变化" in sent.text
    figure = sent.text.split('<figure class="trend">', 1)[1].split("</figure>", 1)[0]
    root = ElementTree.fromstring(figure)
    # The two earlier answers and this one (2).
    assert [
        c.findtext(f"{SVG}title", "").rsplit("：", 1)[1] for c in root.findall(f"{SVG}circle")
    ] == [
        "6",
        "4",
        "2",
    ]
