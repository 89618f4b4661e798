"""How late after the 2-minute deadline the system's approval reaches the HIS (RX-4):
``python -m bench.prescription_autoapproval`` (``--prescriptions 20 --deadline 120``).

Real parts: signed submissions over HTTP to the API, PostgreSQL, the Temporal dev server, a
separate worker process, and the HIS simulator recording our callbacks with its own clock.
For each prescription: (HIS received the "approved" callback) − (round start + deadline).
Prints figures; asserts nothing. Takes a little over the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import uuid
from datetime import datetime

import httpx
from sqlmodel import select

from api.container import Container
from api.main import create_app
from bench.infra import bench_infra
from core.db import transaction
from core.hospitals import HospitalConfig, PrescriptionConfig, QuietHours, ReviewPolicy
from core.logs import configure_logging
from core.models import Hospital, Prescription
from core.webhook_auth import signed_headers
from harness.prescriptions import HOSPITAL, prescription
from harness.processes import settings_env, start_process
from harness.servers import serve
from harness.settings import TEST_HIS_API_KEY, TEST_WEBHOOK_SECRET, make_settings
from harness.waiting import eventually
from integrations.his import HisClient
from simulators.his.app import HisState
from simulators.his.app import create_app as create_his


async def main(count: int, deadline: int) -> None:
    configure_logging(json=True, level="WARNING")
    async with bench_infra() as infra:
        url, sessions, temporal = infra.database_url, infra.sessions, infra.temporal
        worker = None
        try:
            config = HospitalConfig(
                quiet_hours=QuietHours(enabled=False),
                prescriptions=PrescriptionConfig(review=ReviewPolicy(deadline_seconds=deadline)),
            )
            async with transaction(sessions) as session:
                session.add(
                    Hospital(
                        code=HOSPITAL, name="静安区中心医院", config=config.model_dump(mode="json")
                    )
                )
            his_state = HisState.seeded()
            his_app = create_his(
                webhook_target="http://127.0.0.1:9",
                webhook_secret=TEST_WEBHOOK_SECRET,
                api_key=TEST_HIS_API_KEY,
                state=his_state,
            )
            async with serve(his_app) as his_url:
                settings = make_settings(
                    database_url=url,
                    temporal_task_queue="bench-rx",
                    his_base_url=his_url,
                    default_hospital_code=HOSPITAL,
                )
                env = {
                    **settings_env(settings),
                    "CAREPATH_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
                    "CAREPATH_LOG_LEVEL": "WARNING",
                }
                worker = start_process("bench-worker", ["-m", "workers.main"], env, infra.workdir)
                his = HisClient.create(his_url, TEST_HIS_API_KEY, timeout_seconds=5)
                app = create_app(
                    container=Container.build(settings, sessions, temporal.client, his)
                )
                print(
                    f"auto-approval latency, {count} prescriptions, deadline {deadline}s, "
                    "2-core box"
                )
                async with (
                    serve(app) as api_url,
                    httpx.AsyncClient(base_url=api_url, timeout=30) as http,
                ):
                    numbers = []
                    for _ in range(count):
                        body = prescription(f"RXB{uuid.uuid4().hex[:8].upper()}")
                        raw = json.dumps(body, ensure_ascii=False).encode()
                        response = await http.post(
                            "/webhooks/his/prescriptions",
                            content=raw,
                            headers=signed_headers(TEST_WEBHOOK_SECRET, raw),
                        )
                        response.raise_for_status()
                        numbers.append(body["prescription_no"])

                    def concluded() -> dict[str, datetime]:
                        return {
                            c["prescription_no"]: datetime.fromisoformat(c["received_at"])
                            for c in his_state.prescription_callbacks.values()
                            if c["event"] == "concluded"
                        }

                    async def all_concluded() -> bool:
                        return len(concluded()) == count

                    await eventually(all_concluded, within=deadline + 120, what="every conclusion")
                await his.close()
            received = concluded()
            async with sessions() as session:
                lateness = []
                for number in numbers:
                    row = (
                        await session.exec(
                            select(Prescription).where(Prescription.prescription_no == number)
                        )
                    ).one()
                    assert row.review_deadline_at is not None
                    lateness.append((received[number] - row.review_deadline_at).total_seconds())
            lateness.sort()
            print(
                f"{'system approval at the HIS':<28} n={count}  "
                f"p50={statistics.median(lateness) * 1000:7.1f}ms  "
                f"p95={lateness[int(0.95 * (count - 1))] * 1000:7.1f}ms  "
                f"max={lateness[-1] * 1000:7.1f}ms after the deadline"
            )
        finally:
            if worker is not None:
                worker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prescriptions", type=int, default=20)
    parser.add_argument("--deadline", type=int, default=120)
    args = parser.parse_args()
    asyncio.run(main(args.prescriptions, args.deadline))
