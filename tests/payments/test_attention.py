"""The finance worklist (GET /api/payments/attention): what the sagas could not put right alone."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from harness.payments import INSURED, UNINSURED
from simulators.faults import FaultRule
from tests.payments.conftest import WorldFactory

CHARGING = "/his/api/v1/charging/orders"


async def test_failed_refunds_and_sagas_retrying_a_step_are_listed_for_people(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        paid_no = world.his_order(UNINSURED, self_pay_fen=3000)
        paid = (await world.create(paid_no, patient=UNINSURED)).json()["id"]
        await world.patient_pays(paid)
        await world.wait(paid, status="settled")
        # The HIS refuses to record the refund after the provider has paid it back.
        world.charging.faults.plan.rules.append(
            FaultRule(path_prefix=f"{CHARGING}/{paid_no}/refunds", status=409)
        )
        refund_id = (await world.refund(paid, 1000)).json()["id"]
        failed = await world.wait_refund(refund_id, "failed")

        # The HIS stops answering confirmations: the saga keeps retrying, the patient has paid.
        stuck_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
        world.charging.faults.plan.rules.append(
            FaultRule(path_prefix=f"{CHARGING}/{stuck_no}/settlements", status=503, count=10_000)
        )
        stuck = (await world.create(stuck_no)).json()["id"]
        await world.patient_pays(stuck)
        await world.wait(stuck, saga="confirming")

        now = await world.http.get(
            "/api/payments/attention", params={"stuck_minutes": 0}, headers=world.auth()
        )
        later = await world.http.get("/api/payments/attention", headers=world.auth())
        doctor = await world.http.get("/api/payments/attention", headers=world.auth(world.doctor))
        world.charging.faults.plan.rules.clear()
        await world.wait(stuck, status="settled")
        after = await world.http.get(
            "/api/payments/attention", params={"stuck_minutes": 0}, headers=world.auth()
        )

    assert "需人工处理" in (failed.failure_reason or "")
    assert failed.provider_refund_id  # the patient has the money back
    items = {item["kind"]: item for item in now.json()}
    assert set(items) == {"refund_failed", "order_stuck"}
    assert items["refund_failed"]["refund_id"] == refund_id
    assert items["refund_failed"]["amount_fen"] == 1000
    assert items["order_stuck"]["order_id"] == stuck
    assert items["order_stuck"]["status"] == "confirming"
    assert items["order_stuck"]["workflow_id"] == f"payment:{stuck}"
    # Not stuck for 30 minutes yet: only the failed refund by default.
    assert [item["kind"] for item in later.json()] == ["refund_failed"]
    assert doctor.status_code == 403
    assert [item["kind"] for item in after.json()] == ["refund_failed"]
