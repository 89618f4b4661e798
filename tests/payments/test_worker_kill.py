"""A worker killed (SIGKILL, no goodbye) right after another party accepted our request, before
the answer reached us: the payment is charged once and the refund made once, and nothing the
saga knew is lost. Real worker processes, the dev server and the simulators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from harness.payments import INSURED, PayWorld
from harness.processes import Process, settings_env, start_process
from harness.waiting import eventually
from simulators.faults import FaultRule
from tests.payments.conftest import WorldFactory


def worker_env(world: PayWorld, env: WorkflowEnvironment) -> dict[str, str]:
    return {
        **settings_env(world.settings),
        "CAREPATH_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "CAREPATH_LOG_LEVEL": "WARNING",
    }


async def kill_when(worker: Process, accepted: Callable[[], Awaitable[bool]], what: str) -> None:
    await eventually(accepted, within=60, what=what, interval=0.01)
    worker.popen.kill()
    worker.popen.wait()


async def test_worker_killed_after_the_his_settled_but_before_we_recorded_it(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory, tmp_path: Path
) -> None:
    async with pay_world(dev_env.client) as world:
        env = worker_env(world, dev_env)
        worker = start_process("worker-1", ["-m", "workers.main"], env, tmp_path)
        try:
            his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
            order_id = (await world.create(his_no)).json()["id"]
            # The HIS confirms and then holds its answer far longer than anyone waits.
            world.charging.faults.plan.hang_seconds = 120
            world.charging.faults.plan.rules.append(
                FaultRule(
                    path_prefix=f"/his/api/v1/charging/orders/{his_no}/settlements",
                    hang_after_commit=True,
                )
            )
            await world.patient_pays(order_id)

            async def his_settled() -> bool:
                return his_no in world.charging.settlements

            await kill_when(worker, his_settled, "the HIS to confirm")
            assert (await world.order(order_id))["status"] == "paying"
            worker = start_process("worker-2", ["-m", "workers.main"], env, tmp_path)
            order = await world.wait(order_id, status="settled", within=90)
            books = await world.books()
        finally:
            worker.stop()

    assert order["receipt_no"] == world.charging.settlements[his_no].receipt_no
    assert world.provider.ledger() == {
        **world.provider.ledger(),
        "paid_trades": 1,
        "paid_fen": 4360,
        "refunds": 0,
    }
    assert len(world.insurance.settlements) == 1
    assert books["provider_net_fen"] == books["self_pay_net_fen"] == 4360
    assert books["insurance_centre_net_fen"] == books["insurance_net_fen"] == 4340


async def test_worker_killed_after_the_provider_accepted_a_refund_never_loses_it(
    dev_env: WorkflowEnvironment, pay_world: WorldFactory, tmp_path: Path
) -> None:
    async with pay_world(dev_env.client) as world:
        env = worker_env(world, dev_env)
        worker = start_process("worker-1", ["-m", "workers.main"], env, tmp_path)
        try:
            his_no = world.his_order(INSURED, insurable_fen=6200, self_pay_fen=2500)
            order_id = (await world.create(his_no)).json()["id"]
            await world.patient_pays(order_id)
            await world.wait(order_id, status="settled")
            world.provider.faults.plan.hang_seconds = 120
            world.provider.faults.plan.rules.append(
                FaultRule(
                    path_prefix="/v3/refund/domestic/refunds", method="POST", hang_after_commit=True
                )
            )
            response = await world.refund(order_id, 8700, reason="患者取消检查")
            refund_id = response.json()["id"]

            async def provider_refunded() -> bool:
                return bool(world.provider.refunds)

            await kill_when(worker, provider_refunded, "the provider to accept the refund")
            worker = start_process("worker-2", ["-m", "workers.main"], env, tmp_path)
            refund = await world.wait_refund(refund_id, "succeeded", within=90)
            order = await world.order(order_id)
            books = await world.books()
        finally:
            worker.stop()

    assert len(world.provider.refunds) == 1
    assert refund.provider_refund_id == next(iter(world.provider.refunds.values())).refund_id
    assert order["status"] == "refunded"
    assert len(world.charging.refunds) == 1
    assert books["provider_net_fen"] == books["insurance_centre_net_fen"] == 0
