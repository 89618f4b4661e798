"""Payment sagas under random faults at every outside party: ``make bench``, or
``python -m bench.payment_faults --orders 200 --seed 7``.

Real parts: the API, PostgreSQL, the Temporal dev server and a worker (in this process), and the
HIS charging, insurance-centre and WeChat Pay simulators over loopback, each failing ~8% of calls
before acting and losing ~4% of answers after acting, with the provider dropping, repeating and
delaying notifications. Prints how many orders settled or failed, how long it took, what was
injected, and each party's books next to ours. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio

from bench.infra import bench_infra
from core.logs import configure_logging
from harness.payment_fault_run import Chaos, run_orders
from harness.payments import payment_world


async def main(count: int, seed: int, concurrency: int) -> None:
    configure_logging(json=True, level="ERROR")
    chaos = Chaos()
    async with (
        bench_infra() as infra,
        payment_world(
            infra.temporal.client, infra.sessions, infra.database_url, "bench-pay"
        ) as world,
        world.workers(),
    ):
        result = await run_orders(
            world, count, seed=seed, chaos=chaos, concurrency=concurrency, settle_within=600
        )

    books = result.books
    print(
        f"payment sagas under faults: {count} orders, seed {seed}, {concurrency} at a time, "
        f"errors {chaos.error_rate:.0%} / lost answers {chaos.lost_answer_rate:.0%} per call, "
        f"notices dropped {chaos.notice_drop_rate:.0%} / repeated {chaos.notice_duplicate_rate:.0%}"
    )
    print(
        f"  wall time             {result.seconds:8.1f} s  ({count / result.seconds:.2f} orders/s)"
    )
    print(f"  orders                {dict(result.order_status)}")
    print(f"  scenarios             {dict(result.scenarios)}")
    print(f"  why orders failed     {dict(result.failures)}")
    print(f"  refunds               {dict(result.refund_status)}")
    print(f"  faults injected       {result.injected}")
    print(f"  notices               {result.notices}, API 503s retried: {result.api_retries}")
    print(
        f"  provider net {books['provider_net_fen']:>9} fen   ours (self-pay) "
        f"{books['self_pay_net_fen']:>9} fen"
    )
    print(
        f"  insurance net {books['insurance_centre_net_fen']:>8} fen   ours (fund)     "
        f"{books['insurance_net_fen']:>9} fen"
    )
    his_net = result.his["settled_fen"] - result.his["refunded_fen"]
    print(f"  HIS net {his_net:>14} fen   ours (orders)   {books['orders_net_fen']:>9} fen")
    print(f"  books balanced        {result.balanced()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.seed, args.concurrency))
