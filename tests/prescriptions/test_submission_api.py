"""Submissions and the staff API on the dev server: bad input named and nothing written, the
pharmacist's queue, statistics, and the 2-minute rule in real time (with a 2-second deadline)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import SQLModel, func, select
from temporalio.testing import WorkflowEnvironment

from core.models import StaffRole
from core.webhook_auth import signed_headers
from harness.prescriptions import UNSAFE_ITEMS, prescription
from harness.settings import TEST_ENTERPRISE_SECRET
from harness.staff import add_staff
from harness.waiting import eventually
from tests.factories import BEIJING
from tests.prescriptions.conftest import ENTERPRISE, RxStack, RxStackFactory


async def _counts(stack: RxStack) -> dict[str, int]:
    result = {}
    async with stack.sessions() as session:
        for name, table in SQLModel.metadata.tables.items():
            result[name] = int((await session.exec(select(func.count()).select_from(table))).one())
    return result


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"items": [{"herb": "当归", "dose_g": -3}]}, ["body", "items", 0, "dose_g"]),
        ({"items": [{"herb": "当归", "dose_g": 600}]}, ["body", "items", 0, "dose_g"]),
        ({"items": [{"herb": "当归", "dose_g": 6, "processing": "油炸"}]},
         ["body", "items", 0, "processing"]),
        ({"items": []}, ["body", "items"]),
        ({"doses": 0}, ["body", "doses"]),
        ({"delivery": {"mode": "delivery"}}, ["body", "delivery"]),
        ({"prescription_no": "RX 1/../2"}, ["body", "prescription_no"]),
    ],
)  # fmt: skip
async def test_bad_prescriptions_are_refused_naming_the_field(
    dev_env: WorkflowEnvironment, rx_stack: RxStackFactory, change: dict[str, Any], loc: list[Any]
) -> None:
    async with rx_stack(dev_env) as stack:
        before = await _counts(stack)
        response = await stack.submit({**prescription(), **change})
        after = await _counts(stack)

    assert response.status_code == 422, response.text
    assert loc in [e["loc"] for e in response.json()["detail"]]
    assert after == before


async def test_unknown_herbs_duplicates_and_refusals(
    dev_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(dev_env) as stack, stack.workers():
        body = prescription(items=[{"herb": "当归", "dose_g": 6}, {"herb": "龙鳞草", "dose_g": 3}])
        first = await stack.submit(body)
        again = await stack.submit(body)
        resubmitted = await stack.submit({**body, "event_id": "EVT-NEW"})
        stranger = await stack.submit(prescription(patient_id="P-NOBODY"))
        raw = json.dumps(prescription()).encode()
        forged = await stack.http.post(
            "/webhooks/his/prescriptions",
            content=raw,
            headers=signed_headers("not-the-secret", raw),
        )

    assert first.status_code == 202
    assert [f["code"] for f in first.json()["findings"]] == ["unknown_herb"]
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["prescription_id"] == first.json()["prescription_id"]
    assert resubmitted.status_code == 409
    assert "revision" in resubmitted.json()["detail"]
    assert stranger.status_code == 404
    assert forged.status_code == 401


async def test_enterprise_reports_are_authenticated_and_scoped(
    dev_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(dev_env) as stack, stack.workers():
        accepted = (await stack.submit(prescription())).json()
        body = json.dumps(
            {
                "event_id": "E1",
                "prescription_id": accepted["prescription_id"],
                "status": "dispensing",
                "at": "2026-11-23T10:00:00+08:00",
            }
        ).encode()
        url = f"/webhooks/enterprise/{ENTERPRISE}/status"
        forged = await stack.http.post(url, content=body, headers=signed_headers("guess", body))
        not_dispatched = await stack.http.post(
            url, content=body, headers=signed_headers(TEST_ENTERPRISE_SECRET, body)
        )
        other = await stack.http.post(
            "/webhooks/enterprise/ENT-OTHER/status",
            content=body,
            headers=signed_headers(TEST_ENTERPRISE_SECRET, body),
        )

    assert forged.status_code == 401
    assert not_dispatched.status_code == 404
    assert other.status_code == 404


async def test_queue_oldest_first_and_statistics(
    dev_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(dev_env, deadline_seconds=3600) as stack, stack.workers():
        first_day = datetime.now(BEIJING).date()
        made = []
        for doctor, department, items in (
            ("D1", "tcm", UNSAFE_ITEMS),
            ("D1", "tcm", None),
            ("D2", "gyn", None),
        ):
            body = prescription(doctor_id=doctor, department_code=department, items=items)
            made.append((await stack.submit(body)).json())
            await stack.wait_callbacks(body["prescription_no"], 1)
        queue = await stack.http.get("/api/prescriptions/review-queue", headers=stack.auth())
        assert [q["id"] for q in queue.json()] == [m["prescription_id"] for m in made]
        assert queue.json()[0]["findings"][0]["code"] == "eighteen_antagonism"
        assert all(0 < q["seconds_left"] <= 3600 for q in queue.json())

        await stack.decide(made[0]["prescription_id"], round=1, outcome="reject", reason="十八反")
        await stack.decide(made[1]["prescription_id"], round=1, outcome="approve")
        await stack.wait_status(made[1]["workflow_id"], "approved")
        await stack.wait_status(made[0]["workflow_id"], "returned")
        # Statistics read the projection, which follows the workflow a moment later.
        for made_one, status in ((made[1], "approved"), (made[0], "returned")):

            async def projected(made_one: dict[str, Any] = made_one, status: str = status) -> bool:
                return (await stack.row(made_one["prescription_id"])).status == status

            await eventually(projected, what=f"the projection to hold {status}")

        by_doctor = (
            await stack.http.get("/api/prescriptions/stats?by=doctor", headers=stack.auth())
        ).json()
        by_day = (await stack.http.get("/api/prescriptions/stats", headers=stack.auth())).json()
        last_day = datetime.now(BEIJING).date()
        nurse = await add_staff(stack.sessions, StaffRole.NURSE, "tcm")
        forbidden = await stack.http.get(
            "/api/prescriptions/review-queue", headers=stack.auth(nurse)
        )

    rows = {r["key"]: r for r in by_doctor}
    assert rows["D1"]["submitted"] == 2
    assert rows["D1"]["approved_by_pharmacist"] == 1
    assert rows["D1"]["returned"] == 1
    assert rows["D2"]["reviewing"] == 1
    assert rows["D1"]["avg_review_seconds"] is not None
    # By Beijing day: one day, or two if the submissions straddled midnight.
    assert sum(day["submitted"] for day in by_day) == 3
    assert {day["key"] for day in by_day} <= {str(first_day), str(last_day)}
    assert forbidden.status_code == 403


async def test_auto_approval_reaches_the_his_within_two_seconds_of_the_deadline(
    dev_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    deadline = 2
    async with rx_stack(dev_env, deadline_seconds=deadline) as stack, stack.workers():
        body = prescription()
        accepted = (await stack.submit(body)).json()
        callbacks = await stack.wait_callbacks(body["prescription_no"], 2, within=30)
        state = await stack.state(accepted["workflow_id"])

    concluded = callbacks[1]
    assert (concluded["event"], concluded["status"], concluded["reviewer"]) == (
        "concluded",
        "approved",
        "system",
    )
    review = state.rounds[0]
    assert review.conclusion is not None
    assert review.conclusion.at == review.deadline_at
    received = datetime.fromisoformat(concluded["received_at"])
    late = received - review.deadline_at
    assert timedelta(0) <= late < timedelta(seconds=2), late
