"""Discharge webhook throughput and latency: ``make bench`` (``ARGS="--events 500"``).

Real parts end to end: signed events over HTTP to uvicorn, the HIS simulator answering patient
queries on loopback, PostgreSQL, and the Temporal dev server starting one workflow per event.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from api.container import Container
from api.main import create_app
from bench.infra import bench_infra
from core.logs import configure_logging
from core.webhook_auth import signed_headers
from harness.servers import serve
from harness.settings import TEST_HIS_API_KEY, TEST_WEBHOOK_SECRET, make_settings
from integrations.his import HisClient
from simulators.his.app import create_app as create_his_app


def _event(n: int) -> bytes:
    discharged = datetime.now(UTC) - timedelta(hours=1)
    return json.dumps(
        {
            "event_id": f"BENCH-{uuid.uuid4().hex}",
            "event_type": "discharge",
            "occurred_at": discharged.isoformat(),
            "patient_id": f"P000{1 + n % 5}",
            "encounter": {
                "encounter_id": f"BENCH-ENC-{uuid.uuid4().hex[:16]}",
                "kind": "inpatient",
                "department_code": "cardiology",
                "department_name": "心内科",
                "discharged_at": discharged.isoformat(),
            },
        }
    ).encode()


def _report(label: str, latencies: list[float], wall: float) -> None:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    print(
        f"{label:<28} n={len(ordered):<5} {len(ordered) / wall:7.1f}/s  "
        f"p50={pct(0.50):6.1f}ms  p95={pct(0.95):6.1f}ms  p99={pct(0.99):6.1f}ms  "
        f"mean={statistics.fmean(ordered) * 1000:6.1f}ms"
    )


async def _fire(
    http: httpx.AsyncClient, url: str, bodies: list[bytes], concurrency: int, expect: int
) -> tuple[list[float], float]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(body: bytes) -> None:
        async with gate:
            start = time.perf_counter()
            response = await http.post(
                url, content=body, headers=signed_headers(TEST_WEBHOOK_SECRET, body)
            )
            latencies.append(time.perf_counter() - start)
            if response.status_code != expect:
                raise RuntimeError(f"unexpected {response.status_code}: {response.text}")

    start = time.perf_counter()
    await asyncio.gather(*(one(b) for b in bodies))
    return latencies, time.perf_counter() - start


async def main(events: int, concurrency: int) -> None:
    configure_logging(json=True, level="WARNING")
    async with bench_infra() as infra:
        settings = make_settings(database_url=infra.database_url, temporal_task_queue="bench")
        his_app = create_his_app(
            webhook_target="http://127.0.0.1:9",
            webhook_secret=TEST_WEBHOOK_SECRET,
            api_key=TEST_HIS_API_KEY,
        )
        async with serve(his_app) as his_url:
            his = HisClient.create(his_url, TEST_HIS_API_KEY, timeout_seconds=5)
            container = Container.build(settings, infra.sessions, infra.temporal.client, his)
            async with (
                serve(create_app(container=container)) as api_url,
                httpx.AsyncClient(
                    timeout=60, limits=httpx.Limits(max_connections=concurrency)
                ) as http,
            ):
                webhook = f"{api_url}/webhooks/his/discharge"
                await _fire(http, webhook, [_event(i) for i in range(5)], 5, 202)  # warm-up
                bodies = [_event(i) for i in range(events)]
                print(f"discharge webhook, {events} events, concurrency {concurrency}, 2-core box")
                latencies, wall = await _fire(http, webhook, bodies, concurrency, 202)
                _report("new discharge (run started)", latencies, wall)
                latencies, wall = await _fire(http, webhook, bodies, concurrency, 200)
                _report("duplicate redelivery", latencies, wall)
            await his.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.concurrency))
