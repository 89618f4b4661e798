"""Online consultations (PAY-7): paid in advance, refunded automatically when no doctor accepts
in time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio.testing import WorkflowEnvironment

from contracts.payment import consultation_workflow_id
from harness.payments import INSURED, PayWorld
from harness.waiting import eventually
from tests.payments.conftest import WorldFactory


async def request(world: PayWorld, fee_fen: int = 3000) -> dict[str, str]:
    # The fee is fully insured here, so the payment needs nothing from the patient's phone and
    # the whole consultation can run on a skipping clock.
    world.charging.insurance_ratio = 1.0
    his_no = world.his_order(INSURED, kind="consultation", insurable_fen=fee_fen)
    response = await world.http.post(
        "/api/consultations",
        json={
            "his_order_no": his_no,
            "patient_id": INSURED,
            "amount_fen": fee_fen,
            "question": "胸闷两天，活动后加重，需要调整用药吗？",
            "use_insurance": True,
        },
        headers=world.auth(),
    )
    assert response.status_code == 202, response.text
    body: dict[str, str] = response.json()
    world.workflows.append(consultation_workflow_id(body["id"]))
    return body


async def wait_status(world: PayWorld, consultation_id: str, status: str) -> dict[str, str]:
    async def probe() -> dict[str, str] | None:
        response = await world.http.get(
            f"/api/consultations/{consultation_id}", headers=world.auth(world.doctor)
        )
        body: dict[str, str] = response.json()
        return body if body["status"] == status else None

    return await eventually(probe, within=60, what=f"consultation {status}")


async def test_a_consultation_no_doctor_accepts_is_cancelled_and_refunded(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory, record_history: Any
) -> None:
    # The hospital's window, shortened to seconds, on the dev server. (On the time-skipping
    # server this needs harness/time_skipping: the fee's saga ends before its "paid" message.)
    async with pay_world(dev_env.client, accept_seconds=10) as world, world.workers():
        consultation = await request(world)
        waiting = await wait_status(world, consultation["id"], "waiting_doctor")
        done = await wait_status(world, consultation["id"], "refunded")
        order = await world.order(consultation["order_id"])
        late = await world.http.post(
            f"/api/consultations/{consultation['id']}/accept", headers=world.auth(world.doctor)
        )
        handle = world.client.get_workflow_handle(consultation_workflow_id(consultation["id"]))
        await handle.result()
        await record_history(handle, "consultation_v1_lapsed")

    deadline = datetime.fromisoformat(waiting["accept_deadline_at"])
    assert deadline - datetime.fromisoformat(waiting["created_at"]) >= timedelta(seconds=10)
    assert done["refund_id"]
    assert "未在规定时间内接诊" in (done["note"] or "")
    assert order["status"] == "refunded"
    assert order["refunded_fen"] == 3000
    assert world.insurance.ledger()["net_fen"] == 0
    assert late.status_code == 409
    assert "退费" in late.json()["detail"]


async def test_a_consultation_accepted_in_time_keeps_its_fee(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        consultation = await request(world)
        await wait_status(world, consultation["id"], "waiting_doctor")
        accepted = await world.http.post(
            f"/api/consultations/{consultation['id']}/accept", headers=world.auth(world.doctor)
        )
        twice = await world.http.post(
            f"/api/consultations/{consultation['id']}/accept", headers=world.auth(world.doctor)
        )
        nurse_view = await world.http.post(
            f"/api/consultations/{consultation['id']}/accept", headers=world.auth()
        )
        order = await world.order(consultation["order_id"])

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert twice.status_code == 409
    assert nurse_view.status_code == 403
    assert order["status"] == "settled"
    assert order["refunded_fen"] == 0
