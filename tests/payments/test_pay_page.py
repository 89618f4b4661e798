"""The patient's side of a payment (PAY-6), in a real browser on a phone-sized screen: the link
in the payment message, the insurance / self-pay split, the provider's cashier, and the page
again once the saga has settled the order."""

from __future__ import annotations

import re
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from contracts.payment import payment_workflow_id
from harness.browser import chromium, phone
from harness.payments import INSURED
from harness.waiting import eventually
from tests.payments.conftest import WorldFactory


async def test_the_patient_pays_the_self_pay_part_from_the_message_link(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory, tmp_path: Path
) -> None:
    async with pay_world(dev_env.client) as world, world.workers(), chromium() as browser:
        his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
        order_id = (await world.create(his_no)).json()["id"]
        await world.wait(order_id, saga="awaiting_payment")

        async def due_message() -> str | None:
            sent = await world.messages(payment_workflow_id(order_id))
            return next((m.body for m in sent if "待缴费" in m.body), None)

        sms = await eventually(due_message, what="the payment-due message")
        link = re.search(r"https?://\S+/pay/\S+", sms)
        assert link is not None, sms
        handset = await phone(browser)
        page = await handset.new_page()
        await page.goto(link.group(0))
        shown = {
            name: await page.locator(f"#{name}").inner_text()
            for name in ("amount", "insurance", "self-pay", "status")
        }
        await page.screenshot(path=str(tmp_path / "pay-due.png"), full_page=True)
        await page.locator("#pay").click()
        await page.get_by_role("button", name="确认支付").click()
        await page.locator("#result").wait_for()
        cashier = await page.locator("#result").inner_text()
        order = await world.wait(order_id, status="settled")
        await page.goto(link.group(0))
        settled = await page.locator("#status").inner_text()
        pay_button = await page.locator("#pay").count()
        await handset.close()

    # 62 yuan insurable (70% by the fund) and a 25 yuan exam. The message states what the
    # patient pays, as the page does, not the whole bill.
    assert "（自付¥43.60，医保支付¥43.40）待缴费" in sms, sms
    assert shown == {
        "amount": "¥87.00",
        "insurance": "¥43.40",
        "self-pay": "¥43.60",
        "status": "待支付",
    }
    assert cashier == "支付成功"
    assert order["self_pay_fen"] == 4360
    assert settled == "已缴费"
    assert pay_button == 0
