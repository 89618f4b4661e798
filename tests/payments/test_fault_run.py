"""Forty orders while the HIS, the insurance centre and the provider all misbehave at random:
nothing is left half-done and the books of all three parties agree with ours."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from harness.payment_fault_run import run_orders
from tests.payments.conftest import WorldFactory


async def test_random_faults_everywhere_leave_the_books_balanced(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory
) -> None:
    async with pay_world(dev_env.client) as world, world.workers():
        result = await run_orders(world, 40, seed=11)

    injected = sum(sum(kinds.values()) for kinds in result.injected.values())
    assert injected >= 10, result.injected  # the run really was faulty
    assert sum(result.order_status.values()) == 40
    assert set(result.order_status) <= {"settled", "failed", "partially_refunded", "refunded"}
    assert result.order_status["failed"] >= 1  # the patients who never paid
    assert result.order_status["settled"] + result.order_status["partially_refunded"] >= 20
    assert set(result.scenarios) == {"self_pay", "insurance", "mixed"}
    assert set(result.refund_status) <= {"succeeded"}, result.refund_status
    assert result.balanced(), (result.books, result.his)
