"""The payment saga end to end (PAY-1..PAY-4, PAY-6): the three scenarios, the insurance token
expiring mid-saga, lost and duplicated notifications, and every failure path compensated."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from tests.factories import eventually
from tests.payments.conftest import INSURED, UNINSURED, WorldFactory
from workflows.payment_contracts import payment_workflow_id


async def test_self_pay_order_is_settled_when_the_provider_notifies(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        his_no = world.his_order(UNINSURED, self_pay_fen=2500)
        created = await world.create(his_no, patient=UNINSURED)
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]
        await world.patient_pays(order_id)
        order = await world.wait(order_id, status="settled")

        assert order["scenario"] == "self_pay"
        assert (order["insurance_fen"], order["self_pay_fen"]) == (0, 2500)
        assert order["receipt_no"] and order["transaction_id"]
        assert world.charging.orders[his_no].status == "settled"
        assert world.provider.ledger()["paid_fen"] == 2500
        assert world.insurance.settlements == {}
        ledger = await world.ledger(order_id)
        assert [(e.party, e.kind, e.amount_fen) for e in ledger] == [("provider", "payment", 2500)]
        # Payment due (with the pay page link) and paid.
        wid = payment_workflow_id(order_id)

        async def two_messages() -> list[str] | None:
            sent = [m.variables["status_text"] for m in await world.messages(wid)]
            return sent if len(sent) == 2 else None

        texts = await eventually(two_messages, what="due and paid messages")
        assert any("待缴费" in t for t in texts) and any("已缴费" in t for t in texts)


async def test_pure_insurance_order_settles_without_the_provider(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        # 100% covered by the catalogue, 70% by the fund: not pure. Make the ratio 100%.
        world.charging.insurance_ratio = 1.0
        his_no = world.his_order(INSURED, insurable_fen=8800)
        order_id = (await world.create(his_no)).json()["id"]
        order = await world.wait(order_id, status="settled")

    assert order["scenario"] == "insurance"
    assert (order["insurance_fen"], order["self_pay_fen"]) == (8800, 0)
    assert world.provider.trades == {}
    assert world.insurance.ledger()["net_fen"] == 8800


async def test_mixed_order_splits_between_insurance_and_self_pay(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
        order_id = (await world.create(his_no)).json()["id"]
        await world.patient_pays(order_id)
        order = await world.wait(order_id, status="settled")
        books = await world.books()

    assert order["scenario"] == "mixed"
    # 70% of the insurable 62.00 by the fund; the rest and the uncovered item out of pocket.
    assert (order["insurance_fen"], order["self_pay_fen"]) == (4340, 4360)
    assert books["provider_net_fen"] == books["self_pay_net_fen"] == 4360
    assert books["insurance_centre_net_fen"] == books["insurance_net_fen"] == 4340
