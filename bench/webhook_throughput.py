"""Discharge webhook throughput and latency: ``make bench`` (``ARGS="--events 500"``).

Real parts end to end, as production runs them: signed events over HTTP to the API's processes
(``api.serve``, one per core), the HIS simulator in a process of its own answering patient
queries on loopback, PostgreSQL, and Temporal starting the runs each event enrols the patient in
(a cardiology discharge starts two); one patient per event, as a ward's discharges are, unless
``--patients`` says fewer. Then the same number of bare workflow starts from one client at the
same concurrency, and the ratio of runs started per second through the webhook to it
(issue 15 goal 2: ≥ 0.8). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.converter import decode_typed_search_attributes

from bench.cpu_split import CpuSplit
from bench.infra import bench_infra, process_env
from core.logs import configure_logging
from core.webhook_auth import signed_headers
from harness.postgres import free_port
from harness.processes import api_ready, start_api, start_process
from harness.settings import TEST_WEBHOOK_SECRET, make_settings
from harness.waiting import answers_ok, eventually

SEEDED = 5  # the HIS simulator's own patients, P0001 to P0005


def _patient_id(n: int, patients: int) -> str:
    n %= patients
    return f"P000{1 + n}" if n < SEEDED else f"PB{n:06d}"


async def _add_patients(his: httpx.AsyncClient, patients: int) -> None:
    """Patients beyond the simulator's five, like them in age and sex (cardiology's pathways
    choose by both); names and numbers are made up."""
    seeded = (await his.get("/sim/patients")).json()
    for n in range(SEEDED, patients):
        like = seeded[n % SEEDED]
        added = await his.post(
            "/sim/patients",
            json={
                **like,
                "patient_id": _patient_id(n, patients),
                "name": f"测试{n}",
                "phone": f"139{n:08d}",
                "id_number": None,
            },
        )
        added.raise_for_status()


def _event(n: int, patients: int) -> bytes:
    discharged = datetime.now(UTC) - timedelta(hours=1)
    return json.dumps(
        {
            "event_id": f"BENCH-{uuid.uuid4().hex}",
            "event_type": "discharge",
            "occurred_at": discharged.isoformat(),
            "patient_id": _patient_id(n, patients),
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
) -> tuple[list[float], float, list[str]]:
    """Posts every body, ``concurrency`` at a time: latencies, wall time, the runs' workflow ids."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    runs: list[str] = []

    async def one(body: bytes) -> None:
        async with gate:
            start = time.perf_counter()
            response = await http.post(
                url, content=body, headers=signed_headers(TEST_WEBHOOK_SECRET, body)
            )
            latencies.append(time.perf_counter() - start)
            if response.status_code != expect:
                raise RuntimeError(f"unexpected {response.status_code}: {response.text}")
            runs.extend(run["workflow_id"] for run in response.json().get("runs", []))

    start = time.perf_counter()
    await asyncio.gather(*(one(b) for b in bodies))
    return latencies, time.perf_counter() - start, runs


@dataclass(frozen=True)
class _Start:
    workflow: str
    input: Any
    attributes: TypedSearchAttributes


async def _as_started(client: Client, workflow_ids: list[str]) -> list[_Start]:
    """What starting these runs gave Temporal: each one's workflow type, input and search
    attributes, read back from its history."""
    starts = []
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        (run_input,) = client.data_converter.payload_converter.from_payloads(
            list(started.input.payloads)
        )
        starts.append(
            _Start(
                started.workflow_type.name,
                run_input,
                decode_typed_search_attributes(started.search_attributes),
            )
        )
    return starts


