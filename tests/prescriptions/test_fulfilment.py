"""After review, under time skipping: payment (refused before approval), dispatch to the service
enterprise, its statuses in their one valid order, and refunds before and after shipping."""

from __future__ import annotations

from typing import Any

import httpx
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from core.models import InboundEvent
from harness.prescriptions import prescription
from tests.prescriptions.conftest import ENTERPRISE, RxStack, RxStackFactory


async def _approved(stack: RxStack, **fields: Any) -> dict[str, Any]:
    body = prescription(**fields)
    accepted = await stack.under_review(body)
    decided = await stack.decide(accepted["prescription_id"], round=1, outcome="approve")
    assert decided.status_code == 200, decided.text
    return {**accepted, "number": body["prescription_no"]}


async def test_payment_before_the_conclusion_is_refused_then_accepted_after(
    isolated_time_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(isolated_time_env) as stack, stack.workers():
        body = prescription()
        accepted = await stack.under_review(body)
        too_early = await stack.change(
            body["prescription_no"],
            "payment",
            event_id="PAY-EVT-1",
            payment_id="PAY1",
            amount_fen=12850,
            paid_at="2026-11-23T10:00:00+08:00",
        )
        assert too_early.status_code == 409
        assert "审方通过后才能缴费" in too_early.json()["detail"]
        async with stack.sessions() as session:
            seen = await session.exec(
                select(InboundEvent).where(InboundEvent.event_id == "PAY-EVT-1")
            )
            assert seen.first() is None  # refused events are not recorded: they may come again

        await stack.decide(accepted["prescription_id"], round=1, outcome="approve")
        again = await stack.change(
            body["prescription_no"],
            "payment",
            event_id="PAY-EVT-1",
            payment_id="PAY1",
            amount_fen=12850,
            paid_at="2026-11-23T10:00:00+08:00",
        )
        assert again.status_code == 200, again.text
        assert again.json()["status"] in ("paid", "dispatched")
        redelivered = await stack.change(
            body["prescription_no"],
            "payment",
            event_id="PAY-EVT-1",
            payment_id="PAY1",
            amount_fen=12850,
            paid_at="2026-11-23T10:00:00+08:00",
        )
        assert redelivered.json()["duplicate"] is True
        state = await stack.wait_status(accepted["workflow_id"], "dispatched")

    assert state.payment is not None
    assert state.payment.payment_id == "PAY1"
    assert state.enterprise == ENTERPRISE
    [order] = stack.enterprise.orders.values()
    assert order.prescription_id == accepted["prescription_id"]
    assert order.body["content"]["decoction"] is True


async def test_delivery_statuses_flow_to_the_his_and_the_patient_in_order(
    isolated_time_env: WorkflowEnvironment,
    rx_stack: RxStackFactory,
    record_history: Any,
) -> None:
    async with rx_stack(isolated_time_env) as stack, stack.workers():
        rx = await _approved(stack)
        await stack.pay(rx["number"])
        await stack.wait_status(rx["workflow_id"], "dispatched")

        skipped = await stack.report(rx["prescription_id"], "shipped")
        assert skipped.status_code == 409
        assert "dispensing" in skipped.json()["detail"]
        for step in ("dispensing", "decocting"):
            response = await stack.report(rx["prescription_id"], step)
            assert response.status_code == 200, response.text
        # The enterprise simulator reports the rest itself, over HTTP, signed.
        async with httpx.AsyncClient(base_url=stack.enterprise_url) as sim:
            report = await sim.post(
                f"/sim/orders/{rx['prescription_id']}/advance",
                json={"status": "shipped", "tracking_no": "SF123"},
            )
            assert report.json()["status_code"] == 200, report.text
            backwards = await stack.report(rx["prescription_id"], "dispensing")
            assert backwards.status_code == 409
            await sim.post(
                f"/sim/orders/{rx['prescription_id']}/advance", json={"status": "delivered"}
            )
        result = await isolated_time_env.client.get_workflow_handle(rx["workflow_id"]).result()
        callbacks = await stack.wait_callbacks(rx["number"], 8)
        await record_history(
            isolated_time_env.client.get_workflow_handle(rx["workflow_id"]),
            "prescription_v2_delivered",
        )
        # The list and the statistics speak one vocabulary: "completed" is delivered or
        # picked up in both, and a word neither knows is refused with the ones they do.
        completed = await stack.http.get(
            "/api/prescriptions", params={"status": "completed"}, headers=stack.auth()
        )
        stats = await stack.http.get(
            "/api/prescriptions/stats", params={"by": "hospital"}, headers=stack.auth()
        )
        unknown = await stack.http.get(
            "/api/prescriptions", params={"status": "finished"}, headers=stack.auth()
        )

    assert [p["prescription_no"] for p in completed.json()["items"]] == [rx["number"]]
    assert [row["completed"] for row in stats.json()] == [1]
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["query", "status"]
    assert "'completed'" in unknown.json()["detail"][0]["msg"]
    assert "'picked_up'" in unknown.json()["detail"][0]["msg"]
    assert result["status"] == "delivered"
    assert result["tracking_no"] == "SF123"
    assert [c["status"] for c in callbacks] == [
        "reviewing",
        "approved",
        "paid",
        "dispatched",
        "dispensing",
        "decocting",
        "shipped",
        "delivered",
    ]
    events = [(c["seq"]) for c in callbacks]
    assert events == sorted(events)


async def test_refund_before_shipping_cancels_the_order(
    isolated_time_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(isolated_time_env) as stack, stack.workers():
        rx = await _approved(stack)
        await stack.pay(rx["number"])
        await stack.wait_status(rx["workflow_id"], "dispatched")
        assert (await stack.report(rx["prescription_id"], "dispensing")).status_code == 200
        refunded = await stack.change(
            rx["number"], "refund", refund_id="RF1", reason="患者要求退药"
        )
        assert refunded.status_code == 200, refunded.text
        assert refunded.json()["status"] == "refunded"
        result = await isolated_time_env.client.get_workflow_handle(rx["workflow_id"]).result()
        late_report = await stack.report(rx["prescription_id"], "decocting")

    assert result["status"] == "refunded"
    assert result["refund"]["reason"] == "患者要求退药"
    [order] = stack.enterprise.orders.values()
    assert order.cancelled == "患者要求退药"
    row = await stack.row(rx["prescription_id"])
    assert (row.status, row.refund_reason) == ("refunded", "患者要求退药")
    assert late_report.status_code == 409


async def test_refund_after_shipping_is_refused(
    isolated_time_env: WorkflowEnvironment, rx_stack: RxStackFactory
) -> None:
    async with rx_stack(isolated_time_env) as stack, stack.workers():
        rx = await _approved(stack, decoction=False)
        await stack.pay(rx["number"])
        await stack.wait_status(rx["workflow_id"], "dispatched")
        for step in ("dispensing", "shipped"):
            reported = await stack.report(rx["prescription_id"], step, tracking_no="SF9")
            assert reported.status_code == 200, reported.text
        refused = await stack.change(rx["number"], "refund", refund_id="RF2", reason="不想要了")
        state = await stack.state(rx["workflow_id"])

    assert refused.status_code == 409
    assert "shipped" in refused.json()["detail"]
    assert state.status == "shipped"
    assert state.refund is None
