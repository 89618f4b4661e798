"""Many orders through the payment sagas while every outside party misbehaves at random; shared
by the fault test and ``bench/payment_faults.py``.

Each order is a self-pay, a pure-insurance or a mixed one; most patients pay, some never do (the
pay window closes and the saga compensates), and some settled orders are partly refunded. Every
simulator answers slowly, fails before acting, or acts and loses its answer; the provider drops,
repeats and delays its notifications. At the end every order and refund must have come to rest
and the money each party holds must agree with what our orders say.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from contracts.payment import out_trade_no
from core.models import PaymentOrder, PaymentRefund
from harness.payments import INSURED, UNINSURED, PayWorld
from harness.waiting import eventually
from simulators.faults import FaultPlan
from simulators.his.charging import ChargeItem, NewOrder
from simulators.wechatpay.app import CallbackFaults

ORDER_DONE = {"settled", "failed", "partially_refunded", "refunded"}
REFUND_DONE = {"succeeded", "failed"}


@dataclass(frozen=True)
class Chaos:
    error_rate: float = 0.08
    lost_answer_rate: float = 0.04
    latency_ms: int = 10
    latency_jitter_ms: int = 60
    notice_drop_rate: float = 0.2
    notice_duplicate_rate: float = 0.2
    notice_delay_jitter_ms: int = 1500


@dataclass(frozen=True)
class Plan:
    n: int
    scenario: str  # self_pay / insurance / mixed
    pays: bool
    refund_share: float | None  # part of a settled order to refund, if any


@dataclass
class RunResult:
    orders: int
    seconds: float
    order_status: Counter[str]
    scenarios: Counter[str]
    failures: Counter[str]
    refund_status: Counter[str]
    books: dict[str, int]
    his: dict[str, int]
    injected: dict[str, dict[str, int]]
    notices: dict[str, int] = field(default_factory=dict)
    api_retries: int = 0

    def balanced(self) -> bool:
        b = self.books
        return (
            b["provider_net_fen"] == b["self_pay_net_fen"]
            and b["insurance_centre_net_fen"] == b["insurance_net_fen"]
            and b["his_settled_orders"]
            == self.order_status["settled"]
            + self.order_status["partially_refunded"]
            + self.order_status["refunded"]
            and self.his["settled_fen"] - self.his["refunded_fen"] == b["orders_net_fen"]
        )


def plans(count: int, seed: int) -> list[Plan]:
    rng = random.Random(seed)  # a repeatable mix
    out = []
    for n in range(count):
        scenario = rng.choice(["self_pay", "insurance", "mixed"])
        pays = scenario == "insurance" or rng.random() < 0.8
        refund = rng.choice([0.3, 1.0]) if rng.random() < 0.3 else None
        out.append(Plan(n, scenario, pays, refund))
    return out


def lines(plan: Plan) -> list[ChargeItem]:
    n = plan.n
    if plan.scenario == "self_pay":
        return [ChargeItem(name="心电图检查", amount_fen=1000 + 37 * n)]
    if plan.scenario == "insurance":
        # A chronic-disease item the fund pays in full: nothing is left for the patient to pay.
        fen = 2000 + 41 * n
        return [ChargeItem(name="二甲双胍缓释片", amount_fen=fen, insurable_fen=fen, fund_ratio=1)]
    fen = 3000 + 43 * n  # 70% by the fund, the rest and the exam by the patient
    return [
        ChargeItem(name="阿托伐他汀钙片", amount_fen=fen, insurable_fen=fen),
        ChargeItem(name="血脂检查", amount_fen=500 + 7 * n),
    ]


async def _set_chaos(world: PayWorld, chaos: Chaos, seed: int) -> None:
    def plan(offset: int, hang: float) -> dict[str, Any]:
        return FaultPlan(
            seed=seed + offset,
            latency_ms=chaos.latency_ms,
            latency_jitter_ms=chaos.latency_jitter_ms,
            error_rate=chaos.error_rate,
            lost_answer_rate=chaos.lost_answer_rate,
            hang_seconds=hang,
        ).model_dump()

    callbacks = CallbackFaults(
        seed=seed,
        drop_rate=chaos.notice_drop_rate,
        duplicate_rate=chaos.notice_duplicate_rate,
        delay_jitter_ms=chaos.notice_delay_jitter_ms,
    )
    his_url = world.settings.his_base_url
    insurance_url = world.settings.insurance_base_url
    async with httpx.AsyncClient() as sim:
        for url, offset, hang in (
            (f"{his_url}/sim/charging/faults", 1, world.charging.faults.plan.hang_seconds),
            (f"{insurance_url}/sim/faults", 2, world.insurance.faults.plan.hang_seconds),
            (f"{world.provider_url}/sim/faults", 3, world.provider.faults.plan.hang_seconds),
        ):
            (await sim.put(url, json=plan(offset, hang))).raise_for_status()
        response = await sim.put(
            f"{world.provider_url}/sim/callback-faults", json=callbacks.model_dump()
        )
        response.raise_for_status()


def calm_parties(world: PayWorld) -> None:
    """Every payment-side simulator behaves again (the hold time of lost answers is kept)."""
    _calm(world)


def _calm(world: PayWorld) -> None:
    for injector in (world.charging.faults, world.insurance.faults, world.provider.faults):
        injector.replace(FaultPlan(hang_seconds=injector.plan.hang_seconds))


async def run_orders(
    world: PayWorld,
    count: int,
    *,
    seed: int = 7,
    chaos: Chaos | None = None,
    concurrency: int = 20,
    settle_within: float = 180,
    calm: bool = True,
    outage_seconds: float = 0,
    poll_every: float = 0.05,
) -> RunResult:
    """Runs ``count`` orders through the sagas under ``chaos``; returns what came of them.

    ``calm``: the simulators' faults stop once every order is at rest (off when the caller
    stops them itself). ``outage_seconds``: how long the patients' app keeps asking through an
    outage behind the API (a restarted database or Temporal server) before it gives up.
    ``poll_every``: how often a patient's app asks after its order (a long run under load
    asks less often, or its polling is most of what the API does).
    """
    await _set_chaos(world, chaos or Chaos(), seed)
    gate = asyncio.Semaphore(concurrency)
    retries = 0
    # Beyond a 503 (the HIS did not answer), any 5xx while the platform is restarting.
    retry_on = range(500, 600) if outage_seconds else range(503, 504)

    async def with_retry(call: Any) -> httpx.Response:
        # The hospital app retries with the same request (and the same idempotency key).
        nonlocal retries
        for _ in range(max(20, int(outage_seconds / 0.2))):
            try:
                response: httpx.Response = await call()
            except httpx.TransportError:
                if not outage_seconds:
                    raise
                retries += 1
                await asyncio.sleep(0.2)
                continue
            if response.status_code not in retry_on:
                return response
            retries += 1
            await asyncio.sleep(0.2)
        return response

    async def order_now(order_id: str) -> dict[str, Any]:
        return await world.order(order_id, outage_seconds=outage_seconds)

    async def one(plan: Plan) -> None:
        patient = UNINSURED if plan.scenario == "self_pay" else INSURED
        async with gate:
            his_no = world.charging.add(
                NewOrder(patient_id=patient, title="门诊缴费", items=lines(plan))
            ).order_no
            created = await with_retry(lambda: world.create(his_no, patient=patient))
            assert created.status_code in (200, 201), created.text
            order_id = created.json()["id"]
            if plan.pays and plan.scenario != "insurance":
                # The patient pays if the cashier page appears; under faults it may not before
                # the window closes, which is one more way for an order to fail.
                async def payable() -> dict[str, Any] | None:
                    order = await order_now(order_id)
                    if order["saga_status"] == "awaiting_payment" or order["status"] in ORDER_DONE:
                        return order
                    return None

                order = await eventually(
                    payable, within=settle_within, what="the cashier", interval=poll_every
                )
                if order["saga_status"] == "awaiting_payment":
                    async with httpx.AsyncClient(base_url=world.provider_url) as sim:
                        await sim.post(f"/sim/orders/{out_trade_no(order_id)}/pay")

            async def done() -> dict[str, Any] | None:
                order = await order_now(order_id)
                return order if order["status"] in ORDER_DONE else None

            order = await eventually(
                done, within=settle_within, what=f"order {plan.n} at rest", interval=poll_every
            )
            if order["status"] == "settled" and plan.refund_share is not None:
                amount = max(1, int(order["amount_fen"] * plan.refund_share))
                response = await with_retry(
                    lambda: world.refund(order_id, amount, key=f"fault-run-{plan.n}")
                )
                assert response.status_code == 202, response.text

                async def refunded() -> bool:
                    try:
                        async with world.sessions() as session:
                            row = await session.get(PaymentRefund, response.json()["id"])
                            return row is not None and row.status in REFUND_DONE
                    except (OSError, SQLAlchemyError):
                        if not outage_seconds:
                            raise
                        return False  # the database is restarting: ask again

                await eventually(
                    refunded, within=settle_within, what=f"refund {plan.n}", interval=poll_every
                )

    start = time.perf_counter()
    await asyncio.gather(*(one(p) for p in plans(count, seed)))
    seconds = time.perf_counter() - start
    if calm:
        _calm(world)
    async with world.sessions() as session:
        orders = list((await session.exec(select(PaymentOrder))).all())
        refunds = list((await session.exec(select(PaymentRefund))).all())
    return RunResult(
        orders=count,
        seconds=seconds,
        order_status=Counter(o.status for o in orders),
        scenarios=Counter(o.scenario for o in orders if o.scenario),
        failures=Counter(o.failure_reason for o in orders if o.failure_reason),
        refund_status=Counter(r.status for r in refunds),
        books=await world.books(),
        his=world.charging.ledger(),
        injected={
            "his": dict(world.charging.faults.injected),
            "insurance": dict(world.insurance.faults.injected),
            "provider": dict(world.provider.faults.injected),
        },
        notices={
            "sent": len(world.provider.notices),
            "deliveries": sum(len(n.deliveries) for n in world.provider.notices),
        },
        api_retries=retries,
    )
