"""Refunds (PAY-5): the HIS decides what may go back and how it splits; the self-pay part goes
back through the provider and the insurance part through the HIS; partial refunds; and the bad
requests a cashier's system may send."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.testing import WorkflowEnvironment

from contracts.payment import refund_workflow_id
from harness.payments import INSURED, UNINSURED, PayWorld
from tests.payments.conftest import WorldFactory


async def settled_mixed(world: PayWorld) -> dict[str, Any]:
    his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
    order_id = (await world.create(his_no)).json()["id"]
    await world.patient_pays(order_id)
    return await world.wait(order_id, status="settled")


async def test_a_mixed_payment_is_refunded_in_full_along_both_paths(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory, record_history: Any
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        order = await settled_mixed(world)
        response = await world.refund(order["id"], 8700, reason="检查取消")
        assert response.status_code == 202, response.text
        refund = await world.wait_refund(response.json()["id"], "succeeded")
        after = await world.order(order["id"])
        books = await world.books()
        handle = world.client.get_workflow_handle(refund_workflow_id(refund.id))
        await handle.result()
        await record_history(handle, "refund_v1_mixed")

    assert (refund.insurance_fen, refund.self_pay_fen) == (4340, 4360)
    assert refund.provider_refund_id
    assert refund.his_refund_no
    assert after["status"] == "refunded"
    assert after["refunded_fen"] == 8700
    assert [e["status"] for e in after["events"] if e["status"].startswith("refund_")] == [
        "refund_checking",
        "refund_refunding",
        "refund_informing_his",
        "refund_succeeded",
    ]
    assert after["refundable_fen"] == 0
    assert world.provider.ledger()["net_fen"] == 0
    # The HIS passed the insurance part on to the insurance centre itself.
    settlement = next(iter(world.insurance.settlements.values()))
    assert settlement.refunded_fen == 4340
    assert books["insurance_centre_net_fen"] == books["insurance_net_fen"] == 0
    assert books["provider_net_fen"] == books["self_pay_net_fen"] == 0


async def test_partial_refunds_add_up_and_never_exceed_what_was_paid(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        order = await settled_mixed(world)
        first = await world.refund(order["id"], 3000, key="rf-1")
        repeat = await world.refund(order["id"], 3000, key="rf-1")  # the cashier's retry
        assert first.status_code == repeat.status_code == 202
        assert first.json()["id"] == repeat.json()["id"]
        await world.wait_refund(first.json()["id"], "succeeded")
        too_much = await world.refund(order["id"], 5701)
        second = await world.refund(order["id"], 5700)
        done = await world.wait_refund(second.json()["id"], "succeeded")
        after = await world.order(order["id"])
        books = await world.books()

    assert too_much.status_code == 422
    assert too_much.json()["detail"][0]["loc"] == ["body", "amount_fen"]
    assert "5700" in too_much.json()["detail"][0]["msg"]
    assert after["refunded_fen"] == 8700
    assert after["status"] == "refunded"
    # The last refund takes exactly what is left of each part.
    assert (done.insurance_fen or 0) + (done.self_pay_fen or 0) == 5700
    assert books["provider_net_fen"] == 0
    assert books["insurance_centre_net_fen"] == 0
    assert len(world.provider.refunds) == 2


async def test_the_his_refusing_a_refund_moves_no_money_and_frees_the_amount(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        order = await settled_mixed(world)
        world.charging.orders[order["his_order_no"]].refundable = False  # already dispensed
        response = await world.refund(order["id"], 8700)
        refund = await world.wait_refund(response.json()["id"], "rejected")
        after = await world.order(order["id"])

    assert refund.failure_reason
    assert "不能退费" in refund.failure_reason
    assert after["status"] == "settled"
    assert after["refundable_fen"] == 8700
    assert world.provider.refunds == {}


async def test_a_refund_the_provider_is_still_processing_is_followed_to_the_end(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        order_id = (
            await world.create(world.his_order(UNINSURED, self_pay_fen=3000), patient=UNINSURED)
        ).json()["id"]
        await world.patient_pays(order_id)
        await world.wait(order_id, status="settled")
        world.provider.processing_refunds = 1
        response = await world.refund(order_id, 1000)
        refund = await world.wait_refund(response.json()["id"], "succeeded")

    assert refund.self_pay_fen == 1000
    assert refund.insurance_fen == 0
    assert world.provider.ledger()["net_fen"] == 2000


async def test_bad_payment_requests_get_a_clear_4xx_and_change_nothing(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    # No faults here: a generous timeout keeps a busy test machine's slow HIS answer (a 503,
    # rightly) from standing in for the 422 this test is about.
    async with pay_world(dev_env.client, client_timeout=15.0) as world, world.workers():
        his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
        zero = await world.create(his_no, amount_fen=0)
        wrong = await world.create(his_no, amount_fen=8600)
        unknown = await world.create("SF-NO-SUCH-ORDER", amount_fen=100)
        other = await world.create(his_no, patient="P0002")
        created = await world.create(his_no, pay=False)
        again = await world.create(his_no, pay=False)
        order_id = created.json()["id"]
        refund_unpaid = await world.refund(order_id, 100)
        paid = await world.http.post(f"/api/payments/orders/{order_id}/pay", headers=world.auth())
        await world.patient_pays(order_id)
        await world.wait(order_id, status="settled")
        pay_settled = await world.http.post(
            f"/api/payments/orders/{order_id}/pay", headers=world.auth()
        )
        no_token = await world.http.post(f"/api/payments/orders/{order_id}/pay")
        negative = await world.refund(order_id, -5)
        # A client that retries after a timeout without a key would refund twice: refused.
        keyless = await world.http.post(
            f"/api/payments/orders/{order_id}/refunds",
            json={"amount_fen": 100, "reason": "重复退费"},
            headers=world.auth(),
        )
        refunds = (
            await world.http.get(f"/api/payments/orders/{order_id}", headers=world.auth())
        ).json()["refunds"]
        orders = await world.http.get(
            "/api/payments/orders", params={"status": "settled"}, headers=world.auth()
        )

    def field(response: Any) -> list[str]:
        return list(response.json()["detail"][0]["loc"])

    assert zero.status_code == 422
    assert field(zero) == ["body", "amount_fen"]
    assert wrong.status_code == 422
    assert field(wrong) == ["body", "amount_fen"]
    assert "8700" in wrong.json()["detail"][0]["msg"]
    assert unknown.status_code == 422
    assert field(unknown) == ["body", "his_order_no"]
    assert other.status_code == 422
    assert field(other) == ["body", "patient_id"]
    assert (created.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == order_id
    assert refund_unpaid.status_code == 409
    assert paid.status_code == 202
    assert pay_settled.status_code == 409
    assert no_token.status_code == 401
    assert negative.status_code == 422
    assert field(negative) == ["body", "amount_fen"]
    assert keyless.status_code == 422
    assert field(keyless) == ["header", "idempotency-key"]
    assert refunds == []
    assert [o["id"] for o in orders.json()] == [order_id]


async def test_two_cashiers_refunding_at_once_cannot_refund_more_than_was_paid(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        order = await settled_mixed(world)  # 8700 fen
        first, second = await asyncio.gather(
            world.refund(order["id"], 6000, key="desk-1"),
            world.refund(order["id"], 6000, key="desk-2"),
        )
        accepted = first if first.status_code == 202 else second
        await world.wait_refund(accepted.json()["id"], "succeeded")
        after = await world.order(order["id"])

    assert sorted([first.status_code, second.status_code]) == [202, 422]
    assert after["refunded_fen"] == 6000
    assert after["refundable_fen"] == 2700