async def _raw_starts(
    client: Client, count: int, concurrency: int, like: list[_Start] | None = None
) -> tuple[list[float], float]:
    """The same server's own rate: bare workflow starts from one client at the same
    concurrency, on a task queue no worker polls (nothing else competes). ``like``: starts of
    those workflows' types, with their inputs and search attributes, under new ids and the
    webhook's id policies; else a workflow type with a number for input and nothing more."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(n: int) -> None:
        async with gate:
            start = time.perf_counter()
            if like:
                copy = like[n % len(like)]
                await client.start_workflow(
                    copy.workflow,
                    copy.input,
                    id=f"raw-start-{uuid.uuid4().hex}",
                    task_queue="bench-raw-starts",
                    search_attributes=copy.attributes,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            else:
                await client.start_workflow(
                    "RawStart", n, id=f"raw-start-{uuid.uuid4().hex}", task_queue="bench-raw-starts"
                )
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return latencies, time.perf_counter() - start


async def main(events: int, concurrency: int, processes: int, patients: int) -> None:
    configure_logging(json=True, level="WARNING")
    async with bench_infra() as infra:
        api_port, his_port = free_port(), free_port()
        settings = make_settings(
            database_url=infra.database_url,
            temporal_task_queue="bench",
            his_base_url=f"http://127.0.0.1:{his_port}",
        )
        env = process_env(infra, settings)
        his = start_process("bench-his-sim", ["-m", "simulators.his"], env, infra.workdir)
        # The API publishes the shipped pathways as it starts: without them an event enrols
        # nobody and starts nothing.
        api = start_api(env, infra.workdir, api_port, processes)
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{api_port}",
                timeout=60,
                limits=httpx.Limits(max_connections=concurrency),
            ) as http:
                await api_ready(http)
                await eventually(
                    lambda: answers_ok(http, f"http://127.0.0.1:{his_port}/sim/patients"),
                    within=30,
                    what="the HIS simulator",
                )
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{his_port}") as his_sim:
                    await _add_patients(his_sim, patients)
                webhook = "/webhooks/his/discharge"
                warm_up = [_event(i, SEEDED) for i in range(SEEDED)]
                await _fire(http, webhook, warm_up, SEEDED, 202)
                bodies = [_event(i, patients) for i in range(events)]
                print(
                    f"discharge webhook, {events} events for {patients} patients, concurrency "
                    f"{concurrency}, {processes} API process(es) on {os.cpu_count()} cores"
                )
                split = CpuSplit.start()
                latencies, wall, started = await _fire(http, webhook, bodies, concurrency, 202)
                runs = len(started)
                _report("new discharge (run started)", latencies, wall)
                print(f"  {split.report(runs, 'run started')}")
                latencies, wall_again, again = await _fire(http, webhook, bodies, concurrency, 200)
                _report("duplicate redelivery", latencies, wall_again)
                client = infra.temporal.client
                split = CpuSplit.start()
                raw, raw_wall = await _raw_starts(client, runs, concurrency)
                _report("raw workflow start", raw, raw_wall)
                print(f"  {split.report(runs, 'run started')}")
                # Temporal's own share of a run started through the webhook: the same starts with
                # nothing of ours around them (one event's runs, one of each pathway, repeated).
                like = await _as_started(client, started[:SEEDED])
                split = CpuSplit.start()
                bare, bare_wall = await _raw_starts(client, runs, concurrency, like)
                _report("bare start of the same runs", bare, bare_wall)
                print(f"  {split.report(runs, 'run started')}")
                per_run, raw_rate = runs / wall, len(raw) / raw_wall
                print(
                    f"  runs started through the webhook {runs} for {events} events "
                    f"({per_run:.1f}/s; the redelivery answered with the same {len(again)}); raw "
                    f"starts {raw_rate:.1f}/s: ratio {per_run / raw_rate:.2f} (goal ≥ 0.8); bare "
                    f"starts of the same runs (their inputs and search attributes) "
                    f"{len(bare) / bare_wall:.1f}/s, ratio to raw "
                    f"{len(bare) / bare_wall / raw_rate:.2f}"
                )
        except httpx.TransportError:
            print(api.tail(), his.tail())
            raise
        finally:
            api.stop()
            his.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="API's")
    parser.add_argument(
        "--patients",
        type=int,
        help="discharged patients, events spread evenly (default: one per event, as a ward's "
        f"discharges are; {SEEDED} puts many events on each patient at once)",
    )
    args = parser.parse_args()
    patients = max(1, args.patients or args.events)
    asyncio.run(main(args.events, args.concurrency, args.processes, patients))
