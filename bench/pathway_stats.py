"""Per-plan statistics over 100,000 tasks (FU-7, ED-2, SAT; issue 15, goal 5: p95 < 200 ms):
``python -m bench.pathway_stats`` (``--runs 33334 --repeat 50``).

Real PostgreSQL with the real migrations; ``--runs`` runs of the inpatient follow-up plan with
their three task rows each, in realistic states, are written directly, then
GET /api/pathways/{id}/stats is timed through the real API (one aggregate query). Prints figures
and the ratio to the goal; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from api.container import Container
from api.main import create_app
from bench.infra import bench_infra, settle
from core.db import transaction
from core.logs import configure_logging
from core.models import CareTask, PathwayRun, Patient, StaffRole, new_id
from harness.settings import make_settings
from integrations.his import HisClient
from services.staff import create_staff

STATUSES = (
    ["completed"] * 55
    + ["abnormal"] * 10
    + ["lost"] * 12
    + ["sent"] * 8
    + ["pending"] * 10
    + ["not_needed"] * 3
    + ["failed"] * 2
)


async def main(runs: int, repeat: int) -> None:
    configure_logging(json=True, level="WARNING")
    async with bench_infra() as infra:
        sessions, temporal = infra.sessions, infra.temporal
        settings = make_settings(database_url=infra.database_url)
        his = HisClient.create("http://127.0.0.1:9", "unused", timeout_seconds=1)
        container = Container.build(settings, sessions, temporal.client, his)
        await container.sync_library()
        random.seed(7)
        now = datetime.now(UTC)
        async with transaction(sessions) as session:
            _, token = await create_staff(
                session, name="统计", role=StaffRole.ADMIN, department_code=None
            )
            for n in range(runs):
                patient = Patient(
                    id=new_id(), his_patient_id=f"S{n:05d}", name=f"患者{n}", phone=f"139{n:08d}"
                )
                session.add(patient)
                await session.flush()
                workflow_id = f"pathway:inpatient-discharge:S{n:05d}:E{n}"
                anchor = now - timedelta(days=random.randint(0, 60))
                session.add(
                    PathwayRun(
                        workflow_id=workflow_id,
                        plan_id="inpatient-discharge",
                        plan_version=1,
                        patient_id=patient.id,
                        department_code=random.choice(["cardiology", "ortho"]),
                        anchor_at=anchor,
                        kind="followup",
                    )
                )
                await session.flush()
                for step, day in (("day3", 3), ("day7", 7), ("day30", 30)):
                    status = random.choice(STATUSES)
                    session.add(
                        CareTask(
                            id=str(uuid.uuid4()),
                            workflow_id=workflow_id,
                            step_id=step,
                            patient_id=patient.id,
                            plan_id="inpatient-discharge",
                            department_code="cardiology",
                            title=step,
                            form_id="discharge-recovery",
                            responsible_role="nurse",
                            status=status,
                            due_at=anchor + day * timedelta(1),
                            score=random.choice([None, 3.0, 4.0, 5.0]),
                        )
                    )
        await settle(sessions)
        app = create_app(container=container)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as http:
            headers = {"Authorization": f"Bearer {token}"}
            url_ = "/api/pathways/inpatient-discharge/stats"
            first = await http.get(url_, headers=headers)
            first.raise_for_status()
            timings = []
            for _ in range(repeat):
                start = time.perf_counter()
                response = await http.get(url_, headers=headers)
                timings.append(time.perf_counter() - start)
                response.raise_for_status()
        figures = first.json()
        timings.sort()
        print(f"plan statistics, {runs} runs ({runs * 3} task rows), PostgreSQL, 2-core box")
        print(
            f"{'GET /api/pathways/…/stats':<28} n={repeat}  "
            f"p50={statistics.median(timings) * 1000:6.1f}ms  "
            f"p95={timings[int(0.95 * (repeat - 1))] * 1000:6.1f}ms  "
            f"max={timings[-1] * 1000:6.1f}ms   (runs={figures['runs']}, "
            f"completed={figures['completed']}, lost={figures['lost']})"
        )
        p95 = timings[int(0.95 * (repeat - 1))]
        print(f"  p95 {p95 * 1000:.1f} ms against the 200 ms goal: ratio {p95 / 0.2:.2f}")
        await his.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=33_334, help="3 task rows each")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.repeat))
